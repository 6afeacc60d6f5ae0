/* Unit tests of pkcs11/uri.c through the core's public API (hsmtls/p11_uri.h), with no
 * token, module or sandbox: parsing every RFC 7512 attribute, the errors for malformed
 * URIs (and that no PIN leaks into them), %00 (refused but in id) and very long input,
 * matching, formatting, percent-encoding and the PIN-less copy. */
#include "check.h"
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_uri.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOCLASS ((CK_OBJECT_CLASS)-1)
#define PIN "s3cr3tPIN"

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }
static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

/* PKCS#11 text fields are space-padded, not NUL-terminated */
static void pad(unsigned char *field, size_t size, const char *text)
{
    memset(field, ' ', size);
    memcpy(field, text, strlen(text));
}

static int padded_eq(const unsigned char *field, size_t size, const char *text)
{
    unsigned char want[64];
    pad(want, size, text);
    return memcmp(field, want, size) == 0;
}

static CK_TOKEN_INFO make_token(const char *label, const char *manuf, const char *model,
                                const char *serial)
{
    CK_TOKEN_INFO t;
    memset(&t, 0, sizeof t);
    pad(t.label, sizeof t.label, label);
    pad(t.manufacturerID, sizeof t.manufacturerID, manuf);
    pad(t.model, sizeof t.model, model);
    pad(t.serialNumber, sizeof t.serialNumber, serial);
    return t;
}

static uint32_t rng_state = 0x12345678u;
static uint32_t rng(void) /* xorshift32: reproducible across runs */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_path_attributes(void)
{
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse(
        "pkcs11:token=My%20Token;manufacturer=ACME;serial=0123;model=M1;"
        "library-manufacturer=LibCo;library-description=Lib%20desc;library-version=2.5;"
        "slot-id=42;slot-description=Slot%201;slot-manufacturer=SlotCo;"
        "object=my%20key;id=%01%02%ff;type=private");
    CHECK(u != NULL);
    if (!u) {
        fprintf(stderr, "  %s\n", hsmtls_p11_error_message());
        return;
    }
    P11KitUri *p = hsmtls_p11_uri_p11kit(u);
    CK_TOKEN_INFO *t = p11_kit_uri_get_token_info(p);
    CHECK(padded_eq(t->label, sizeof t->label, "My Token"));
    CHECK(padded_eq(t->manufacturerID, sizeof t->manufacturerID, "ACME"));
    CHECK(padded_eq(t->serialNumber, sizeof t->serialNumber, "0123"));
    CHECK(padded_eq(t->model, sizeof t->model, "M1"));
    CK_INFO *m = p11_kit_uri_get_module_info(p);
    CHECK(padded_eq(m->manufacturerID, sizeof m->manufacturerID, "LibCo"));
    CHECK(padded_eq(m->libraryDescription, sizeof m->libraryDescription, "Lib desc"));
    CHECK(m->libraryVersion.major == 2 && m->libraryVersion.minor == 5);
    CK_SLOT_INFO *s = p11_kit_uri_get_slot_info(p);
    CHECK(padded_eq(s->slotDescription, sizeof s->slotDescription, "Slot 1"));
    CHECK(padded_eq(s->manufacturerID, sizeof s->manufacturerID, "SlotCo"));
    CK_SLOT_ID slot = 0;
    CHECK(hsmtls_p11_uri_slot_id(u, &slot) == 1 && slot == 42);
    CHECK(p11_kit_uri_get_slot_id(p) == 42);
    CHECK(streq(hsmtls_p11_uri_object_label(u), "my key"));
    size_t id_len = 0;
    const unsigned char *id = hsmtls_p11_uri_object_id(u, &id_len);
    CHECK(id && id_len == 3 && memcmp(id, "\x01\x02\xff", 3) == 0);
    CHECK(hsmtls_p11_uri_object_class(u) == CKO_PRIVATE_KEY);
    CHECK(hsmtls_p11_uri_has_token_part(u));
    CHECK(hsmtls_p11_uri_pin_value(u) == NULL && hsmtls_p11_uri_module_path(u) == NULL);
    hsmtls_p11_uri_free(u);
}

