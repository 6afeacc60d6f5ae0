/* RFC 7512 URIs (pkcs11/uri.c, hsmtls/p11_uri.h): the input is URI text. Parsed; a
 * refused one must say why. An accepted one is masked, written without its PIN, matched
 * against token, slot and module information and an object, and formatted back; every
 * step runs under ASan+UBSan and these rules hold:
 *   - a pin-value the input gives does not show after "pin-value=" in the masked text or
 *     an error message (a PIN is never printed);
 *   - the URI without its PIN parses again, has no pin-value, and names the same object;
 *   - the object's label has no NUL inside (a NUL would select another object);
 *   - an object formatted from the URI's label, id and type parses again and matches that
 *     object, and the URI's own token information matches the URI;
 *   - percent-decoding what was encoded gives back the input bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_uri.h"

/* The PIN rule: for every pin-value the input gives (split as p11-kit splits: the path
 * at ';' up to the first '?', the query after it at '&'), "pin-value=VALUE" does not
 * appear in `out` (the masked text, an error message), unless the input has that text
 * elsewhere too, or the value starts like "***" (what masking writes). */
static const char *input;

/* Whether the n bytes at seg occur only there in the input (else the same text may be
 * shown legitimately, as part of another attribute's value). */
static int once(const char *seg, size_t n)
{
    for (const char *p = input; (p = strstr(p, "pin-value=")) != NULL; p++)
        if (p != seg && strncmp(p, seg, n) == 0)
            return 0;
    return 1;
}

static void check_masked(const char *out, const char *what)
{
    const char *p = strncasecmp(input, "pkcs11:", 7) == 0 ? input + 7 : input;
    int query = 0;
    while (p) {
        size_t n = strcspn(p, query ? "&" : ";?");
        if (n > 10 && strncmp(p, "pin-value=", 10) == 0 && strncmp(p + 10, "***", n - 10 < 3 ? n - 10 : 3) != 0 &&
            once(p, n)) {
            for (const char *o = out; (o = strstr(o, "pin-value=")) != NULL; o++)
                FUZZ_CHECK(strncmp(o + 10, p + 10, n - 10) != 0, "the PIN \"%.*s\" shows in %s: %s",
                           (int)(n - 10), p + 10, what, out);
        }
        if (p[n] == '?')
            query = 1;
        p = p[n] ? p + n + 1 : NULL;
    }
}

static void check_same_object(const hsmtls_p11_uri *a, const hsmtls_p11_uri *b)
{
    const char *la = hsmtls_p11_uri_object_label(a), *lb = hsmtls_p11_uri_object_label(b);
    FUZZ_CHECK((!la && !lb) || (la && lb && strcmp(la, lb) == 0), "label \"%s\" became \"%s\"",
               la ? la : "(none)", lb ? lb : "(none)");
    size_t na, nb;
    const unsigned char *ia = hsmtls_p11_uri_object_id(a, &na), *ib = hsmtls_p11_uri_object_id(b, &nb);
    FUZZ_CHECK(!ia == !ib && na == nb && (na == 0 || memcmp(ia, ib, na) == 0), "the id changed");
    FUZZ_CHECK(hsmtls_p11_uri_object_class(a) == hsmtls_p11_uri_object_class(b), "the type changed");
}

