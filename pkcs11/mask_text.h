/* The one masking function for text that a message quotes: URIs, paths, command-line
 * input, OpenSSL's error data. Compiled into the PKCS#11 core (hsmtls_p11_mask_text(),
 * which the CLI and the provider use) and into libhsmtls (lib/error.c, which has no link
 * to the core), from this one source, so both print input the same way:
 *
 *  - a PIN is never shown: after any name=, where the name (percent-decoded, any case)
 *    contains "pin" and is not pin-source (which names a file, not a secret), the value
 *    becomes "***". The value runs to the next "&name=" or to the end of the text, so a
 *    second '?', a ';', a ')' or a space inside a PIN does not end it early; a value
 *    that is "***" already ends there, so masking is idempotent and masking a whole
 *    message keeps the text after a masked URI. A query or path segment that contains
 *    "pin" and has no '=' ("?pin-value1234") is all "***".
 *  - control characters (bytes below 0x20, 0x7f) and bytes that are not valid UTF-8 are
 *    written as \xNN, so a message stays one line and cannot drive a terminal.
 *
 * Dependency-free C, static functions: included by the .c files that use it. */
#ifndef HSMTLS_MASK_TEXT_H
#define HSMTLS_MASK_TEXT_H

#include <stdlib.h>
#include <string.h>

struct hsmtls_mask_buf {
    char *s;
    size_t len, cap;
    int oom;
};

static void hsmtls_mask_put(struct hsmtls_mask_buf *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Characters of an attribute name as the mask sees them (percent escapes included). */
static int hsmtls_mask_namech(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '%';
}

static int hsmtls_mask_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether the name p[0..n) names a secret: percent-decoded and lowered, it contains
 * "pin", and it is not exactly "pin-source". */
static int hsmtls_mask_secret(const char *p, size_t n)
{
    char last[3] = { 0, 0, 0 };
    int has_pin = 0;
    size_t dlen = 0;
    int is_source = 1;
    static const char source[] = "pin-source";
    for (size_t i = 0; i < n; i++, dlen++) {
        unsigned char c = (unsigned char)p[i];
        int hi, lo;
        if (c == '%' && i + 2 < n && (hi = hsmtls_mask_hex((unsigned char)p[i + 1])) >= 0 &&
            (lo = hsmtls_mask_hex((unsigned char)p[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (dlen >= sizeof source - 1 || (char)c != source[dlen])
            is_source = 0;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        last[0] = last[1];
        last[1] = last[2];
        last[2] = (char)c;
        if (last[0] == 'p' && last[1] == 'i' && last[2] == 'n')
            has_pin = 1;
    }
    if (is_source && dlen == sizeof source - 1)
        return 0;
    return has_pin;
}

/* Where a secret value that starts at text[i] ends: at an '&' followed by name=, else at
 * the end; a value that is "***" (masked already) ends after it. */
static size_t hsmtls_mask_value_end(const char *text, size_t i, size_t n)
{
    if (n - i >= 3 && memcmp(text + i, "***", 3) == 0 &&
        (i + 3 == n || strchr("&\"')]:;, \t", text[i + 3])))
        return i + 3;
    for (size_t j = i; j < n; j++) {
        if (text[j] != '&')
            continue;
        size_t k = j + 1;
        while (k < n && hsmtls_mask_namech((unsigned char)text[k]))
            k++;
        if (k > j + 1 && k < n && text[k] == '=')
            return j;
    }
    return n;
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is not one. */
static size_t hsmtls_mask_utf8(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/* The text masked and escaped as above, malloc'd; NULL when text is NULL or memory ran
 * out. */
static char *hsmtls_mask_text_impl(const char *text)
{
    if (!text)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    struct hsmtls_mask_buf b = { 0 };
    size_t n = strlen(text), i = 0;
    hsmtls_mask_put(&b, "", 0);
    while (i < n) {
        unsigned char c = (unsigned char)text[i];
        if (hsmtls_mask_namech(c)) {
            size_t j = i;
            while (j < n && hsmtls_mask_namech((unsigned char)text[j]))
                j++;
            int secret = hsmtls_mask_secret(text + i, j - i);
            if (secret && j < n && text[j] == '=') {
                hsmtls_mask_put(&b, text + i, j - i);
                hsmtls_mask_put(&b, "=***", 4);
                i = hsmtls_mask_value_end(text, j + 1, n);
                continue;
            }
            if (secret && i > 0 && strchr("?&;", text[i - 1])) {
                /* "?pin-value1234": a segment with no '=', all of it up to its end */
                hsmtls_mask_put(&b, "***", 3);
                i = j + strcspn(text + j, "&;?");
                continue;
            }
            hsmtls_mask_put(&b, text + i, j - i);
            i = j;
            continue;
        }
        size_t len = c < 0x80 ? (c >= 0x20 && c != 0x7f) : hsmtls_mask_utf8((const unsigned char *)text + i, n - i);
        if (len) {
            hsmtls_mask_put(&b, text + i, len);
            i += len;
        } else {
            char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
            hsmtls_mask_put(&b, esc, 4);
            i++;
        }
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

#endif
