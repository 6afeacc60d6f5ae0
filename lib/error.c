/* Error records and messages: what failed, then OpenSSL's reasons drained from its error
 * queue, so the caller sees "key /x.pem: no such file" rather than an error number.
 *
 * Messages live on the heap, sized to fit, in each object's struct hsmtls_err and in
 * the thread's last message: nothing is cut at a fixed length. Long input quoted in a
 * message (a URI, a path, OpenSSL's data about them) is shortened instead, so the
 * reason that follows it stays readable. */
#include "lib_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* The one masking function (PINs as "***", control characters and invalid UTF-8 as \xNN),
 * the same code the PKCS#11 core's hsmtls_p11_mask_text() runs: libhsmtls does not link
 * the core. */
#include "../pkcs11/mask_text.h"

/* ---- the thread's last message ---- */

static _Thread_local struct hsmtls_err last;
static pthread_key_t last_key;
static int last_key_ok;
static pthread_once_t last_once = PTHREAD_ONCE_INIT;

/* A thread's message is freed when the thread ends; the key only carries the destructor. */
static void free_last(void *p) { hsmtls__err_free(p); }

static void make_last_key(void) { last_key_ok = pthread_key_create(&last_key, free_last) == 0; }

static void register_last(void)
{
    if (last.msg)
        return;
    pthread_once(&last_once, make_last_key);
    if (last_key_ok)
        pthread_setspecific(last_key, &last);
}

const char *hsmtls_error_message(void) { return last.msg ? last.msg : ""; }

const char *hsmtls_status_name(int status)
{
    switch (status) {
    case HSMTLS_OK: return "HSMTLS_OK";
    case HSMTLS_ERROR: return "HSMTLS_ERROR";
    case HSMTLS_WANT_READ: return "HSMTLS_WANT_READ";
    case HSMTLS_WANT_WRITE: return "HSMTLS_WANT_WRITE";
    case HSMTLS_WANT_ASYNC: return "HSMTLS_WANT_ASYNC";
    case HSMTLS_WANT_VERIFY: return "HSMTLS_WANT_VERIFY";
    case HSMTLS_CLOSED: return "HSMTLS_CLOSED";
    }
    return status > 0 ? "byte count" : "unknown status";
}

/* ---- growing strings ---- */

struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
};

static void sb_vadd(struct sbuf *b, const char *fmt, va_list ap)
{
    if (b->oom)
        return;
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
}

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
}

/* ---- shortening quoted input ---- */

struct hsmtls_short hsmtls__short(const char *raw)
{
    struct hsmtls_short out;
    if (!raw) {
        snprintf(out.s, sizeof out.s, "(null)");
        return out;
    }
    char *masked = hsmtls_mask_text_impl(raw);
    if (!masked) {
        snprintf(out.s, sizeof out.s, "(out of memory)");
        return out;
    }
    const char *text = masked;
    size_t len = strlen(text);
    if (len <= HSMTLS_QUOTE_MAX) {
        memcpy(out.s, text, len + 1);
        free(masked);
        return out;
    }
    /* cut on a character boundary, so a UTF-8 path stays valid text, and not inside a
     * \xNN escape */
    size_t keep = HSMTLS_QUOTE_MAX;
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80)
        keep--;
    for (size_t k = keep >= 3 ? keep - 3 : 0; k < keep; k++)
        if (text[k] == '\\' && text[k + 1] == 'x') {
            keep = k;
            break;
        }
    snprintf(out.s, sizeof out.s, "%.*s...(%zu bytes)", (int)keep, text, strlen(raw));
    free(masked);
    return out;
}

/* ---- OpenSSL's reasons ---- */

/* Appends the reasons in OpenSSL's queue, oldest first, skipping repeats: the first one
 * is usually the cause ("bad decrypt"), the later ones where it surfaced. */
