/* Error messages: what failed, then OpenSSL's reasons drained from its error queue, so
 * the caller sees "key /x.pem: no such file" rather than an error number. */
#include "lib_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static _Thread_local char last_message[HSMTLS_ERRLEN];

const char *hsmtls_error_message(void) { return last_message; }

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

void hsmtls__set_error(char *dst, const char *msg)
{
    char buf[HSMTLS_ERRLEN];
    snprintf(buf, sizeof buf, "%s", msg); /* msg may point into dst or last_message */
    if (dst)
        memcpy(dst, buf, sizeof buf);
    memcpy(last_message, buf, sizeof buf);
}

/* Appends the reasons in OpenSSL's queue, oldest first, skipping repeats: the first one
 * is usually the cause ("bad decrypt"), the later ones where it surfaced. */
static void append_openssl(char *buf, size_t size)
{
    size_t used = strlen(buf);
    const char *sep = ": ";
    char prev[512] = "";
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *reason = ERR_reason_error_string(e);
        char one[512];
        if (reason)
            snprintf(one, sizeof one, "%s", reason);
        else
            snprintf(one, sizeof one, "%s error %lu", ERR_lib_error_string(e) ? ERR_lib_error_string(e) : "OpenSSL",
                     (unsigned long)ERR_GET_REASON(e));
        if ((flags & ERR_TXT_STRING) && data && *data && strlen(one) + strlen(data) + 4 < sizeof one) {
            strcat(one, " (");
            strcat(one, data);
            strcat(one, ")");
        }
        if (strcmp(one, prev) == 0 || used + strlen(sep) + strlen(one) + 1 >= size)
            continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, one);
        snprintf(prev, sizeof prev, "%s", one);
        sep = "; ";
    }
}

int hsmtls__fail_ssl(char *dst, const char *fmt, ...)
{
    char buf[HSMTLS_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    append_openssl(buf, sizeof buf);
    hsmtls__set_error(dst, buf);
    return HSMTLS_ERROR;
}

void hsmtls__openssl_reasons(char *buf, size_t size)
{
    buf[0] = '\0';
    append_openssl(buf, size);
}

int hsmtls__fail(char *dst, const char *fmt, ...)
{
    char buf[HSMTLS_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    hsmtls__set_error(dst, buf);
    return HSMTLS_ERROR;
}

char *hsmtls__strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}