static void test_query_attributes(void)
{
    const char *text = "pkcs11:object=k?pin-value=" PIN "%2612&pin-source=file:/etc/pin"
                       "&module-name=softhsm2&module-path=/usr/lib/soft%20hsm/libsofthsm2.so";
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse(text);
    CHECK(u != NULL);
    if (!u)
        return;
    CHECK(streq(hsmtls_p11_uri_pin_value(u), PIN "&12"));
    CHECK(streq(p11_kit_uri_get_pin_value(hsmtls_p11_uri_p11kit(u)), PIN "&12"));
    CHECK(streq(hsmtls_p11_uri_pin_source(u), "file:/etc/pin"));
    CHECK(streq(hsmtls_p11_uri_module_name(u), "softhsm2"));
    CHECK(streq(hsmtls_p11_uri_module_path(u), "/usr/lib/soft hsm/libsofthsm2.so"));
    CHECK(streq(hsmtls_p11_uri_masked(u),
                "pkcs11:object=k?pin-value=***&pin-source=file:/etc/pin"
                "&module-name=softhsm2&module-path=/usr/lib/soft%20hsm/libsofthsm2.so"));
    CHECK(hsmtls_p11_uri_has_token_part(u)); /* module-name/-path choose a module */
    hsmtls_p11_uri_free(u);

    /* which attributes count as naming a token, slot or module */
    static const struct { const char *uri; int token_part; } parts[] = {
        { "pkcs11:token=t", 1 }, { "pkcs11:manufacturer=m", 1 }, { "pkcs11:serial=s", 1 },
        { "pkcs11:model=m", 1 }, { "pkcs11:slot-id=1", 1 }, { "pkcs11:slot-description=d", 1 },
        { "pkcs11:slot-manufacturer=m", 1 }, { "pkcs11:library-manufacturer=m", 1 },
        { "pkcs11:library-description=d", 1 }, { "pkcs11:library-version=1", 1 },
        { "pkcs11:?module-name=m", 1 }, { "pkcs11:?module-path=/m.so", 1 },
        { "pkcs11:object=o", 0 }, { "pkcs11:id=%01", 0 }, { "pkcs11:type=cert", 0 },
        { "pkcs11:?pin-value=1", 0 }, { "pkcs11:?pin-source=f", 0 }, { "pkcs11:", 0 },
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        u = hsmtls_p11_uri_parse(parts[i].uri);
        CHECK(u != NULL);
        if (u && hsmtls_p11_uri_has_token_part(u) != parts[i].token_part) {
            CHECK(!"has_token_part");
            fprintf(stderr, "  for %s\n", parts[i].uri);
        }
        hsmtls_p11_uri_free(u);
    }
}

static void test_empty_and_lenient(void)
{
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:");
    CHECK(u != NULL);
    if (u) {
        size_t len = 99;
        CK_SLOT_ID slot;
        CK_TOKEN_INFO t = make_token("any", "x", "y", "z");
        CHECK(hsmtls_p11_uri_object_label(u) == NULL);
        CHECK(hsmtls_p11_uri_object_id(u, &len) == NULL && len == 0);
        CHECK(hsmtls_p11_uri_object_class(u) == NOCLASS);
        CHECK(hsmtls_p11_uri_slot_id(u, &slot) == 0);
        CHECK(!hsmtls_p11_uri_has_token_part(u));
        CHECK(hsmtls_p11_uri_match_token(u, &t));
        CHECK(hsmtls_p11_uri_match_object(u, CKO_DATA, NULL, NULL, 0));
        CHECK(hsmtls_p11_uri_match_object(u, CKO_CERTIFICATE, "c", (const unsigned char *)"i", 1));
        hsmtls_p11_uri_free(u);
    }

    u = hsmtls_p11_uri_parse("PKCS11:token=a"); /* RFC 3986: schemes are case-insensitive */
    CHECK(u != NULL);
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:token=a;;object=b;"); /* p11-kit alone loses object=b */
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), "b"));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:token=My Token;object=my key"); /* p11-kit: "MyToken" */
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), "my key"));
    CK_TOKEN_INFO t = make_token("My Token", "m", "m", "s");
    CHECK(u && hsmtls_p11_uri_match_token(u, &t));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:x-vendor=1;object=k?x-q=2"); /* ignored, still matches */
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_DATA, "k", NULL, 0));
    CHECK(u && hsmtls_p11_uri_match_token(u, &t));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:object=\xc3\xa9t\xc3\xa9"); /* raw UTF-8 */
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), "\xc3\xa9t\xc3\xa9"));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:id=;object=");
    size_t len = 99;
    CHECK(u && hsmtls_p11_uri_object_id(u, &len) != NULL && len == 0);
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), ""));
    hsmtls_p11_uri_free(u);

    char text[64];
    snprintf(text, sizeof text, "pkcs11:slot-id=%lu", ULONG_MAX);
    u = hsmtls_p11_uri_parse(text);
    CK_SLOT_ID slot = 0;
    CHECK(u && hsmtls_p11_uri_slot_id(u, &slot) == 1 && slot == ULONG_MAX);
    hsmtls_p11_uri_free(u);
    /* beyond a long: some p11-kit versions would read it as negative */
    snprintf(text, sizeof text, "pkcs11:slot-id=%lu", (unsigned long)LONG_MAX + 1);
    u = hsmtls_p11_uri_parse(text);
    CHECK(u && hsmtls_p11_uri_slot_id(u, &slot) == 1 && slot == (unsigned long)LONG_MAX + 1);
    CHECK(u && p11_kit_uri_get_slot_id(hsmtls_p11_uri_p11kit(u)) == (unsigned long)LONG_MAX + 1);
    hsmtls_p11_uri_free(u);
    u = hsmtls_p11_uri_parse("pkcs11:slot-id=0");
    slot = 7;
    CHECK(u && hsmtls_p11_uri_slot_id(u, &slot) == 1 && slot == 0);
    hsmtls_p11_uri_free(u);
}

