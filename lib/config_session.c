/* The session cache of a config (OpenSSL's SSL_CTX_sess_* family): which side keeps
 * sessions, how many, flushing, and the counters. The cache lives in the SSL_CTX the
 * config builds at its first connection and shares with the next ones; a setter that
 * changes the config starts a new context, and with it an empty cache. */
#include "lib_internal.h"

#include <limits.h>
#include <time.h>

int hsmtls_config_set_session_cache_mode(hsmtls_config *cfg, int mode)
{
    if (mode < HSMTLS_SESS_CACHE_OFF || mode > HSMTLS_SESS_CACHE_BOTH)
        return hsmtls__fail(cfg->err, "session cache mode %d: must be HSMTLS_SESS_CACHE_OFF, _CLIENT, _SERVER "
                            "or _BOTH", mode);
    cfg->sess_cache_mode = mode;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_session_cache_mode(const hsmtls_config *cfg) { return cfg->sess_cache_mode; }

int hsmtls_config_set_session_cache_size(hsmtls_config *cfg, long size)
{
    if (size < 0)
        return hsmtls__fail(cfg->err, "session cache size %ld: must be 0 (no limit) or more", size);
    cfg->sess_cache_size = size;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

long hsmtls_config_session_cache_size(const hsmtls_config *cfg)
{
    return cfg->sess_cache_size >= 0 ? cfg->sess_cache_size : SSL_SESSION_CACHE_MAX_SIZE_DEFAULT;
}

void hsmtls__config_apply_session_cache(const hsmtls_config *cfg, SSL_CTX *ctx)
{
    /* the values are OpenSSL's SSL_SESS_CACHE_* */
    SSL_CTX_set_session_cache_mode(ctx, cfg->sess_cache_mode);
    if (cfg->sess_cache_size >= 0)
        SSL_CTX_sess_set_cache_size(ctx, cfg->sess_cache_size);
}

/* The context the config's connections share now (a new reference), NULL when no
 * connection was made since the last change. */
static SSL_CTX *current(hsmtls_config *cfg)
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX *ctx = cfg->built;
    if (ctx && !SSL_CTX_up_ref(ctx))
        ctx = NULL;
    pthread_mutex_unlock(&cfg->lock);
    return ctx;
}

int hsmtls_config_flush_sessions(hsmtls_config *cfg, int all)
{
    SSL_CTX *ctx = current(cfg);
    if (!ctx)
        return 0;
    long before = SSL_CTX_sess_number(ctx);
    /* a time after every session's end removes them all */
    SSL_CTX_flush_sessions(ctx, all ? LONG_MAX : (long)time(NULL));
    long removed = before - SSL_CTX_sess_number(ctx);
    SSL_CTX_free(ctx);
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

int hsmtls_config_session_stats(hsmtls_config *cfg, hsmtls_session_stats *out)
{
    if (!out)
        return hsmtls__fail(cfg->err, "hsmtls_config_session_stats: nowhere to write");
    *out = (hsmtls_session_stats){ 0 };
    SSL_CTX *ctx = current(cfg);
    if (!ctx)
        return HSMTLS_OK;
    out->number = SSL_CTX_sess_number(ctx);
    out->hits = SSL_CTX_sess_hits(ctx);
    out->misses = SSL_CTX_sess_misses(ctx);
    out->timeouts = SSL_CTX_sess_timeouts(ctx);
    out->cache_full = SSL_CTX_sess_cache_full(ctx);
    out->accept = SSL_CTX_sess_accept(ctx);
    out->accept_good = SSL_CTX_sess_accept_good(ctx);
    out->accept_renegotiate = SSL_CTX_sess_accept_renegotiate(ctx);
    out->connect = SSL_CTX_sess_connect(ctx);
    out->connect_good = SSL_CTX_sess_connect_good(ctx);
    out->connect_renegotiate = SSL_CTX_sess_connect_renegotiate(ctx);
    SSL_CTX_free(ctx);
    return HSMTLS_OK;
}
