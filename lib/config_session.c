/* The session cache of a config (OpenSSL's SSL_CTX_sess_* family): which side keeps
 * sessions, how many, flushing, and the counters. The cache lives in the SSL_CTX the
 * config builds at its first connection and shares with the next ones (DTLS has a
 * second one, hung on the first); a setter that changes the config starts a new
 * context, and with it an empty cache. */
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

/* The contexts the config's connections share now (new references): the TLS one and,
 * once a DTLS association was made, the DTLS one hung on it (dtls.c), each with its own
 * cache. Returns how many (0 when no connection was made since the last change). */
static int current(hsmtls_config *cfg, SSL_CTX *out[2])
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX *ctx = cfg->built;
    if (ctx && !SSL_CTX_up_ref(ctx))
        ctx = NULL;
    pthread_mutex_unlock(&cfg->lock);
    if (!ctx)
        return 0;
    out[0] = ctx;
    out[1] = hsmtls__dtls_ctx_of(ctx);
    return out[1] ? 2 : 1;
}

int hsmtls_config_flush_sessions(hsmtls_config *cfg, int all)
{
    SSL_CTX *ctxs[2];
    int n = current(cfg, ctxs);
    long removed = 0;
    for (int i = 0; i < n; i++) {
        long before = SSL_CTX_sess_number(ctxs[i]);
        /* a time after every session's end removes them all */
        SSL_CTX_flush_sessions(ctxs[i], all ? LONG_MAX : (long)time(NULL));
        removed += before - SSL_CTX_sess_number(ctxs[i]);
        SSL_CTX_free(ctxs[i]);
    }
    return removed > INT_MAX ? INT_MAX : (int)removed;
}

int hsmtls_config_session_stats(hsmtls_config *cfg, hsmtls_session_stats *out)
{
    if (!out)
        return hsmtls__fail(cfg->err, "hsmtls_config_session_stats: nowhere to write");
    *out = (hsmtls_session_stats){ 0 };
    SSL_CTX *ctxs[2];
    int n = current(cfg, ctxs);
    for (int i = 0; i < n; i++) {
        SSL_CTX *ctx = ctxs[i];
        out->number += SSL_CTX_sess_number(ctx);
        out->hits += SSL_CTX_sess_hits(ctx);
        out->misses += SSL_CTX_sess_misses(ctx);
        out->timeouts += SSL_CTX_sess_timeouts(ctx);
        out->cache_full += SSL_CTX_sess_cache_full(ctx);
        out->accept += SSL_CTX_sess_accept(ctx);
        out->accept_good += SSL_CTX_sess_accept_good(ctx);
        out->accept_renegotiate += SSL_CTX_sess_accept_renegotiate(ctx);
        out->connect += SSL_CTX_sess_connect(ctx);
        out->connect_good += SSL_CTX_sess_connect_good(ctx);
        out->connect_renegotiate += SSL_CTX_sess_connect_renegotiate(ctx);
        SSL_CTX_free(ctx);
    }
    return HSMTLS_OK;
}