static void test_types(void)
{
    static const struct { const char *uri; CK_OBJECT_CLASS cls; } types[] = {
        { "pkcs11:type=public", CKO_PUBLIC_KEY }, { "pkcs11:type=private", CKO_PRIVATE_KEY },
        { "pkcs11:type=cert", CKO_CERTIFICATE }, { "pkcs11:type=secret-key", CKO_SECRET_KEY },
        { "pkcs11:type=data", CKO_DATA },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(types[i].uri);
        CHECK(u && hsmtls_p11_uri_object_class(u) == types[i].cls);
        CHECK(u && hsmtls_p11_uri_match_object(u, types[i].cls, "x", NULL, 0));
        CHECK(u && !hsmtls_p11_uri_match_object(u, types[i].cls == CKO_DATA ? CKO_CERTIFICATE
                                                                            : CKO_DATA,
                                                "x", NULL, 0));
        hsmtls_p11_uri_free(u);
    }
}

/* Each malformed URI, the part of the message that names what is wrong, and the
 * quoted URI the message must show (NULL: the URI as given). */
static const struct { const char *uri, *what, *quoted; } bad_uris[] = {
    { "token=a", "missing \"pkcs11:\" scheme", NULL },
    { "pkcs12:token=a?pin-value=" PIN,
      "missing \"pkcs11:\" scheme", "pkcs12:token=a?pin-value=***" },
    { "pkcs11:token=a;objct=b", "unknown attribute \"objct\"", NULL },
    { "pkcs11:?foo=bar", "unknown query attribute \"foo\"", NULL },
    { "pkcs11:token=x?pin_value=" PIN,
      "unknown query attribute \"pin_value\"", "pkcs11:token=x?pin_value=***" },
    { "pkcs11:token=x?pin-value=" PIN "&foo=1",
      "unknown query attribute \"foo\"", "pkcs11:token=x?pin-value=***&foo=1" },
    { "pkcs11:token", "attribute \"token\" has no \"=\"", NULL },
    { "pkcs11:object=k?pin-value" PIN, "an attribute has no \"=\"", "pkcs11:object=k?***" },
    { "pkcs11:object=%zz", "bad percent-encoding in \"object\"", NULL },
    { "pkcs11:id=%0", "bad percent-encoding in \"id\"", NULL },
    { "pkcs11:x-vendor=%g1", "bad percent-encoding in \"x-vendor\"", NULL },
    { "pkcs11:?pin-value=" PIN "%zz",
      "bad percent-encoding in \"pin-value\"", "pkcs11:?pin-value=***" },
    { "pkcs11:token=a;token=b", "duplicate attribute \"token\"", NULL },
    { "pkcs11:?pin-value=" PIN "&pin-value=" PIN,
      "duplicate attribute \"pin-value\"", "pkcs11:?pin-value=***&pin-value=***" },
    { "pkcs11:type=foo",
      "type \"foo\" is not one of public, private, cert, secret-key, data", NULL },
    { "pkcs11:type=secretkey", "type \"secretkey\" is not one of", NULL },
    { "pkcs11:slot-id=abc", "slot-id \"abc\" is not a decimal number", NULL },
    { "pkcs11:slot-id=-1", "slot-id \"-1\" is not a decimal number", NULL },
    { "pkcs11:slot-id=", "slot-id \"\" is not a decimal number", NULL },
    { "pkcs11:slot-id=99999999999999999999999",
      "slot-id \"99999999999999999999999\" is out of range", NULL },
    { "pkcs11:library-version=1.2.3", "library-version \"1.2.3\" is not M or M.N", NULL },
    { "pkcs11:library-version=x", "library-version \"x\" is not M or M.N", NULL },
    { "pkcs11:library-version=1.", "library-version \"1.\" is not M or M.N", NULL },
    { "pkcs11:library-version=255", "library-version \"255\" is not M or M.N", NULL },
    { "pkcs11:token=123456789012345678901234567890123",
      "\"token\" is longer than the 32 bytes", NULL },
    { "pkcs11:serial=12345678901234567", "\"serial\" is longer than the 16 bytes", NULL },
    { "pkcs11:token=a\tb", "control character in \"token\"", "pkcs11:token=a\\x09b" },
    { "pkcs11:token=x;pin-value=" PIN,
      "\"pin-value\" is a query attribute", "pkcs11:token=x;pin-value=***" },
    { "pkcs11:?token=x", "\"token\" is a path attribute", NULL },
};

static void test_malformed(void)
{
    for (size_t i = 0; i < sizeof bad_uris / sizeof bad_uris[0]; i++) {
        char quoted[256];
        snprintf(quoted, sizeof quoted, "invalid PKCS#11 URI \"%s\": ",
                 bad_uris[i].quoted ? bad_uris[i].quoted : bad_uris[i].uri);
        hsmtls_p11_error_clear();
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(bad_uris[i].uri);
        const char *msg = hsmtls_p11_error_message();
        int ok = u == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD &&
                 strncmp(msg, quoted, strlen(quoted)) == 0 &&
                 contains(msg + strlen(quoted), bad_uris[i].what) && !contains(msg, "s3cr3t");
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  for %s\n  got: %s\n", bad_uris[i].uri, msg);
        hsmtls_p11_uri_free(u);
    }
}

