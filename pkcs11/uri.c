/* RFC 7512 PKCS#11 URIs: a strict front end to p11-kit's parser. p11-kit is lenient
 * in ways that turn typos into URIs that silently match nothing (unknown attributes,
 * type=foo, over-long labels) or something else (whitespace stripped, duplicates
 * overwritten, "a;;b" ending the path early), so the text is checked and rebuilt here
 * first, and p11-kit only ever sees a URI it reads the way the user meant it. */
#include "hsmtls/p11_uri.h"
#include "mask_text.h"
#include "p11_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELD_SIZE(type, member) sizeof(((type *)0)->member)

enum kind { TEXT, BYTES, TYPE, SLOT_ID, VERSION };

struct attr_def {
    const char *name;
    enum kind kind;
    size_t max;     /* fixed PKCS#11 field: p11-kit makes a longer value match nothing */
    int query;      /* belongs after '?' */
    int token_part; /* selects a module, slot or token rather than an object */
};

static const struct attr_def attr_defs[] = {
    { "token", TEXT, FIELD_SIZE(CK_TOKEN_INFO, label), 0, 1 },
    { "manufacturer", TEXT, FIELD_SIZE(CK_TOKEN_INFO, manufacturerID), 0, 1 },
    { "serial", TEXT, FIELD_SIZE(CK_TOKEN_INFO, serialNumber), 0, 1 },
    { "model", TEXT, FIELD_SIZE(CK_TOKEN_INFO, model), 0, 1 },
    { "library-manufacturer", TEXT, FIELD_SIZE(CK_INFO, manufacturerID), 0, 1 },
    { "library-description", TEXT, FIELD_SIZE(CK_INFO, libraryDescription), 0, 1 },
    { "library-version", VERSION, 0, 0, 1 },
    { "slot-id", SLOT_ID, 0, 0, 1 },
    { "slot-description", TEXT, FIELD_SIZE(CK_SLOT_INFO, slotDescription), 0, 1 },
    { "slot-manufacturer", TEXT, FIELD_SIZE(CK_SLOT_INFO, manufacturerID), 0, 1 },
    { "object", BYTES, 0, 0, 0 },
    { "id", BYTES, 0, 0, 0 },
    { "type", TYPE, 0, 0, 0 },
    { "pin-value", BYTES, 0, 1, 0 },
    { "pin-source", BYTES, 0, 1, 0 },
    { "module-name", BYTES, 0, 1, 1 },
    { "module-path", BYTES, 0, 1, 1 },
};
#define N_ATTRS (sizeof attr_defs / sizeof attr_defs[0])

struct hsmtls_p11_uri {
    P11KitUri *p11;
    char *masked;      /* hsmtls_p11_mask_text(): to print */
    char *plain;       /* pin-value segments masked, nothing escaped: without_pin's source */
    char *label;       /* CKA_LABEL NUL-terminated; p11-kit's copy is not */
    unsigned seen;     /* bit i: attr_defs[i] was given */
    int has_slot_id;   /* kept here: p11-kit 0.24 wraps an over-long slot-id silently, */
    CK_SLOT_ID slot_id; /* newer ones read it into a long, and (CK_SLOT_ID)-1 is "unset" */
};

static const char *after_scheme(const char *text)
{
    return strncasecmp(text, "pkcs11:", 7) == 0 ? text + 7 : NULL;
}

struct seg {
    const char *name, *val, *end;
    size_t name_len, val_len;
    int has_eq, query;
};

/* Splits as p11-kit does: the path ends at the first '?', path attributes at ';',
 * query attributes at '&' only, a name at its first '='. Masking and checking both
 * use it, so the pin-value masked is exactly the one p11-kit reads. */