static void add_openssl(struct sbuf *b, const char *sep)
{
    char *prev = NULL;
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        struct sbuf one = { 0 };
        const char *reason = ERR_reason_error_string(e);
        if (reason)
            sb_add(&one, "%s", reason);
        else
            sb_add(&one, "%s error %lu", ERR_lib_error_string(e) ? ERR_lib_error_string(e) : "OpenSSL",
                   (unsigned long)ERR_GET_REASON(e));
        /* the data often quotes the input (a URI, a path): shortened like ours */
        if ((flags & ERR_TXT_STRING) && data && *data)
            sb_add(&one, " (%s)", hsmtls__short(data).s);
        if (one.s && (!prev || strcmp(one.s, prev) != 0)) {
            sb_add(b, "%s%s", sep, one.s);
            sep = "; ";
            free(prev);
            prev = one.s;
        } else {
            free(one.s);
        }
    }
    free(prev);
}

char *hsmtls__ssl_reasons(void)
{
    struct sbuf b = { 0 };
    add_openssl(&b, ": ");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : calloc(1, 1);
}

/* ---- records ---- */

/* Puts text (len bytes) into e, reusing its buffer when it fits so that a message read
 * earlier stays a valid string. */
static void store(struct hsmtls_err *e, const char *text, size_t len)
{
    if (len + 1 > e->cap) {
        char *s = malloc(len + 1);
        if (!s) {
            /* keep the old buffer: a stale message beats none */
            if (e->cap)
                snprintf(e->msg, e->cap, "out of memory");
            return;
        }
        free(e->msg);
        e->msg = s;
        e->cap = len + 1;
    }
    memmove(e->msg, text, len);
    e->msg[len] = '\0';
}

static int finish(struct hsmtls_err *e, int status, struct sbuf *b)
{
    /* The whole message once more through the mask: whatever a caller quoted without
     * hsmtls__short, no PIN and no control character gets out (idempotent). */
    char *masked = b->oom || !b->s ? NULL : hsmtls_mask_text_impl(b->s);
    const char *text = masked ? masked : "out of memory";
    size_t len = strlen(text);
    if (e) {
        store(e, text, len);
        e->code = status;
    }
    register_last();
    store(&last, text, len);
    last.code = status;
    free(masked);
    free(b->s);
    return status;
}

int hsmtls__err_status(struct hsmtls_err *e, int status, const char *fmt, ...)
{
    struct sbuf b = { 0 };
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(&b, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return finish(e, status, &b);
}

int hsmtls__err_ssl(struct hsmtls_err *e, const char *fmt, ...)
{
    struct sbuf b = { 0 };
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(&b, fmt, ap);
    va_end(ap);
    add_openssl(&b, ": ");
    return finish(e, HSMTLS_ERROR, &b);
}

int hsmtls__err_append(struct hsmtls_err *e, const char *fmt, ...)
{
    struct sbuf b = { 0 };
    sb_add(&b, "%s", e && e->msg ? e->msg : hsmtls_error_message());
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(&b, fmt, ap);
    va_end(ap);
    return finish(e, e ? e->code : last.code, &b);
}

const char *hsmtls__err_message(const struct hsmtls_err *e) { return e->msg ? e->msg : ""; }

void hsmtls__err_clear(struct hsmtls_err *e)
{
    e->code = 0;
    if (e->msg)
        e->msg[0] = '\0';
}

void hsmtls__err_free(struct hsmtls_err *e)
{
    free(e->msg);
    *e = (struct hsmtls_err){ 0 };
}

/* ---- the one SSL_get_error mapping ---- */

int hsmtls__status_of(int ssl_error, unsigned long queued, int sys_errno)
{
    switch (ssl_error) {
    case SSL_ERROR_NONE:
        return HSMTLS_OK;
    case SSL_ERROR_WANT_READ:
        return HSMTLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return HSMTLS_WANT_WRITE;
    case SSL_ERROR_WANT_RETRY_VERIFY:
        return HSMTLS_WANT_VERIFY;
    case SSL_ERROR_SYSCALL:
        /* nothing queued and no errno: the transport ended without close_notify */
        return queued == 0 && sys_errno == 0 ? HSMTLS_CLOSED : HSMTLS_ERROR;
    case SSL_ERROR_SSL:
        /* OpenSSL 3 reports a bare TCP close as this error, not as SYSCALL */
        return ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? HSMTLS_CLOSED : HSMTLS_ERROR;
    default:
        /* ZERO_RETURN (the callers that expect it check first), and what the library
         * never asks for: X509 lookups, connect/accept BIOs, async jobs, client hello
         * callbacks */
        return HSMTLS_ERROR;
    }
}

char *hsmtls__strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}
