/* Unit tests of the URI key file (pkcs11/keyfile.c, hsmtls/p11_keyfile.h) with no token:
 * the PEM the core writes reads back (through OpenSSL's PEM reader, as the provider's
 * decoder does) to the same URI for short and long URIs across DER's length forms;
 * malformed, truncated, mislabelled and oversized input is refused with the core's
 * message, or accepted where today's decoder is lenient (said so below); a URI that names
 * the module or the PIN is neither written nor read. */
#include "check.h"
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_keyfile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#define NOT_OURS "not a PKCS#11 URI key file"
#define NOT_PKCS11 "the key file's URI is not a pkcs11: URI"

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The DER body of a PEM text with the given label; NULL when the label differs or the
 * text is not PEM. */
static unsigned char *pem_body(const char *pem, const char *label, long *len)
{
    BIO *mem = BIO_new_mem_buf(pem, -1);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    int ok = mem && PEM_read_bio(mem, &name, &header, &der, len) > 0 && strcmp(name, label) == 0;
    BIO_free(mem);
    OPENSSL_free(name);
    OPENSSL_free(header);
    if (!ok) {
        OPENSSL_free(der);
        return NULL;
    }
    return der;
}

/* A DER body built by hand: SEQUENCE { desc-tag desc, uri-tag uri } (lengths in the
 * shortest form, as the core writes them). Returns the length. */
static size_t put_len(unsigned char *out, size_t len)
{
    if (len < 0x80) {
        out[0] = (unsigned char)len;
        return 1;
    }
    if (len < 0x100) {
        out[0] = 0x81;
        out[1] = (unsigned char)len;
        return 2;
    }
    out[0] = 0x82;
    out[1] = (unsigned char)(len >> 8);
    out[2] = (unsigned char)len;
    return 3;
}

static size_t make_der(unsigned char *out, unsigned char desc_tag, const char *desc, size_t desc_len,
                       unsigned char uri_tag, const char *uri, size_t uri_len)
{
    unsigned char body[70000];
    size_t n = 0;
    body[n++] = desc_tag;
    n += put_len(body + n, desc_len);
    memcpy(body + n, desc, desc_len);
    n += desc_len;
    body[n++] = uri_tag;
    n += put_len(body + n, uri_len);
    memcpy(body + n, uri, uri_len);
    n += uri_len;
    size_t m = 0;
    out[m++] = 0x30;
    m += put_len(out + m, n);
    memcpy(out + m, body, n);
    return m + n;
}

static size_t good_der(unsigned char *out, const char *uri)
{
    return make_der(out, 0x1a, HSMTLS_P11_KEYFILE_DESC, strlen(HSMTLS_P11_KEYFILE_DESC), 0x0c, uri,
                    strlen(uri));
}

/* uri_from_der refuses `der` with a message containing `why`. */
static void refused(const unsigned char *der, size_t len, const char *why, const char *what)
{
    hsmtls_p11_error_clear();
    char *uri = hsmtls_p11_keyfile_uri_from_der(der, len);
    int ok = uri == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD &&
             check_contains(hsmtls_p11_error_message(), why);
    CHECK_MSG(ok, what);
    if (!ok)
        fprintf(stderr, "  got %s / %s\n", uri ? uri : "(null)", hsmtls_p11_error_message());
    free(uri);
}

/* uri_from_der reads `want` from `der`. */
static void accepted(const unsigned char *der, size_t len, const char *want, const char *what)
{
    char *uri = hsmtls_p11_keyfile_uri_from_der(der, len);
    CHECK_MSG(streq(uri, want), what);
    if (!streq(uri, want))
        fprintf(stderr, "  got %s / %s\n", uri ? uri : "(null)", hsmtls_p11_error_message());
    free(uri);
}

/* "pkcs11:object=abc..." of exactly len (>= 7) bytes. */
static char *repeat_uri(size_t len)
{
    static const char head[] = "pkcs11:object=";
    char *u = malloc(len + 1);
    if (!u)
        return NULL;
    for (size_t i = 0; i < len; i++)
        u[i] = i < sizeof head - 1 ? head[i] : (char)('a' + i % 26);
    u[len] = '\0';
    return u;
}

