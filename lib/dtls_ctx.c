/* The DTLS context of a config: built from the config's values like its TLS context
 * (same keys, CAs, verification, PSK, lists), switched to a DTLS method and hung on the
 * config's TLS context, so it is dropped with it when a setter changes the config. A
 * server's cookies are checked here as DTLSv1_listen() asks. */
#include "dtls_internal.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

static int dtls_index = -1, ctx_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    SSL_CTX_free(ptr);
}

static void make_indexes(void)
{
    dtls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx);
}


int hsmtls__dtls_index(void)
{
    pthread_once(&index_once, make_indexes);
    return dtls_index;
}

hsmtls_dtls *hsmtls__dtls_of(const SSL *ssl) { return SSL_get_ex_data(ssl, hsmtls__dtls_index()); }

/* ---- the cookie, as DTLSv1_listen checks it ---- */

static int gen_cookie(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    hsmtls_dtls *d = hsmtls__dtls_of(ssl);
    if (!d || !d->peer_len)
        return 0;
    size_t n = hsmtls__cookie(&d->cookie_params, (struct sockaddr *)&d->peer, d->peer_len, cookie);
    *len = (unsigned int)n;
    return n > 0;
}

static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    unsigned char want[HSMTLS_COOKIE_MAX];
    unsigned int wlen = 0;
    return gen_cookie(ssl, want, &wlen) && wlen == len && CRYPTO_memcmp(want, cookie, len) == 0;
}

/* The config's values on a DTLS method. */
static int to_dtls(hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *err)
{
    ERR_clear_error();
    /* Deprecated in 3.0 but kept through 3.x; SSL_set_ssl_method() on each SSL would not
     * do: SSL_clear() (DTLSv1_listen calls it) goes back to the context's method. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    int ok = SSL_CTX_set_ssl_version(ctx, cfg->role == HSMTLS_SERVER ? DTLS_server_method() : DTLS_client_method());
#pragma GCC diagnostic pop
    if (!ok)
        return hsmtls__err_ssl(err, "cannot make a DTLS context");
    /* switching the method resets the cipher list: the config's lists again */
    if (hsmtls__cfg_lists.apply(cfg, ctx, err) != HSMTLS_OK)
        return HSMTLS_ERROR;
    const struct hsmtls_cfg_protocol *p = &cfg->proto;
    int min = p->allow_legacy && p->min_version && p->min_version < HSMTLS_TLS1_2 ? DTLS1_VERSION : DTLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, 0))
        return hsmtls__err_ssl(err, "DTLS protocol range rejected");
    if (cfg->role == HSMTLS_SERVER) {
        SSL_CTX_set_cookie_generate_cb(ctx, gen_cookie);
        SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);
    }
    return HSMTLS_OK;
}

SSL_CTX *hsmtls__dtls_ctx(hsmtls_config *cfg, struct hsmtls_err *err)
{
    pthread_once(&index_once, make_indexes);
    if (ctx_index < 0) {
        hsmtls__err_set(err, "out of memory");
        return NULL;
    }
    SSL_CTX *tls = hsmtls__config_ctx(cfg, err);
    if (!tls)
        return NULL;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *d = SSL_CTX_get_ex_data(tls, ctx_index);
    if (!d) {
        d = hsmtls__config_build_new(cfg, err);
        if (d && to_dtls(cfg, d, err) != HSMTLS_OK) {
            SSL_CTX_free(d);
            d = NULL;
        }
        if (d)
            SSL_CTX_set_ex_data(tls, ctx_index, d);
    }
    if (d)
        SSL_CTX_up_ref(d);
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(tls);
    return d;
}

SSL_CTX *hsmtls__dtls_ctx_of(SSL_CTX *tls)
{
    pthread_once(&index_once, make_indexes);
    if (ctx_index < 0)
        return NULL;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *d = SSL_CTX_get_ex_data(tls, ctx_index);
    if (d && !SSL_CTX_up_ref(d))
        d = NULL;
    pthread_mutex_unlock(&ctx_lock);
    return d;
}