static void test_masking(void)
{
    static const struct { const char *uri, *masked; } cases[] = {
        { "pkcs11:token=t?pin-value=" PIN "&module-name=m",
          "pkcs11:token=t?pin-value=***&module-name=m" },
        { "pkcs11:token=t?module-name=m&pin-value=" PIN,
          "pkcs11:token=t?module-name=m&pin-value=***" },
        { "pkcs11:token=t?pin-value=" PIN "%3B" PIN "?" PIN, "pkcs11:token=t?pin-value=***" },
        { "pkcs11:token=t?pin-value=", "pkcs11:token=t?pin-value=***" },
        { "pkcs11:object=pin;id=%01", "pkcs11:object=pin;id=%01" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(cases[i].uri);
        CHECK(u && streq(hsmtls_p11_uri_masked(u), cases[i].masked));
        if (u && !streq(hsmtls_p11_uri_masked(u), cases[i].masked))
            fprintf(stderr, "  got %s\n", hsmtls_p11_uri_masked(u));
        hsmtls_p11_uri_free(u);
    }
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:?pin-value=" PIN "%3B" PIN "?" PIN);
    CHECK(u && streq(hsmtls_p11_uri_pin_value(u), PIN ";" PIN "?" PIN));
    hsmtls_p11_uri_free(u);
}

static int only_allowed(const char *s)
{
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    "-._~:[]@!$'()*+,=&%", *s))
            return 0;
    return 1;
}

static void test_encoding(void)
{
    unsigned char all[256], buf[300];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *enc = hsmtls_p11_uri_encode(all, sizeof all);
    size_t len = 0;
    unsigned char *dec = enc ? hsmtls_p11_uri_decode(enc, &len) : NULL;
    CHECK(enc && only_allowed(enc));
    CHECK(contains(enc, "%00%01") && contains(enc, "%FF") && contains(enc, "%3B%3C=") &&
          contains(enc, "%3F@ABC"));
    CHECK(dec && len == 256 && memcmp(dec, all, 256) == 0 && dec[256] == '\0');
    free(enc);
    free(dec);

    for (int round = 0; round < 200; round++) {
        size_t n = rng() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)rng();
        enc = hsmtls_p11_uri_encode(buf, n);
        dec = enc ? hsmtls_p11_uri_decode(enc, &len) : NULL;
        CHECK(dec && len == n && memcmp(dec, buf, n) == 0 && only_allowed(enc));
        free(enc);
        free(dec);
    }

    const char *label = "a;b?c%d/e f\xc3\xa9&=g";
    enc = hsmtls_p11_uri_encode((const unsigned char *)label, strlen(label));
    CHECK(streq(enc, "a%3Bb%3Fc%25d%2Fe%20f%C3%A9&=g"));
    free(enc);
    enc = hsmtls_p11_uri_encode((const unsigned char *)"", 0);
    CHECK(streq(enc, ""));
    free(enc);

    dec = hsmtls_p11_uri_decode("%41%62c%2f%2F", &len);
    CHECK(dec && len == 5 && memcmp(dec, "Abc//", 6) == 0);
    free(dec);
    dec = hsmtls_p11_uri_decode("a%00b", &len);
    CHECK(dec && len == 3 && memcmp(dec, "a\0b", 3) == 0);
    free(dec);
    static const char *const bad[] = { "%", "%4", "%zz", "a%4g", "%%41", "ok%" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dec = hsmtls_p11_uri_decode(bad[i], &len);
        CHECK(dec == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
        free(dec);
    }
}

static void test_match_token_slot_module(void)
{
    CK_TOKEN_INFO t = make_token("SoftHSM Token", "SoftHSM project", "SoftHSM v2", "1234abcd");
    static const struct { const char *uri; int match; } cases[] = {
        { "pkcs11:token=SoftHSM%20Token", 1 },
        { "pkcs11:token=SoftHSM", 0 }, /* a prefix is not the label */
        { "pkcs11:token=softhsm%20token", 0 },
        { "pkcs11:token=SoftHSM%20Token;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;"
          "serial=1234abcd", 1 },
        { "pkcs11:token=SoftHSM%20Token;serial=1234abce", 0 },
        { "pkcs11:model=SoftHSM%20v2", 1 },
        { "pkcs11:manufacturer=Other", 0 },
        { "pkcs11:object=x;type=cert", 1 },
        { "pkcs11:token=", 0 }, /* the token with a blank label */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(cases[i].uri);
        CHECK(u && hsmtls_p11_uri_match_token(u, &t) == cases[i].match);
        hsmtls_p11_uri_free(u);
    }
    CK_TOKEN_INFO blank = make_token("", "m", "m", "s");
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:token=");
    CHECK(u && hsmtls_p11_uri_match_token(u, &blank));
    hsmtls_p11_uri_free(u);

    CK_SLOT_INFO slot;
    memset(&slot, 0, sizeof slot);
    pad(slot.slotDescription, sizeof slot.slotDescription, "Slot 1");
    pad(slot.manufacturerID, sizeof slot.manufacturerID, "SlotCo");
    u = hsmtls_p11_uri_parse("pkcs11:slot-id=5;slot-description=Slot%201");
    CHECK(u && hsmtls_p11_uri_match_slot(u, 5, &slot));
    CHECK(u && !hsmtls_p11_uri_match_slot(u, 6, &slot));
    hsmtls_p11_uri_free(u);
    u = hsmtls_p11_uri_parse("pkcs11:slot-manufacturer=Other");
    CHECK(u && !hsmtls_p11_uri_match_slot(u, 5, &slot));
    hsmtls_p11_uri_free(u);
    u = hsmtls_p11_uri_parse("pkcs11:token=x");
    CHECK(u && hsmtls_p11_uri_match_slot(u, 9, &slot));
    hsmtls_p11_uri_free(u);

    CK_INFO info;
    memset(&info, 0, sizeof info);
    pad(info.manufacturerID, sizeof info.manufacturerID, "LibCo");
    pad(info.libraryDescription, sizeof info.libraryDescription, "Lib desc");
    info.libraryVersion.major = 2;
    info.libraryVersion.minor = 5;
    static const struct { const char *uri; int match; } mods[] = {
        { "pkcs11:library-version=2.5", 1 }, { "pkcs11:library-version=2.6", 0 },
        { "pkcs11:library-version=2", 0 }, /* 2 means 2.0 */
        { "pkcs11:library-manufacturer=LibCo;library-description=Lib%20desc", 1 },
        { "pkcs11:library-manufacturer=Lib", 0 }, { "pkcs11:token=x", 1 },
    };
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        u = hsmtls_p11_uri_parse(mods[i].uri);
        CHECK(u && hsmtls_p11_uri_match_module(u, &info) == mods[i].match);
        hsmtls_p11_uri_free(u);
    }
}