static void test_round_trip(void)
{
    static const char *const uris[] = {
        "pkcs11:token=server;object=ec-p256;type=private",
        "pkcs11:token=My%20Token;id=%01%02%ff;object=k",
        "pkcs11:",
        "pkcs11:object=\xc3\xa9t\xc3\xa9", /* UTF-8 */
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        char *pem = hsmtls_p11_keyfile_pem(uris[i]);
        CHECK_MSG(pem && strncmp(pem, "-----BEGIN PKCS#11 PROVIDER URI-----\n", 37) == 0, uris[i]);
        CHECK(check_contains(pem, "-----END PKCS#11 PROVIDER URI-----\n"));
        long len = 0;
        unsigned char *der = pem ? pem_body(pem, HSMTLS_P11_KEYFILE_PEM_LABEL, &len) : NULL;
        CHECK(der && len > 0 && der[0] == 0x30);
        /* exactly the structure the format describes, byte for byte */
        unsigned char want[512];
        size_t wlen = good_der(want, uris[i]);
        CHECK_MSG(der && (size_t)len == wlen && memcmp(der, want, wlen) == 0, uris[i]);
        if (der)
            accepted(der, (size_t)len, uris[i], uris[i]);
        OPENSSL_free(der);
        free(pem);
    }

    /* lengths across DER's forms: the SEQUENCE and the URI in short (<128), one-byte
     * (<256) and two-byte forms, up to the 48000-byte limit, whose PEM file is within the
     * 64 KiB readers take */
    static const size_t lens[] = { 7, 60, 97, 98, 99, 100, 127, 128, 200, 226, 227, 228,
                                   255, 256, 1000, 4096, 47999, HSMTLS_P11_KEYFILE_MAX_URI };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *uri = repeat_uri(lens[i]);
        char *pem = uri ? hsmtls_p11_keyfile_pem(uri) : NULL;
        long len = 0;
        unsigned char *der = pem ? pem_body(pem, HSMTLS_P11_KEYFILE_PEM_LABEL, &len) : NULL;
        char *back = der ? hsmtls_p11_keyfile_uri_from_der(der, (size_t)len) : NULL;
        char what[64];
        snprintf(what, sizeof what, "a %zu-byte URI", lens[i]);
        CHECK_MSG(streq(back, uri), what);
        CHECK_MSG(pem && strlen(pem) <= HSMTLS_P11_KEYFILE_MAX_PEM, what);
        if (!back)
            fprintf(stderr, "  %s\n", hsmtls_p11_error_message());
        free(back);
        OPENSSL_free(der);
        free(pem);
        free(uri);
    }
}