static int next_seg(const char **pos, int *in_query, struct seg *s)
{
    const char *p = *pos;
    if (!p)
        return 0;
    const char *end = p + strcspn(p, *in_query ? "&" : ";?");
    const char *eq = memchr(p, '=', (size_t)(end - p));
    s->name = p;
    s->end = end;
    s->has_eq = eq != NULL;
    s->name_len = (size_t)((eq ? eq : end) - p);
    s->val = eq ? eq + 1 : end;
    s->val_len = (size_t)(end - s->val);
    s->query = *in_query;
    if (*end == '?')
        *in_query = 1;
    *pos = *end ? end + 1 : NULL;
    return 1;
}

/* Wider than "pin-value" so that a misspelt one (pin_value, PIN-VALUE, pinvalue) is
 * masked in the error that rejects it. pin-source names a file: logs need it. */
static int is_secret(const struct seg *s)
{
    if (s->name_len == 10 && memcmp(s->name, "pin-source", 10) == 0)
        return 0;
    for (size_t i = 0; i + 3 <= s->name_len; i++)
        if (strncasecmp(s->name + i, "pin", 3) == 0)
            return 1;
    return 0;
}

/* The URI with each secret segment masked and nothing escaped, for
 * hsmtls_p11_uri_without_pin (which drops those segments). Printing uses
 * hsmtls_p11_mask_text. */