static void test_match_object(void)
{
    const unsigned char id[] = { 1, 2 }, other[] = { 1, 3 };
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:object=k1;id=%01%02;type=private");
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k1", id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PUBLIC_KEY, "k1", id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, NOCLASS, "k1", id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k2", id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k", id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, NULL, id, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k1", other, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k1", id, 1));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_PRIVATE_KEY, "k1", NULL, 0));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:object=k1");
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_CERTIFICATE, "k1", NULL, 0));
    CHECK(u && hsmtls_p11_uri_match_object(u, NOCLASS, "k1", other, 2));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_CERTIFICATE, "k1 ", NULL, 0));
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:object=");
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_DATA, "", NULL, 0));
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_DATA, NULL, NULL, 0));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_DATA, "k", NULL, 0));
    hsmtls_p11_uri_free(u);
}

static void test_format(void)
{
    CK_TOKEN_INFO t = make_token("tok", "ACME", "M1", "0123");
    const unsigned char id1[] = { 0x01, 0xab };
    char *s = hsmtls_p11_uri_format_object(&t, "key 1", id1, 2, CKO_PRIVATE_KEY);
    CHECK(streq(s, "pkcs11:model=M1;manufacturer=ACME;serial=0123;token=tok;"
                   "id=%01%AB;object=key%201;type=private"));
    if (s && !contains(s, "id=%01%AB"))
        fprintf(stderr, "  got %s\n", s);
    free(s);

    s = hsmtls_p11_uri_format_object(&t, NULL, NULL, 0, NOCLASS);
    CHECK(s && !contains(s, "object=") && !contains(s, "id=") && !contains(s, "type="));
    hsmtls_p11_uri *u = s ? hsmtls_p11_uri_parse(s) : NULL;
    CHECK(u && hsmtls_p11_uri_object_class(u) == NOCLASS && !hsmtls_p11_uri_object_label(u));
    hsmtls_p11_uri_free(u);
    free(s);

    /* the awkward cases: reserved characters, UTF-8, full-width fields, every class */
    static const CK_OBJECT_CLASS classes[] = { CKO_PUBLIC_KEY, CKO_PRIVATE_KEY,
                                               CKO_CERTIFICATE, CKO_SECRET_KEY, CKO_DATA };
    CK_TOKEN_INFO hard = make_token("a;b?c%d/e f\xc3\xa9&=12345678901234", "Snake Oil, Inc.",
                                    "v1/2;3?", "0123456789abcdef");
    CK_TOKEN_INFO near = make_token("a;b?c%d/e f\xc3\xa9&=1234567890123", "Snake Oil, Inc.",
                                    "v1/2;3?", "0123456789abcdef");
    for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
        unsigned char id[20], id2[20];
        for (size_t i = 0; i < sizeof id; i++)
            id[i] = (unsigned char)rng();
        id[0] = 0; /* a NUL must survive too */
        memcpy(id2, id, sizeof id);
        id2[19] ^= 1;
        const char *label = "k;e?y%/ \xc3\xa9 1&x=y";
        s = hsmtls_p11_uri_format_object(&hard, label, id, sizeof id, classes[c]);
        u = s ? hsmtls_p11_uri_parse(s) : NULL;
        size_t len = 0;
        const unsigned char *got = u ? hsmtls_p11_uri_object_id(u, &len) : NULL;
        CHECK(u && hsmtls_p11_uri_match_token(u, &hard));
        CHECK(u && !hsmtls_p11_uri_match_token(u, &near));
        CHECK(u && hsmtls_p11_uri_match_object(u, classes[c], label, id, sizeof id));
        CHECK(u && !hsmtls_p11_uri_match_object(u, classes[c], label, id2, sizeof id2));
        CHECK(u && streq(hsmtls_p11_uri_object_label(u), label));
        CHECK(got && len == sizeof id && memcmp(got, id, len) == 0);
        CHECK(u && hsmtls_p11_uri_object_class(u) == classes[c]);
        if (!u)
            fprintf(stderr, "  %s: %s\n", s ? s : "(null)", hsmtls_p11_error_message());
        hsmtls_p11_uri_free(u);
        free(s);
    }

    s = hsmtls_p11_uri_format_token(&hard);
    u = s ? hsmtls_p11_uri_parse(s) : NULL;
    CHECK(s && !contains(s, "object=") && !contains(s, "id=") && !contains(s, "type="));
    CHECK(u && hsmtls_p11_uri_match_token(u, &hard) && !hsmtls_p11_uri_match_token(u, &near));
    CHECK(u && hsmtls_p11_uri_has_token_part(u) && !hsmtls_p11_uri_object_label(u));
    hsmtls_p11_uri_free(u);
    free(s);
    CHECK(hsmtls_p11_uri_format_token(NULL) == NULL &&
          hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
}

