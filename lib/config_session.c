/* The session group: resumption. Tickets, the session lifetime, and the session cache
 * (OpenSSL's SSL_CTX_sess_* family): which side keeps sessions, how many, flushing, and
 * the counters. The cache lives in the SSL_CTX the
 * config builds at its first connection and shares with the next ones (DTLS has a
 * second one, hung on the first); a setter that changes the config starts a new
 * context, and with it an empty cache. */
#include "lib_internal.h"

#include <limits.h>
#include <time.h>

int hsmtls_config_set_session_tickets(hsmtls_config *cfg, int on)
{
    cfg->sess.tickets = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_session_tickets(const hsmtls_config *cfg) { return cfg->sess.tickets; }

int hsmtls_config_set_session_timeout(hsmtls_config *cfg, long seconds)
{
    if (seconds < 0)
        return hsmtls__err_set(&cfg->err, "session timeout %ld: must be 0 (default) or more", seconds);
    cfg->sess.timeout = seconds;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

long hsmtls_config_session_timeout(const hsmtls_config *cfg) { return cfg->sess.timeout; }

int hsmtls_config_set_session_cache_mode(hsmtls_config *cfg, int mode)
{
    if (mode < HSMTLS_SESS_CACHE_OFF || mode > HSMTLS_SESS_CACHE_BOTH)
        return hsmtls__err_set(&cfg->err, "session cache mode %d: must be HSMTLS_SESS_CACHE_OFF, _CLIENT, _SERVER "
                            "or _BOTH", mode);
    cfg->sess.cache_mode = mode;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_session_cache_mode(const hsmtls_config *cfg) { return cfg->sess.cache_mode; }

int hsmtls_config_set_session_cache_size(hsmtls_config *cfg, long size)
{
    if (size < 0)
        return hsmtls__err_set(&cfg->err, "session cache size %ld: must be 0 (no limit) or more", size);
    cfg->sess.cache_size = size;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

long hsmtls_config_session_cache_size(const hsmtls_config *cfg)
{
    return cfg->sess.cache_size >= 0 ? cfg->sess.cache_size : SSL_SESSION_CACHE_MAX_SIZE_DEFAULT;
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
        return hsmtls__err_set(&cfg->err, "hsmtls_config_session_stats: nowhere to write");
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

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    cfg->sess = (struct hsmtls_cfg_session){ .cache_mode = HSMTLS_SESS_CACHE_SERVER, .cache_size = -1, .tickets = 1 };
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    dst->sess = src->sess; /* no pointers */
    return 0;
}

static void release(hsmtls_config *cfg) { (void)cfg; }

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_session *x = &a->sess, *y = &b->sess;
    return x->cache_mode == y->cache_mode && x->cache_size == y->cache_size && x->tickets == y->tickets &&
           x->timeout == y->timeout;
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    (void)e;
    const struct hsmtls_cfg_session *s = &cfg->sess;
    /* needed for resumption once client certificates are asked for */
    if (cfg->role == HSMTLS_SERVER)
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hsmtls", 6);
    if (s->timeout > 0)
        SSL_CTX_set_timeout(ctx, s->timeout);
    /* the values are OpenSSL's SSL_SESS_CACHE_* */
    SSL_CTX_set_session_cache_mode(ctx, s->cache_mode);
    if (s->cache_size >= 0)
        SSL_CTX_sess_set_cache_size(ctx, s->cache_size);
    if (!s->tickets) {
        /* num_tickets 0 as well: OpenSSL would otherwise send TLS 1.3 stateful tickets,
         * a NewSessionTicket the application asked not to send (config.h says so) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_session = { "session", init, copy, release, equal, apply };