static char *mask_segments(const char *text)
{
    char *out = NULL;
    size_t n;
    FILE *f = open_memstream(&out, &n);
    if (!f)
        return NULL;
    const char *pos = after_scheme(text);
    if (pos)
        fwrite(text, 1, 7, f);
    else
        pos = text; /* still mask: the error for a missing scheme quotes the text */
    int in_query = 0;
    struct seg s;
    while (next_seg(&pos, &in_query, &s)) {
        if (!is_secret(&s))
            fwrite(s.name, 1, (size_t)(s.end - s.name), f);
        else if (s.has_eq)
            fprintf(f, "%.*s=***", (int)s.name_len, s.name);
        else
            fputs("***", f); /* "pin-value1234": the name is the secret */
        if (*s.end)
            fputc(*s.end, f);
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *hsmtls_p11_uri_without_pin(const hsmtls_p11_uri *uri)
{
    /* From the masked text: the PIN itself is never in reach of this code. */
    char *out = NULL;
    size_t n;
    FILE *f = open_memstream(&out, &n);
    if (!f)
        return NULL;
    const char *pos = uri->plain + 7;
    fputs("pkcs11:", f);
    int in_query = 0, path_segs = 0, query_segs = 0;
    struct seg s;
    while (next_seg(&pos, &in_query, &s)) {
        if (s.name == s.end || is_secret(&s))
            continue;
        if (s.query)
            fputc(query_segs++ ? '&' : '?', f);
        else if (path_segs++)
            fputc(';', f);
        fwrite(s.name, 1, (size_t)(s.end - s.name), f);
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int nomem(void)
{
    return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory handling a PKCS#11 URI");
}

__attribute__((format(printf, 2, 3)))
static int bad(const hsmtls_p11_uri *uri, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* what quotes names and values as written: masked and escaped like the URI */
    char *shown = hsmtls_p11_mask_text(what);
    int rc = hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "invalid PKCS#11 URI \"%s\": %s",
                                  uri->masked, shown ? shown : "(out of memory)");
    free(shown);
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* out may be NULL to only check the encoding and measure the result. */
static int pct_decode(const char *s, size_t n, unsigned char *out, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++, o++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = n - i >= 3 ? hexval(s[i + 1]) : -1;
            int lo = n - i >= 3 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (out)
            out[o] = c;
    }
    *len = o;
    return 0;
}

/* Whether a well-formed percent-encoded value decodes to a NUL byte. */
static int has_nul(const char *v, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (v[i] == '%' && v[i + 1] == '0' && v[i + 2] == '0')
            return 1;
    return 0;
}

/* M or M.N; p11-kit refuses 255, its "any version" marker. */
static int version_ok(const char *v, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        unsigned num = 0, digits = 0;
        for (; i < n && v[i] >= '0' && v[i] <= '9' && digits <= 3; i++, digits++)
            num = num * 10 + (unsigned)(v[i] - '0');
        if (digits == 0 || digits > 3 || num > 254)
            return 0;
        if (i == n)
            return 1;
        if (part == 1 || v[i++] != '.')
            return 0;
    }
    return 0;
}

static int check_value(hsmtls_p11_uri *uri, const struct attr_def *d, const struct seg *s)
{
    static const char *const types[] = { "public", "private", "cert", "secret-key", "data" };
    int nlen = (int)s->name_len, vlen = (int)s->val_len;
    size_t len;

    /* p11-kit would strip them silently; a space is kept (see put_value) */
    for (size_t i = 0; i < s->val_len; i++)
        if ((unsigned char)s->val[i] < 0x20 || s->val[i] == 0x7f)
            return bad(uri, "control character in \"%.*s\"", nlen, s->name);
    if (pct_decode(s->val, s->val_len, NULL, &len) < 0)
        return bad(uri, "bad percent-encoding in \"%.*s\"", nlen, s->name);
    /* %00: every attribute but id is a string, which a NUL would end early for p11-kit's
     * getters and our C strings (object=a%00b would find "a"); CKA_ID is bytes. */
    if (!(d && strcmp(d->name, "id") == 0) && has_nul(s->val, s->val_len))
        return bad(uri, "\"%.*s\" holds a NUL byte (%%00): only id may", nlen, s->name);
    if (!d)
        return 0;

    switch (d->kind) {
    case TEXT:
        if (len > d->max)
            return bad(uri, "\"%s\" is longer than the %zu bytes of its PKCS#11 field",
                       d->name, d->max);
        break;
    case BYTES:
        break;
    case TYPE: /* compared undecoded, as p11-kit does */
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strlen(types[i]) == s->val_len && memcmp(types[i], s->val, s->val_len) == 0)
                return 0;
        return bad(uri, "type \"%.*s\" is not one of public, private, cert, secret-key, data",
                   vlen, s->val);
    case SLOT_ID:
        uri->has_slot_id = 1;
        uri->slot_id = 0;
        for (size_t i = 0; i < s->val_len; i++) {
            if (s->val[i] < '0' || s->val[i] > '9')
                return bad(uri, "slot-id \"%.*s\" is not a decimal number", vlen, s->val);
            unsigned digit = (unsigned)(s->val[i] - '0');
            if (uri->slot_id > (ULONG_MAX - digit) / 10)
                return bad(uri, "slot-id \"%.*s\" is out of range", vlen, s->val);
            uri->slot_id = uri->slot_id * 10 + digit;
        }
        if (s->val_len == 0) /* p11-kit would read slot 0 */
            return bad(uri, "slot-id \"\" is not a decimal number");
        break;
    case VERSION:
        if (!version_ok(s->val, s->val_len))
            return bad(uri, "library-version \"%.*s\" is not M or M.N (0-254 each)",
                       vlen, s->val);
        break;
    }
    return 0;
}

static const struct attr_def *find_attr(const struct seg *s)
{
    for (size_t i = 0; i < N_ATTRS; i++)
        if (strlen(attr_defs[i].name) == s->name_len &&
            memcmp(attr_defs[i].name, s->name, s->name_len) == 0)
            return &attr_defs[i];
    return NULL;
}

/* 1: hand the segment to p11-kit, 0: drop it, -1: error set. */
static int check_seg(hsmtls_p11_uri *uri, const struct seg *s)
{
    int nlen = (int)s->name_len;
    if (s->end == s->name)
        return 0; /* ";;", a trailing ';' or '&': p11-kit ends the path early on "a;;b" */
    if (!s->has_eq)
        return is_secret(s) ? bad(uri, "an attribute has no \"=\" (expected name=value)")
                            : bad(uri, "attribute \"%.*s\" has no \"=\" (expected name=value)",
                                  nlen, s->name);
    if (s->name_len > 2 && memcmp(s->name, "x-", 2) == 0)
        return check_value(uri, NULL, s); /* RFC 7512 vendor attribute; p11-kit would make
                                           * a path one match nothing */
    const struct attr_def *d = find_attr(s);
    if (!d)
        return bad(uri, "unknown %sattribute \"%.*s\"", s->query ? "query " : "", nlen, s->name);
    if (d->query != s->query) /* p11-kit takes a pin-value in the path too */
        return bad(uri, "\"%s\" is a %s attribute: write it %s \"?\"", d->name,
                   d->query ? "query" : "path", d->query ? "after" : "before");
    unsigned bit = 1u << (d - attr_defs);
    if (uri->seen & bit)
        return bad(uri, "duplicate attribute \"%s\"", d->name); /* p11-kit keeps the last */
    uri->seen |= bit;
    if (check_value(uri, d, s) < 0)
        return -1;
    return d->kind != SLOT_ID; /* set after parsing, see has_slot_id */
}

/* p11-kit strips whitespace anywhere in a URI (RFC 3986 appendix C, meant for URIs
 * wrapped in prose); on a command line "token=My Token" means the label "My Token". */
static void put_value(FILE *f, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == ' ')
            fputs("%20", f);
        else
            fputc(p[i], f);
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Checks the text and rebuilds it for p11-kit in *clean (malloc'd); -1 with error. */
static int check(hsmtls_p11_uri *uri, const char *text, char **clean)
{
    const char *pos = after_scheme(text);
    if (!pos)
        return bad(uri, "missing \"pkcs11:\" scheme");
    size_t n;
    FILE *f = open_memstream(clean, &n);
    if (!f)
        return nomem();
    fputs("pkcs11:", f);
    int in_query = 0, npath = 0, nquery = 0, rc = 0;
    struct seg s;
    while (rc >= 0 && next_seg(&pos, &in_query, &s)) {
        rc = check_seg(uri, &s);
        if (rc <= 0)
            continue;
        if (s.query)
            fputc(nquery++ ? '&' : '?', f);
        else if (npath++)
            fputc(';', f);
        fwrite(s.name, 1, s.name_len + 1, f);
        put_value(f, s.val, s.val_len);
    }
    if (fclose(f) != 0 && rc >= 0)
        rc = nomem();
    if (rc < 0) {
        wipe_free(*clean);
        *clean = NULL;
        return -1;
    }
    return 0;
}

hsmtls_p11_uri *hsmtls_p11_uri_parse(const char *text)
{
    if (!text) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "invalid PKCS#11 URI: none given");
        return NULL;
    }
    char *clean = NULL;
    hsmtls_p11_uri *uri = calloc(1, sizeof *uri);
    if (!uri || !(uri->masked = hsmtls_p11_mask_text(text)) || !(uri->plain = mask_segments(text)) ||
        !(uri->p11 = p11_kit_uri_new())) {
        nomem();
        goto fail;
    }
    if (check(uri, text, &clean) < 0)
        goto fail;
    int rc = p11_kit_uri_parse(clean, P11_KIT_URI_FOR_ANY, uri->p11);
    wipe_free(clean);
    if (rc != P11_KIT_URI_OK) {
        bad(uri, "%s", p11_kit_uri_message(rc));
        goto fail;
    }
    if (p11_kit_uri_any_unrecognized(uri->p11)) { /* would match nothing, silently */
        bad(uri, "p11-kit did not recognise part of it");
        goto fail;
    }
    if (uri->has_slot_id)
        p11_kit_uri_set_slot_id(uri->p11, uri->slot_id);
    CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(uri->p11, CKA_LABEL);
    if (label) {
        if (!(uri->label = malloc(label->ulValueLen + 1))) {
            nomem();
            goto fail;
        }
        if (label->ulValueLen)
            memcpy(uri->label, label->pValue, label->ulValueLen);
        uri->label[label->ulValueLen] = '\0';
    }
    return uri;
fail:
    hsmtls_p11_uri_free(uri);
    return NULL;
}