/* hsmtls_p11_mask_text: the one masking function for quoted input (libhsmtls runs the
 * same code). Every shape of PIN a URI or a message can carry is "***", control bytes
 * and invalid UTF-8 are \xNN, valid UTF-8 and ordinary text pass, and it is idempotent. */
static void test_mask_text(void)
{
    static const struct { const char *in, *out; } cases[] = {
        /* a second '?' and the '&' orders (the PIN "5678" must go) */
        { "pkcs11:token=s;object=k;type=private?pin-value=5678&x=1",
          "pkcs11:token=s;object=k;type=private?pin-value=***&x=1" },
        { "pkcs11:token=s?x=1?pin-value=5678", "pkcs11:token=s?x=1?pin-value=***" },
        { "pkcs11:token=s?x=1&pin-value=5678", "pkcs11:token=s?x=1&pin-value=***" },
        { "pkcs11:token=s?pin-value=5678?x=1&y=2", "pkcs11:token=s?pin-value=***&y=2" },
        { "pkcs11:token=s?pin-value=56&78&module-name=m", "pkcs11:token=s?pin-value=***&module-name=m" },
        /* percent-encoded and misspelt names, any case, the path part */
        { "pkcs11:token=s?pin%2dvalue=5678", "pkcs11:token=s?pin%2dvalue=***" },
        { "pkcs11:token=s?%70in-value=5678", "pkcs11:token=s?%70in-value=***" },
        { "pkcs11:token=s?PIN-VALUE=5678", "pkcs11:token=s?PIN-VALUE=***" },
        { "pkcs11:token=s?pin_value=5678", "pkcs11:token=s?pin_value=***" },
        { "pkcs11:token=s;pin-value=5678;object=k", "pkcs11:token=s;pin-value=***" },
        { "pkcs11:object=k?pin-value5678", "pkcs11:object=k?***" },
        { "pkcs11:object=k?pin-value=", "pkcs11:object=k?pin-value=***" },
        /* pin-source names a file: kept */
        { "pkcs11:token=s?pin-source=/etc/pin&pin-value=5678",
          "pkcs11:token=s?pin-source=/etc/pin&pin-value=***" },
        /* OpenSSL's data quoting a URI, and messages around masked URIs */
        { "calling stat(pkcs11:token=s?pin-value=5678&x=1)", "calling stat(pkcs11:token=s?pin-value=***&x=1)" },
        { "calling stat(pkcs11:token=s?pin-value=5678)", "calling stat(pkcs11:token=s?pin-value=***" },
        { "key \"pkcs11:a?pin-value=***\": no key; the PIN was wrong (pin-source file /p)",
          "key \"pkcs11:a?pin-value=***\": no key; the PIN was wrong (pin-source file /p)" },
        { "object=pin;id=%01 spinning pins", "object=pin;id=%01 spinning pins" },
        /* control characters and invalid UTF-8 */
        { "a\nb\x1b[31mc\x7f\td\r", "a\\x0ab\\x1b[31mc\\x7f\\x09d\\x0d" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91" },
        { "\xff\xc3(\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80",
          "\\xff\\xc3(\\xc0\\xaf\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = hsmtls_p11_mask_text(cases[i].in);
        char *again = got ? hsmtls_p11_mask_text(got) : NULL;
        CHECK_MSG(streq(got, cases[i].out) && streq(again, got), cases[i].in);
        if (!streq(got, cases[i].out) || !streq(again, got))
            fprintf(stderr, "  got %s\n  again %s\n", got ? got : "(null)", again ? again : "(null)");
        CHECK(!contains(got, "5678"));
        free(again);
        free(got);
    }
    CHECK(hsmtls_p11_mask_text(NULL) == NULL);
    /* random bytes: never a control byte out, never the PIN after a pin name */
    char in[200];
    for (int round = 0; round < 2000; round++) {
        size_t n = rng() % (sizeof in - 20);
        for (size_t i = 0; i < n; i++)
            in[i] = (char)(1 + rng() % 255);
        memcpy(in + n, "&pin=5678", 10);
        char *got = hsmtls_p11_mask_text(in);
        int ok = got != NULL && !contains(got, "5678");
        for (const char *p = got; ok && *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                ok = 0;
        CHECK(ok);
        free(got);
    }
}

/* %00 decodes to a NUL byte. Binary attributes (id) keep it; every other attribute is a
 * string that a NUL would end early (object=ec-p256%00junk used to find "ec-p256", a
 * pin-value or pin-source would be cut at it), so a URI with one is refused, naming the
 * attribute and never quoting a PIN. */
static void test_nul_bytes(void)
{
    size_t len = 0;
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:id=%00%01%00");
    const unsigned char *id = u ? hsmtls_p11_uri_object_id(u, &len) : NULL;
    CHECK(id && len == 3 && memcmp(id, "\0\1\0", 3) == 0);
    CHECK(u && hsmtls_p11_uri_match_object(u, CKO_DATA, NULL, (const unsigned char *)"\0\1\0", 3));
    CHECK(u && !hsmtls_p11_uri_match_object(u, CKO_DATA, NULL, (const unsigned char *)"\0\1", 2));
    hsmtls_p11_uri_free(u);

    static const struct { const char *uri, *attr; } refused[] = {
        { "pkcs11:object=ec-p256%00junk", "object" },
        { "pkcs11:object=a%00b", "object" },
        { "pkcs11:object=%00", "object" },
        { "pkcs11:token=a%00b", "token" },
        { "pkcs11:token=server;object=k;manufacturer=%00", "manufacturer" },
        { "pkcs11:serial=1%00", "serial" },
        { "pkcs11:model=m%00", "model" },
        { "pkcs11:slot-description=s%00", "slot-description" },
        { "pkcs11:slot-manufacturer=s%00", "slot-manufacturer" },
        { "pkcs11:library-manufacturer=l%00", "library-manufacturer" },
        { "pkcs11:library-description=l%00", "library-description" },
        { "pkcs11:x-vendor=v%00", "x-vendor" },
        { "pkcs11:?pin-value=12%0034", "pin-value" },
        { "pkcs11:?pin-value=%00" PIN, "pin-value" },
        { "pkcs11:?pin-source=/a%00b", "pin-source" },
        { "pkcs11:?module-path=/m%00x.so", "module-path" },
        { "pkcs11:?module-name=soft%00hsm2", "module-name" },
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char want[96];
        snprintf(want, sizeof want, "\"%s\" holds a NUL byte (%%00)", refused[i].attr);
        hsmtls_p11_error_clear();
        u = hsmtls_p11_uri_parse(refused[i].uri);
        const char *msg = hsmtls_p11_error_message();
        int ok = u == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD && contains(msg, want) &&
                 !contains(msg, PIN) && !contains(msg, "0034");
        CHECK_MSG(ok, refused[i].uri);
        if (!ok)
            fprintf(stderr, "  got: %s\n", msg);
        hsmtls_p11_uri_free(u);
    }
    /* a %00 inside another escape's text is no NUL: "%2500" is "%00" spelled out */
    u = hsmtls_p11_uri_parse("pkcs11:object=%2500");
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), "%00"));
    hsmtls_p11_uri_free(u);

    /* and hsmtls_p11_uri_decode reports the length, NULs and all */
    unsigned char *dec = hsmtls_p11_uri_decode("%00", &len);
    CHECK(dec && len == 1 && dec[0] == 0);
    free(dec);
}

