/* One loader for every key and certificate reference: a path, a file: URI, a pkcs11:
 * URI or bytes in memory all go through OSSL_STORE in the library's context, and one
 * PIN/passphrase callback answers for files and tokens alike.
 *
 * OSSL_STORE caches the answer for the length of one open, so a rejected answer is
 * retried by opening again, telling the callback that the earlier attempt failed. */
#include "lib_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/store.h>
#include <openssl/ui.h>

/* hsmtls_mask_text_impl: the one masking function (see lib/error.c) */
#include "../pkcs11/mask_text.h"

#define MAX_ATTEMPTS 3

int hsmtls__is_token_ref(const char *ref)
{
    return ref && strncasecmp(ref, "pkcs11:", 7) == 0;
}

char *hsmtls__redact(const char *ref)
{
    if (!ref)
        return NULL;
    char *out = malloc(strlen(ref) + 1);
    if (!out)
        return NULL;
    const char *q = hsmtls__is_token_ref(ref) ? strchr(ref, '?') : NULL;
    if (!q) {
        free(out);
        return hsmtls_mask_text_impl(ref);
    }
    /* Keep the path and every query attribute but pin-value. */
    size_t n = (size_t)(q - ref);
    memcpy(out, ref, n);
    char sep = '?';
    const char *p = q + 1;
    while (*p) {
        size_t len = strcspn(p, "&");
        if (!(len >= 10 && strncasecmp(p, "pin-value=", 10) == 0)) {
            out[n++] = sep;
            memcpy(out + n, p, len);
            n += len;
            sep = '&';
        }
        p += len;
        if (*p == '&')
            p++;
    }
    out[n] = '\0';
    /* and masked: a second '?' or a misspelt pin attribute keeps no PIN either */
    char *masked = hsmtls_mask_text_impl(out);
    free(out);
    return masked;
}

/* The token= attribute of a pkcs11: URI, percent-decoded into buf; NULL when none. */
static const char *token_label(const char *uri, char *buf, size_t size)
{
    if (!hsmtls__is_token_ref(uri) || size == 0)
        return NULL;
    const char *p = uri + 7;
    size_t path_len = strcspn(p, "?");
    while (path_len > 0) {
        size_t len = strcspn(p, ";?");
        if (len > path_len)
            len = path_len;
        if (len > 6 && strncasecmp(p, "token=", 6) == 0) {
            size_t n = 0;
            for (size_t i = 6; i < len && n + 1 < size; i++) {
                unsigned int c;
                if (p[i] == '%' && i + 2 < len && sscanf(p + i + 1, "%2x", &c) == 1) {
                    buf[n++] = (char)c;
                    i += 2;
                } else {
                    buf[n++] = p[i];
                }
            }
            buf[n] = '\0';
            return buf;
        }
        if (len >= path_len)
            break;
        p += len + 1;
        path_len -= len + 1;
    }
    return NULL;
}

struct ask {
    const struct hsmtls_pin *pin;
    const char *token;
    const char *ref;
    int is_token;
    int retry;
    int calls;
    int gave_up;
    int no_callback;
    int source_rejected;
    const char *why;                /* why the pin-source gave no PIN */
};

/* OSSL_STORE asks through a UI method; this pem_password_cb is what the wrapped method
 * calls, with our struct ask as its user data. */
/* The first line of a pin-source file; a second ask means it was wrong, and asking the
 * same file again would only burn token retries. */
static int from_source(struct ask *a, char *buf, int size)
{
    if (a->calls++ > 0) {
        a->source_rejected = 1;
        return -1;
    }
    struct stat st;
    FILE *f = fopen(a->pin->source, "r");
    a->why = !f ? strerror(errno) : fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode) ? "it is a directory" : NULL;
    /* a NUL in the line (the zero device, a sparse file) or an empty line: an empty or
     * cut PIN would only spend one of the token's tries */
    if (!a->why && size > 1 && !fgets(buf, size, f))
        a->why = ferror(f) ? strerror(errno) : "it is empty";
    size_t len = a->why ? 0 : strcspn(buf, "\r\n");
    if (!a->why && (len == 0 || memchr(buf, '\0', len)))
        a->why = "its first line is empty or holds a NUL byte: not sent to the token";
    if (f)
        fclose(f);
    if (a->why) {
        OPENSSL_cleanse(buf, (size_t)size);
        a->gave_up = 1;
        return -1;
    }
    buf[len] = '\0';
    return (int)len;
}