static void test_oversized(void)
{
    /* over 48000 bytes: no file is written */
    char *uri = repeat_uri(HSMTLS_P11_KEYFILE_MAX_URI + 1);
    hsmtls_p11_error_clear();
    char *pem = uri ? hsmtls_p11_keyfile_pem(uri) : NULL;
    CHECK(pem == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
    CHECK_MSG(check_contains(hsmtls_p11_error_message(), "URI too long for a key file"), hsmtls_p11_error_message());
    free(pem);
    free(uri);
    uri = repeat_uri(1000000);
    pem = uri ? hsmtls_p11_keyfile_pem(uri) : NULL;
    CHECK(pem == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD);
    free(pem);
    free(uri);

    /* a length the input does not have */
    unsigned char der[16] = { 0x30, 0x82, 0xff, 0xff, 0x1a, 0x02, 'P', 'K' };
    refused(der, sizeof der, NOT_OURS, "SEQUENCE length 65535 in 16 bytes");
    /* lengths in three or more bytes are not read at all */
    unsigned char big[70000];
    size_t n = good_der(big, "pkcs11:object=k");
    big[1] = 0x83;
    refused(big, n, NOT_OURS, "three-byte length");
    big[1] = 0x80; /* BER's indefinite length */
    refused(big, n, NOT_OURS, "indefinite length");
}

static void test_truncated(void)
{
    unsigned char der[512];
    const char *uri = "pkcs11:token=server;object=ec-p256;type=private";
    size_t n = good_der(der, uri);
    accepted(der, n, uri, "whole");
    /* every shorter prefix is refused, read within its bounds (ASan watches) */
    for (size_t len = 0; len < n; len++) {
        unsigned char *copy = malloc(len ? len : 1);
        memcpy(copy, der, len);
        char *got = hsmtls_p11_keyfile_uri_from_der(copy, len);
        CHECK_MSG(got == NULL && check_contains(hsmtls_p11_error_message(), NOT_OURS), "a truncated body");
        if (got)
            fprintf(stderr, "  %zu of %zu bytes read as %s\n", len, n, got);
        free(got);
        free(copy);
    }
    CHECK(hsmtls_p11_keyfile_uri_from_der(NULL, 0) == NULL);

    /* a truncated PEM text has no body at all */
    char *pem = hsmtls_p11_keyfile_pem(uri);
    long len = 0;
    size_t pl = pem ? strlen(pem) : 0;
    for (size_t cut = 0; pem && cut < pl - 1; cut += 7) {
        char *part = malloc(cut + 1);
        memcpy(part, pem, cut);
        part[cut] = '\0';
        unsigned char *body = pem_body(part, HSMTLS_P11_KEYFILE_PEM_LABEL, &len);
        CHECK_MSG(body == NULL, "a truncated PEM text");
        OPENSSL_free(body);
        free(part);
    }
    free(pem);
}

static void test_malformed(void)
{
    unsigned char der[512];
    const char *desc = HSMTLS_P11_KEYFILE_DESC;
    size_t dl = strlen(desc);
    const char *uri = "pkcs11:object=k";
    size_t ul = strlen(uri), n;

    n = make_der(der, 0x1a, desc, dl, 0x0c, uri, ul);
    der[0] = 0x31; /* a SET */
    refused(der, n, NOT_OURS, "outer tag");
    n = make_der(der, 0x0c, desc, dl, 0x0c, uri, ul);
    refused(der, n, NOT_OURS, "description as UTF8String");
    n = make_der(der, 0x1a, desc, dl, 0x1a, uri, ul);
    refused(der, n, NOT_OURS, "URI as VisibleString");
    n = make_der(der, 0x1a, desc, dl, 0x16, uri, ul);
    refused(der, n, NOT_OURS, "URI as IA5String");

    /* wrong labels: another description is refused; the format's version is not
     * checked today, only its first 20 bytes "PKCS#11 Provider URI" */
    n = make_der(der, 0x1a, "PKCS#12 Provider URI v1.0", dl, 0x0c, uri, ul);
    refused(der, n, NOT_OURS, "PKCS#12 description");
    n = make_der(der, 0x1a, "pkcs#11 provider uri v1.0", dl, 0x0c, uri, ul);
    refused(der, n, NOT_OURS, "description in lower case");
    n = make_der(der, 0x1a, "PKCS#11 Provider UR", 19, 0x0c, uri, ul);
    refused(der, n, NOT_OURS, "description cut short");
    n = make_der(der, 0x1a, "", 0, 0x0c, uri, ul);
    refused(der, n, NOT_OURS, "empty description");
    n = make_der(der, 0x1a, "PKCS#11 Provider URI v2.0", dl, 0x0c, uri, ul);
    accepted(der, n, uri, "version 2.0 description");

    /* the URI itself */
    n = make_der(der, 0x1a, desc, dl, 0x0c, "file:/etc/key.pem", 17);
    refused(der, n, NOT_PKCS11, "file: URI");
    n = make_der(der, 0x1a, desc, dl, 0x0c, "pkcs11", 6);
    refused(der, n, NOT_PKCS11, "\"pkcs11\"");
    n = make_der(der, 0x1a, desc, dl, 0x0c, "", 0);
    refused(der, n, NOT_PKCS11, "empty URI");
    n = make_der(der, 0x1a, desc, dl, 0x0c, "PKCS11:object=k", 15);
    refused(der, n, NOT_PKCS11, "scheme in upper case");
    n = make_der(der, 0x1a, desc, dl, 0x0c, "pkcs11:object=k\0;object=x", 25);
    refused(der, n, NOT_PKCS11, "a NUL inside the URI");
    n = make_der(der, 0x1a, desc, dl, 0x0c, "pkcs11:", 7);
    accepted(der, n, "pkcs11:", "\"pkcs11:\" alone");

    /* the writer writes only URIs that parse, and the reader reads only those */
    hsmtls_p11_error_clear();
    char *pem = hsmtls_p11_keyfile_pem("not a uri");
    CHECK(pem == NULL && check_contains(hsmtls_p11_error_message(), "missing \"pkcs11:\" scheme"));
    free(pem);
    pem = hsmtls_p11_keyfile_pem("pkcs11:objct=k");
    CHECK(pem == NULL && check_contains(hsmtls_p11_error_message(), "unknown attribute \"objct\""));
    free(pem);
    long len = 0;
    n = make_der(der, 0x1a, desc, dl, 0x0c, "pkcs11:objct=k", 14);
    refused(der, n, "unknown attribute \"objct\"", "a URI that does not parse");

    /* lenient today: bytes after the SEQUENCE, bytes after the URI inside it, and a
     * length in the long form where the short one would do (not DER) */
    n = good_der(der, uri);
    memcpy(der + n, "\x05\x00trailing", 10);
    accepted(der, n + 10, uri, "bytes after the SEQUENCE");
    n = make_der(der, 0x1a, desc, dl, 0x0c, uri, ul);
    unsigned char inner[512];
    memcpy(inner, der, n);
    inner[1] = (unsigned char)(inner[1] + 2);
    inner[n] = 0x05;
    inner[n + 1] = 0x00;
    accepted(inner, n + 2, uri, "a NULL after the URI inside the SEQUENCE");
    unsigned char longform[512];
    longform[0] = 0x30;
    longform[1] = 0x81;
    longform[2] = der[1];
    memcpy(longform + 3, der + 2, n - 2);
    accepted(longform, n + 1, uri, "SEQUENCE length in the long form");

    /* a PEM block with another label holds no key file for us */
    pem = hsmtls_p11_keyfile_pem(uri);
    if (pem) {
        char *other = malloc(strlen(pem) + 16);
        const char *body_start = strchr(pem, '\n') + 1;
        const char *end = strstr(pem, "-----END");
        sprintf(other, "-----BEGIN PRIVATE KEY-----\n%.*s-----END PRIVATE KEY-----\n",
                (int)(end - body_start), body_start);
        CHECK(pem_body(other, HSMTLS_P11_KEYFILE_PEM_LABEL, &len) == NULL);
        unsigned char *as_other = pem_body(other, "PRIVATE KEY", &len);
        CHECK(as_other != NULL); /* the same bytes under the other label */
        OPENSSL_free(as_other);
        free(other);
        /* corrupted base64 */
        char *bad = strdup(pem);
        bad[40] = '*';
        CHECK(pem_body(bad, HSMTLS_P11_KEYFILE_PEM_LABEL, &len) == NULL);
        free(bad);
    }
    free(pem);
}

/* A key file may not choose the module nor the PIN (issue 12): neither written nor read,
 * whichever attribute, with the attribute named. Path attributes are what it holds. */
static void test_no_module_no_pin(void)
{
    static const struct { const char *uri, *attr; } cases[] = {
        { "pkcs11:token=server;object=k;type=private?module-path=/tmp/evil.so", "module-path" },
        { "pkcs11:token=server;object=k?module-name=softhsm2", "module-name" },
        { "pkcs11:object=k?pin-source=file:/etc/shadow", "pin-source" },
        { "pkcs11:object=k?pin-source=/etc/shadow&x-a=1", "pin-source" },
        { "pkcs11:object=k?pin-value=1234", "pin-value" },
        { "pkcs11:object=k?pin-value=", "pin-value" },
        { "pkcs11:object=k?module-path=", "module-path" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "a key file may not name \"%s\"", cases[i].attr);
        hsmtls_p11_error_clear();
        char *pem = hsmtls_p11_keyfile_pem(cases[i].uri);
        int ok = pem == NULL && hsmtls_p11_error_rv() == CKR_ACTION_PROHIBITED &&
                 check_contains(hsmtls_p11_error_message(), want) &&
                 !check_contains(hsmtls_p11_error_message(), "1234");
        CHECK_MSG(ok, cases[i].uri);
        free(pem);
        unsigned char der[512];
        size_t n = good_der(der, cases[i].uri);
        hsmtls_p11_error_clear();
        char *uri = hsmtls_p11_keyfile_uri_from_der(der, n);
        ok = uri == NULL && hsmtls_p11_error_rv() == CKR_ACTION_PROHIBITED &&
             check_contains(hsmtls_p11_error_message(), want);
        CHECK_MSG(ok, cases[i].uri);
        if (!ok)
            fprintf(stderr, "  got %s / %s\n", uri ? uri : "(null)", hsmtls_p11_error_message());
        free(uri);
    }
}

static uint32_t rng_state = 0x9e3779b9u;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Random damage to a valid body: the decoder never reads out of bounds (ASan), and what
 * it accepts is a pkcs11: URI without a NUL. */
static void test_mutations(void)
{
    unsigned char der[512];
    size_t n = good_der(der, "pkcs11:token=server;object=ec-p256;type=private");
    int accepted_n = 0, refused_n = 0, bad = 0;
    for (int round = 0; round < 5000; round++) {
        unsigned char *copy = malloc(n);
        memcpy(copy, der, n);
        int flips = 1 + (int)(rng() % 3);
        for (int f = 0; f < flips; f++)
            copy[rng() % n] = (unsigned char)rng();
        size_t len = n - (rng() % 4 == 0 ? rng() % n : 0);
        char *uri = hsmtls_p11_keyfile_uri_from_der(copy, len);
        if (uri) {
            accepted_n++;
            if (strncmp(uri, "pkcs11:", 7) != 0)
                bad++;
        } else {
            refused_n++;
        }
        free(uri);
        free(copy);
    }
    CHECK(bad == 0);
    CHECK(accepted_n > 0 && refused_n > 0); /* the damage hit both kinds of bytes */
}

int main(void)
{
    test_round_trip();
    test_oversized();
    test_truncated();
    test_malformed();
    test_no_module_no_pin();
    test_mutations();
    return check_finish();
}