void hsmtls_p11_uri_free(hsmtls_p11_uri *uri)
{
    if (!uri)
        return;
    if (uri->p11) {
        /* p11-kit frees its PIN copy without clearing it */
        char *pin = (char *)p11_kit_uri_get_pin_value(uri->p11);
        if (pin)
            explicit_bzero(pin, strlen(pin));
        p11_kit_uri_free(uri->p11);
    }
    free(uri->masked);
    free(uri->plain);
    free(uri->label);
    free(uri);
}

const char *hsmtls_p11_uri_masked(const hsmtls_p11_uri *uri) { return uri->masked; }

char *hsmtls_p11_mask_text(const char *text) { return hsmtls_mask_text_impl(text); }
P11KitUri *hsmtls_p11_uri_p11kit(const hsmtls_p11_uri *uri) { return uri->p11; }
const char *hsmtls_p11_uri_object_label(const hsmtls_p11_uri *uri) { return uri->label; }

/* hsmtls_p11_uri_pin_value() etc.: p11-kit has percent-decoded them */
#define QUERY_GETTER(attr)                                 \
    const char *hsmtls_p11_uri_##attr(const hsmtls_p11_uri *uri) \
    {                                                      \
        return p11_kit_uri_get_##attr(uri->p11);           \
    }
QUERY_GETTER(pin_value)
QUERY_GETTER(pin_source)
QUERY_GETTER(module_name)
QUERY_GETTER(module_path)

