/* From a config's values to an SSL_CTX: each group applies its values in turn
 * (config.c's table). The context is built at the first connection and shared by the
 * next ones (so TLS 1.2 session IDs and ticket keys work across them); any setter
 * drops it, and connections made before keep the old one: the config values are fixed
 * into a connection when it is made. */
#include "lib_internal.h"

#include <openssl/err.h>

void hsmtls__config_changed(hsmtls_config *cfg)
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX_free(cfg->built);
    cfg->built = NULL;
    pthread_mutex_unlock(&cfg->lock);
}

static SSL_CTX *build(hsmtls_config *cfg, struct hsmtls_err *err)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(err);
    if (!lc)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, cfg->role == HSMTLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        hsmtls__err_ssl(err, "cannot make an SSL_CTX");
        return NULL;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (int i = 0; i < hsmtls__cfg_ngroups; i++) {
        if (hsmtls__cfg_groups[i]->apply(cfg, ctx, err) != HSMTLS_OK) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

SSL_CTX *hsmtls__config_ctx(hsmtls_config *cfg, struct hsmtls_err *err)
{
    pthread_mutex_lock(&cfg->lock);
    if (!cfg->built)
        cfg->built = build(cfg, err);
    SSL_CTX *ctx = cfg->built;
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&cfg->lock);
    return ctx;
}

/* DTLS objects (dtls_ctx.c) make their own context from the same values, then switch it
 * to a DTLS method. */
SSL_CTX *hsmtls__config_build_new(hsmtls_config *cfg, struct hsmtls_err *err)
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX *ctx = build(cfg, err);
    pthread_mutex_unlock(&cfg->lock);
    return ctx;
}