static int pem_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    struct ask *a = u;
    if (a && a->pin && !a->pin->cb && a->pin->source)
        return from_source(a, buf, size);
    if (!a || !a->pin || !a->pin->cb) {
        if (a)
            a->no_callback = 1;
        return -1;
    }
    char prompt[512];
    if (a->token)
        snprintf(prompt, sizeof prompt, "%sPIN for token \"%s\": ", a->retry || a->calls ? "(rejected) " : "",
                 a->token);
    else
        snprintf(prompt, sizeof prompt, "%s%s for %s: ", a->retry || a->calls ? "(rejected) " : "",
                 a->is_token ? "PIN" : "passphrase", hsmtls__short(a->ref).s);
    hsmtls_pin_request req = {
        .ref = a->ref, .is_token = a->is_token, .token = a->token, .retry = a->retry || a->calls > 0,
        .prompt = prompt,
    };
    a->calls++;
    if (size <= 1)
        return -1;
    int n = a->pin->cb(&req, buf, (size_t)size, a->pin->arg);
    if (n < 0 || n >= size) {
        a->gave_up = 1;
        return -1;
    }
    return n;
}

/* hsmtls/p11_keyfile.h's HSMTLS_P11_KEYFILE_MAX_PEM (libhsmtls does not include the
 * core's headers) */
#define KEYFILE_MAX 65536

/* Whether path is a regular file over KEYFILE_MAX bytes whose first PEM block (in its
 * first KEYFILE_MAX bytes) is a PKCS#11 URI key file's. */
static int uri_key_file_too_large(const char *path)
{
    static const char begin[] = "-----BEGIN PKCS#11 PROVIDER URI-----";
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= KEYFILE_MAX)
        return 0;
    FILE *f = fopen(path, "rb");
    char *head = f ? malloc(KEYFILE_MAX + 1) : NULL;
    size_t n = head ? fread(head, 1, KEYFILE_MAX, f) : 0;
    if (f)
        fclose(f);
    int ours = 0;
    if (head) {
        head[n] = '\0';
        const char *first = strstr(head, "-----BEGIN ");
        ours = first && strncmp(first, begin, sizeof begin - 1) == 0;
    }
    free(head);
    return ours;
}

enum what { WANT_CERTS, WANT_KEY };

/* One open of the reference; fills certs or *key. Returns 1 when it found something. */
static int load_once(const char *ref, const void *mem, size_t len, enum what what,
                     struct ask *a, STACK_OF(X509) *certs, EVP_PKEY **key, struct hsmtls_err *err)
{
    OSSL_LIB_CTX *ctx = hsmtls__libctx(err);
    if (!ctx)
        return -1;
    UI_METHOD *ui = UI_UTIL_wrap_read_pem_callback(pem_cb, 0);
    if (!ui)
        return hsmtls__err_ssl(err, "out of memory");
    OSSL_STORE_CTX *store;
    if (mem) {
        BIO *bio = BIO_new_mem_buf(mem, (int)len);
        store = bio ? OSSL_STORE_attach(bio, "file", ctx, NULL, ui, a, NULL, NULL, NULL) : NULL;
        BIO_free(bio); /* the store keeps its own reference */
    } else {
        store = OSSL_STORE_open_ex(ref, ctx, NULL, ui, a, NULL, NULL, NULL);
    }
    int found = 0;
    if (store) {
        OSSL_STORE_expect(store, what == WANT_KEY ? OSSL_STORE_INFO_PKEY : OSSL_STORE_INFO_CERT);
        while (!OSSL_STORE_eof(store)) {
            OSSL_STORE_INFO *info = OSSL_STORE_load(store);
            if (!info) {
                if (OSSL_STORE_error(store))
                    break;
                continue;
            }
            int type = OSSL_STORE_INFO_get_type(info);
            if (what == WANT_KEY && type == OSSL_STORE_INFO_PKEY) {
                *key = OSSL_STORE_INFO_get1_PKEY(info);
                found = *key != NULL;
            } else if (what == WANT_CERTS && type == OSSL_STORE_INFO_CERT) {
                X509 *x = OSSL_STORE_INFO_get1_CERT(info);
                if (x && !sk_X509_push(certs, x))
                    X509_free(x);
                else if (x)
                    found = 1;
            }
            OSSL_STORE_INFO_free(info);
            if (what == WANT_KEY && found)
                break;
        }
        OSSL_STORE_close(store);
    }
    UI_destroy_method(ui);
    return found;
}