const unsigned char *hsmtls_p11_uri_object_id(const hsmtls_p11_uri *uri, size_t *id_len)
{
    CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(uri->p11, CKA_ID);
    if (id_len)
        *id_len = a ? a->ulValueLen : 0;
    if (!a)
        return NULL;
    return a->pValue ? a->pValue : (const void *)""; /* "id=": present but empty */
}

CK_OBJECT_CLASS hsmtls_p11_uri_object_class(const hsmtls_p11_uri *uri)
{
    CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(uri->p11, CKA_CLASS);
    CK_OBJECT_CLASS cls;
    if (!a || a->ulValueLen != sizeof cls)
        return (CK_OBJECT_CLASS)-1;
    memcpy(&cls, a->pValue, sizeof cls);
    return cls;
}

int hsmtls_p11_uri_slot_id(const hsmtls_p11_uri *uri, CK_SLOT_ID *slot)
{
    if (!uri->has_slot_id)
        return 0;
    if (slot)
        *slot = uri->slot_id;
    return 1;
}

int hsmtls_p11_uri_has_token_part(const hsmtls_p11_uri *uri)
{
    for (size_t i = 0; i < N_ATTRS; i++)
        if (attr_defs[i].token_part && (uri->seen & (1u << i)))
            return 1;
    return 0;
}

int hsmtls_p11_uri_match_module(const hsmtls_p11_uri *uri, CK_INFO *info)
{
    return p11_kit_uri_match_module_info(uri->p11, info);
}

int hsmtls_p11_uri_match_slot(const hsmtls_p11_uri *uri, CK_SLOT_ID slot, CK_SLOT_INFO *info)
{
    CK_SLOT_ID want;
    if (hsmtls_p11_uri_slot_id(uri, &want) && want != slot)
        return 0;
    return p11_kit_uri_match_slot_info(uri->p11, info);
}

int hsmtls_p11_uri_match_token(const hsmtls_p11_uri *uri, CK_TOKEN_INFO *info)
{
    return p11_kit_uri_match_token_info(uri->p11, info);
}

static int same_bytes(const CK_ATTRIBUTE *a, const void *p, size_t n)
{
    return a->ulValueLen == n && (n == 0 || memcmp(a->pValue, p, n) == 0);
}

/* By hand: p11_kit_uri_match_attributes skips a URI attribute the object lacks, so
 * "object=foo" would match an object with no label. Absent and empty compare equal. */