/* Malformed input beyond test_malformed's table: each is refused with CKR_ARGUMENTS_BAD
 * and a message naming what is wrong, or accepted as shown. */
static void test_malformed_more(void)
{
    static const struct { const char *uri, *what; } bad[] = {
        { "pkcs11:Object=a", "unknown attribute \"Object\"" }, /* names are case-sensitive */
        { "pkcs11:=a", "unknown attribute \"\"" },
        { "pkcs11:x-=1", "unknown attribute \"x-\"" },
        { "pkcs11:object=a?b=c", "unknown query attribute \"b\"" },
        { "pkcs11:object=%", "bad percent-encoding in \"object\"" },
        { "pkcs11:object=%G0", "bad percent-encoding in \"object\"" },
        { "pkcs11:object=%%", "bad percent-encoding in \"object\"" },
        { "pkcs11:object=a%2", "bad percent-encoding in \"object\"" },
        { "pkcs11:?module-path=%2", "bad percent-encoding in \"module-path\"" },
        { "pkcs11:object=a;object=a", "duplicate attribute \"object\"" }, /* even the same value */
        { "pkcs11:id=%01;id=%01", "duplicate attribute \"id\"" },
        { "pkcs11:type=cert;type=cert", "duplicate attribute \"type\"" },
        { "pkcs11:?module-name=a&module-name=a", "duplicate attribute \"module-name\"" },
        { "pkcs11:object", "attribute \"object\" has no \"=\"" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hsmtls_p11_error_clear();
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(bad[i].uri);
        const char *msg = hsmtls_p11_error_message();
        int ok = u == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD &&
                 contains(msg, "invalid PKCS#11 URI") && contains(msg, bad[i].what);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  for %s\n  got: %s\n", bad[i].uri, msg);
        hsmtls_p11_uri_free(u);
    }
    /* accepted: empty separators, a '=' inside a value */
    static const char *const good[] = { "pkcs11:;", "pkcs11:?", "pkcs11:?&", "pkcs11:token=a?" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(good[i]);
        CHECK_MSG(u != NULL, good[i]);
        hsmtls_p11_uri_free(u);
    }
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:object=a=b");
    CHECK(u && streq(hsmtls_p11_uri_object_label(u), "a=b"));
    hsmtls_p11_uri_free(u);
    /* NULL is not a URI */
    hsmtls_p11_error_clear();
    CHECK(hsmtls_p11_uri_parse(NULL) == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
}

/* 100 000-character input: long labels and ids are kept whole; a refused one gets a
 * message of bounded length that starts by quoting the URI and never shows a PIN. */
static void test_long_input(void)
{
    enum { N = 100000 };
    char *text = malloc(N + 64);
    if (!text) {
        CHECK(!"malloc");
        return;
    }
    memcpy(text, "pkcs11:object=", 14);
    memset(text + 14, 'k', N);
    text[14 + N] = '\0';
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse(text);
    const char *label = u ? hsmtls_p11_uri_object_label(u) : NULL;
    CHECK(label && strlen(label) == N && label[0] == 'k' && label[N - 1] == 'k');
    CHECK(u && streq(hsmtls_p11_uri_masked(u), text));
    hsmtls_p11_uri_free(u);

    memcpy(text, "pkcs11:id=", 10);
    for (size_t i = 0; i < N / 3; i++)
        memcpy(text + 10 + 3 * i, "%ab", 3);
    text[10 + 3 * (N / 3)] = '\0';
    u = hsmtls_p11_uri_parse(text);
    size_t len = 0;
    const unsigned char *id = u ? hsmtls_p11_uri_object_id(u, &len) : NULL;
    CHECK(id && len == N / 3 && id[0] == 0xab && id[len - 1] == 0xab);
    hsmtls_p11_uri_free(u);

    /* refused: a token label over 32 bytes, an unknown attribute after a long one */
    static const char *const heads[] = { "pkcs11:token=", "pkcs11:object=k;bogus=" };
    for (size_t h = 0; h < 2; h++) {
        size_t hl = strlen(heads[h]);
        memcpy(text, heads[h], hl);
        memset(text + hl, 'x', N);
        text[hl + N] = '\0';
        hsmtls_p11_error_clear();
        u = hsmtls_p11_uri_parse(text);
        const char *msg = hsmtls_p11_error_message();
        char quoted[64];
        snprintf(quoted, sizeof quoted, "invalid PKCS#11 URI \"%sxxxx", heads[h]);
        CHECK(u == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
        CHECK_MSG(strncmp(msg, quoted, strlen(quoted)) == 0, msg);
        CHECK(strlen(msg) < 2048);
        hsmtls_p11_uri_free(u);
    }

    /* a long PIN in a refused URI: masked, so the message is short and says why */
    memcpy(text, "pkcs11:object=k?pin-value=", 26);
    memset(text + 26, 'p', N);
    memcpy(text + 26 + N, "&foo=1", 7);
    hsmtls_p11_error_clear();
    u = hsmtls_p11_uri_parse(text);
    const char *msg = hsmtls_p11_error_message();
    CHECK(u == NULL && streq(msg, "invalid PKCS#11 URI \"pkcs11:object=k?pin-value=***&foo=1\": "
                                  "unknown query attribute \"foo\""));
    if (u)
        hsmtls_p11_uri_free(u);
    free(text);
}

/* hsmtls_p11_uri_without_pin: the URI as written, minus pin-value. */
static void test_without_pin(void)
{
    static const struct { const char *uri, *want; } cases[] = {
        { "pkcs11:token=t;object=k?pin-value=" PIN "&module-name=m", "pkcs11:token=t;object=k?module-name=m" },
        { "pkcs11:token=t?module-name=m&pin-value=" PIN, "pkcs11:token=t?module-name=m" },
        { "pkcs11:token=t?pin-value=" PIN, "pkcs11:token=t" },
        { "pkcs11:token=t?pin-source=/etc/pin", "pkcs11:token=t?pin-source=/etc/pin" },
        { "pkcs11:object=my%20key;id=%01", "pkcs11:object=my%20key;id=%01" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hsmtls_p11_uri *u = hsmtls_p11_uri_parse(cases[i].uri);
        char *s = u ? hsmtls_p11_uri_without_pin(u) : NULL;
        CHECK(streq(s, cases[i].want) && !contains(s, PIN));
        if (!streq(s, cases[i].want))
            fprintf(stderr, "  for %s\n  got %s\n", cases[i].uri, s ? s : "(null)");
        hsmtls_p11_uri *again = s ? hsmtls_p11_uri_parse(s) : NULL;
        CHECK(again && hsmtls_p11_uri_pin_value(again) == NULL);
        hsmtls_p11_uri_free(again);
        free(s);
        hsmtls_p11_uri_free(u);
    }
}

int main(void)
{
    test_path_attributes();
    test_query_attributes();
    test_empty_and_lenient();
    test_types();
    test_malformed();
    test_masking();
    test_encoding();
    test_match_token_slot_module();
    test_match_object();
    test_format();
    test_mask_text();
    test_nul_bytes();
    test_malformed_more();
    test_long_input();
    test_without_pin();
    return check_finish();
}