static void *load(const char *ref, const void *mem, size_t len, enum what what,
                  const struct hsmtls_pin *pin, const char *provider_path, struct hsmtls_err *err)
{
    const char *kind = what == WANT_KEY ? "key" : "certificate";
    int token = hsmtls__is_token_ref(ref);
    if (mem && len > INT_MAX) {
        hsmtls__err_set(err, "%s in memory: %zu bytes is too large", kind, len);
        return NULL;
    }
    char *shown = mem ? strdup("(memory)") : hsmtls__redact(ref);
    if (!shown) {
        hsmtls__err_set(err, "out of memory");
        return NULL;
    }
    if (token && hsmtls__load_provider(provider_path, err) != HSMTLS_OK) {
        char *why = strdup(err ? hsmtls__err_message(err) : hsmtls_error_message());
        hsmtls__err_set(err, "%s %s: %s", kind, hsmtls__short(shown).s, why ? why : "out of memory");
        free(why);
        free(shown);
        return NULL;
    }
    /* A file that cannot be read says so plainly; OSSL_STORE would report it as a list
     * of schemes it tried. */
    const char *path = !mem && !token ? (strncasecmp(ref, "file:", 5) == 0 ? ref + 5 : ref) : NULL;
    if (path && strncmp(path, "//", 2) != 0 && access(path, R_OK) != 0) {
        hsmtls__err_set(err, "%s %s: %s", kind, hsmtls__short(shown).s, strerror(errno));
        free(shown);
        return NULL;
    }
    /* A PKCS#11 URI key file over 64 KiB is refused here, where its size is known, before
     * OpenSSL reads it (the provider refuses it too, after a bounded read). */
    if (path && strncmp(path, "//", 2) != 0 && uri_key_file_too_large(path)) {
        hsmtls__err_set(err, "%s %s: PKCS#11 URI key file too large: more than %d bytes (a key "
                        "file names a key in a few hundred)", kind, hsmtls__short(shown).s, KEYFILE_MAX);
        free(shown);
        return NULL;
    }
    char label[256];
    struct hsmtls_short q = hsmtls__short(shown); /* as messages quote it */
    struct ask a = { .pin = pin, .ref = shown, .is_token = token,
                     .token = token ? token_label(ref, label, sizeof label) : NULL };
    STACK_OF(X509) *certs = what == WANT_CERTS ? sk_X509_new_null() : NULL;
    EVP_PKEY *key = NULL;
    int found = 0;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        ERR_clear_error();
        a.retry = attempt > 0;
        a.calls = 0;
        found = load_once(ref, mem, len, what, &a, certs, &key, err);
        /* Retry only when the callback answered and the answer found nothing. */
        if (found != 0 || a.calls == 0 || a.gave_up || a.no_callback || !pin || !pin->cb)
            break;
    }
    if (found > 0) {
        ERR_clear_error(); /* decoders that did not fit leave errors behind */
        free(shown);
        if (what == WANT_KEY)
            return key;
        return certs;
    }
    if (found == 0) {
        if (a.no_callback)
            hsmtls__err_ssl(err, "%s %s: it needs a %s and no PIN/passphrase callback is set",
                             kind, q.s, token ? "PIN" : "passphrase");
        else if (a.gave_up && pin && !pin->cb)
            hsmtls__err_ssl(err, "%s %s: cannot read a %s from the pin-source file %s%s%s", kind,
                             q.s, token ? "PIN" : "passphrase", hsmtls__short(pin->source).s,
                             a.why ? ": " : "", a.why ? a.why : "");
        else if (token && !a.source_rejected && a.calls && pin && !pin->cb) {
            /* The token asks once either way; its reason tells a rejected PIN from a
             * key that is not there, which a wrong-PIN message would hide. */
            char *reasons = hsmtls__ssl_reasons();
            const char *why = reasons ? reasons : "";
            if (strstr(why, "CKR_PIN_LOCKED"))
                hsmtls__err_set(err, "%s %s: the token's PIN is locked (too many wrong PINs); "
                             "unlock it with the SO PIN%s", kind, q.s, why);
            else if (strstr(why, "CKR_PIN_"))
                hsmtls__err_set(err, "%s %s: wrong PIN in the pin-source file %s%s", kind, q.s,
                             hsmtls__short(pin->source).s, why);
            else
                hsmtls__err_set(err, "%s %s: not loaded from the token (PIN from the pin-source file %s)%s",
                             kind, q.s, hsmtls__short(pin->source).s, why);
            free(reasons);
        } else if (a.source_rejected || (a.calls && pin && !pin->cb))
            hsmtls__err_ssl(err, "%s %s: wrong %s in the pin-source file %s", kind, q.s,
                             token ? "PIN" : "passphrase", hsmtls__short(pin->source).s);
        else if (a.gave_up)
            hsmtls__err_ssl(err, "%s %s: no %s given", kind, q.s, token ? "PIN" : "passphrase");
        else if (a.calls)
            hsmtls__err_ssl(err, "%s %s: wrong %s or unreadable %s", kind, q.s,
                             token ? "PIN" : "passphrase", kind);
        else
            hsmtls__err_ssl(err, "%s %s: no %s found there", kind, q.s, kind);
    }
    sk_X509_pop_free(certs, X509_free);
    EVP_PKEY_free(key);
    free(shown);
    return NULL;
}

STACK_OF(X509) *hsmtls__load_certs(const char *ref, const void *mem, size_t len,
                                   const struct hsmtls_pin *pin, const char *provider_path,
                                   struct hsmtls_err *err)
{
    return load(ref, mem, len, WANT_CERTS, pin, provider_path, err);
}

EVP_PKEY *hsmtls__load_key(const char *ref, const void *mem, size_t len,
                           const struct hsmtls_pin *pin, const char *provider_path, struct hsmtls_err *err)
{
    return load(ref, mem, len, WANT_KEY, pin, provider_path, err);
}