int hsmtls_p11_uri_match_object(const hsmtls_p11_uri *uri, CK_OBJECT_CLASS cls,
                                const char *label, const unsigned char *id, size_t id_len)
{
    CK_OBJECT_CLASS want = hsmtls_p11_uri_object_class(uri);
    CK_ATTRIBUTE *a;
    if (want != (CK_OBJECT_CLASS)-1 && want != cls)
        return 0;
    if ((a = p11_kit_uri_get_attribute(uri->p11, CKA_LABEL)) &&
        !same_bytes(a, label, label ? strlen(label) : 0))
        return 0;
    if ((a = p11_kit_uri_get_attribute(uri->p11, CKA_ID)) && !same_bytes(a, id, id ? id_len : 0))
        return 0;
    return 1;
}

static char *format(const CK_TOKEN_INFO *token, CK_ATTRIBUTE *attrs, size_t n,
                    P11KitUriType type)
{
    P11KitUri *u = p11_kit_uri_new();
    char *s = NULL;
    int rc = u ? P11_KIT_URI_OK : P11_KIT_URI_NO_MEMORY;
    if (u && token) { /* p11-kit leaves out a field whose first byte is 0 */
        CK_TOKEN_INFO *t = p11_kit_uri_get_token_info(u);
        memcpy(t->label, token->label, sizeof t->label);
        memcpy(t->manufacturerID, token->manufacturerID, sizeof t->manufacturerID);
        memcpy(t->model, token->model, sizeof t->model);
        memcpy(t->serialNumber, token->serialNumber, sizeof t->serialNumber);
    }
    for (size_t i = 0; rc == P11_KIT_URI_OK && i < n; i++)
        rc = p11_kit_uri_set_attribute(u, &attrs[i]); /* copies the value */
    if (rc == P11_KIT_URI_OK)
        rc = p11_kit_uri_format(u, type, &s);
    if (u)
        p11_kit_uri_free(u);
    if (rc != P11_KIT_URI_OK) {
        hsmtls_p11_error_set(CKR_HOST_MEMORY, "cannot format a PKCS#11 URI: %s",
                             p11_kit_uri_message(rc));
        return NULL;
    }
    return s;
}

char *hsmtls_p11_uri_format_object(const CK_TOKEN_INFO *token, const char *label,
                                   const unsigned char *id, size_t id_len,
                                   CK_OBJECT_CLASS cls)
{
    CK_ATTRIBUTE attrs[3];
    size_t n = 0;
    if (label)
        attrs[n++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
    if (id && id_len)
        attrs[n++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
    /* p11-kit leaves out type= for a class RFC 7512 has no name for (CKO_HW_FEATURE) */
    if (cls != (CK_OBJECT_CLASS)-1)
        attrs[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof cls };
    return format(token, attrs, n, P11_KIT_URI_FOR_OBJECT_ON_TOKEN);
}

char *hsmtls_p11_uri_format_token(const CK_TOKEN_INFO *token)
{
    if (!token) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "cannot format a PKCS#11 URI: no token");
        return NULL;
    }
    return format(token, NULL, 0, P11_KIT_URI_FOR_TOKEN);
}

char *hsmtls_p11_uri_encode(const unsigned char *bytes, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char safe[] = "-._~:[]@!$'()*+,=&"; /* unreserved and pk11-path-res-avail */
    char *out = len <= (SIZE_MAX - 1) / 3 ? malloc(len * 3 + 1) : NULL;
    if (!out) {
        nomem();
        return NULL;
    }
    char *o = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = bytes[i];
        /* ranges, not isalnum(): a Latin-1 locale would pass 0xE9 through raw */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr(safe, c))) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

unsigned char *hsmtls_p11_uri_decode(const char *text, size_t *out_len)
{
    size_t n = strlen(text), len;
    unsigned char *out = malloc(n + 1);
    if (!out) {
        nomem();
        return NULL;
    }
    if (pct_decode(text, n, out, &len) < 0) {
        free(out);
        /* without the text: it may be a PIN */
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD,
                             "bad percent-encoding: '%%' not followed by two hex digits");
        return NULL;
    }
    out[len] = '\0';
    if (out_len)
        *out_len = len;
    return out;
}