static void exercise(const hsmtls_p11_uri *uri)
{
    const char *masked = hsmtls_p11_uri_masked(uri);
    FUZZ_CHECK(masked != NULL, "no masked text");
    check_masked(masked, "the masked URI");

    /* the URI without its PIN: what `hsmtls keyfile` stores */
    char *bare = hsmtls_p11_uri_without_pin(uri);
    if (bare) {
        hsmtls_p11_uri *again = hsmtls_p11_uri_parse(bare);
        FUZZ_CHECK(again != NULL, "the URI without its PIN does not parse: %s (%s)", bare,
                   hsmtls_p11_error_message());
        FUZZ_CHECK(hsmtls_p11_uri_pin_value(again) == NULL, "a pin-value is left: %s", bare);
        check_same_object(uri, again);
        hsmtls_p11_uri_free(again);
        free(bare);
    }

    (void)hsmtls_p11_uri_pin_source(uri);
    (void)hsmtls_p11_uri_module_name(uri);
    (void)hsmtls_p11_uri_module_path(uri);
    (void)hsmtls_p11_uri_has_token_part(uri);
    CK_SLOT_ID slot = 0;
    int has_slot = hsmtls_p11_uri_slot_id(uri, &slot);

    const char *label = hsmtls_p11_uri_object_label(uri);
    size_t id_len = 0;
    const unsigned char *id = hsmtls_p11_uri_object_id(uri, &id_len);
    CK_OBJECT_CLASS cls = hsmtls_p11_uri_object_class(uri);
    if (label) {
        CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(hsmtls_p11_uri_p11kit(uri), CKA_LABEL);
        FUZZ_CHECK(a && strlen(label) == a->ulValueLen,
                   "object= holds a NUL: label \"%s\" is %zu bytes of %lu", label, strlen(label),
                   a ? (unsigned long)a->ulValueLen : 0ul);
    }
    FUZZ_CHECK(hsmtls_p11_uri_match_object(uri, cls, label, id, id_len) == 1,
               "the URI does not match its own object");
    (void)hsmtls_p11_uri_match_object(uri, CKO_PRIVATE_KEY, "key", (const unsigned char *)"\x01", 1);

    /* the URI's own module, slot and token information (p11-kit keeps them padded) */
    P11KitUri *p = hsmtls_p11_uri_p11kit(uri);
    CK_INFO module = *p11_kit_uri_get_module_info(p);
    CK_SLOT_INFO slot_info = *p11_kit_uri_get_slot_info(p);
    CK_TOKEN_INFO token = *p11_kit_uri_get_token_info(p);
    (void)hsmtls_p11_uri_match_module(uri, &module);
    (void)hsmtls_p11_uri_match_slot(uri, has_slot ? slot : 0, &slot_info);
    FUZZ_CHECK(hsmtls_p11_uri_match_token(uri, &token) == 1,
               "the URI does not match its own token information");

    /* formatted back from what it names, then parsed again: the same object */
    char *formatted = hsmtls_p11_uri_format_object(&token, label, id, id_len, cls);
    if (formatted) {
        hsmtls_p11_uri *again = hsmtls_p11_uri_parse(formatted);
        FUZZ_CHECK(again != NULL, "a formatted URI does not parse: %s (%s)", formatted,
                   hsmtls_p11_error_message());
        FUZZ_CHECK(hsmtls_p11_uri_match_object(again, cls, label, id, id_len) == 1,
                   "a formatted URI does not find its object: %s", formatted);
        FUZZ_CHECK(hsmtls_p11_uri_match_token(again, &token) == 1,
                   "a formatted URI does not find its token: %s", formatted);
        hsmtls_p11_uri_free(again);
        free(formatted);
    }
    free(hsmtls_p11_uri_format_token(&token));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    input = text;

    hsmtls_p11_error_clear();
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    if (uri) {
        exercise(uri);
        hsmtls_p11_uri_free(uri);
    } else {
        const char *msg = hsmtls_p11_error_message();
        FUZZ_CHECK(msg && *msg, "refused without a message");
        check_masked(msg, "the error message");
    }

    /* percent-encoding both ways, on the raw bytes */
    char *enc = hsmtls_p11_uri_encode(data, size);
    FUZZ_CHECK(enc != NULL, "encode failed");
    size_t dlen = 0;
    unsigned char *dec = hsmtls_p11_uri_decode(enc, &dlen);
    FUZZ_CHECK(dec && dlen == size && memcmp(dec, data, size) == 0, "decode(encode(x)) != x");
    free(dec);
    free(enc);
    free(hsmtls_p11_uri_decode(text, &dlen));
    free(text);
    return 0;
}
