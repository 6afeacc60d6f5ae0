/* The verification group: how the peer is verified (mode, depth, flags, host names,
 * pausing on errors) and TLS 1.3 post-handshake client authentication, which changes
 * when a server asks for the client's certificate. */
#include "lib_internal.h"

#include <openssl/x509v3.h>

int hsmtls_config_set_verify_mode(hsmtls_config *cfg, enum hsmtls_verify_mode mode)
{
    if (mode < HSMTLS_VERIFY_NONE || mode > HSMTLS_VERIFY_AUTO)
        return hsmtls__err_set(&cfg->err, "unknown verify mode %d", (int)mode);
    cfg->verify.mode = mode;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

enum hsmtls_verify_mode hsmtls_config_verify_mode(const hsmtls_config *cfg) { return cfg->verify.mode; }

int hsmtls_config_set_verify_depth(hsmtls_config *cfg, int depth)
{
    if (depth < -1)
        return hsmtls__err_set(&cfg->err, "verify depth %d: must be -1 (default) or more", depth);
    cfg->verify.depth = depth;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_verify_depth(const hsmtls_config *cfg) { return cfg->verify.depth; }

int hsmtls_config_set_peer_cert_required(hsmtls_config *cfg, int required)
{
    cfg->verify.peer_cert_required = !!required;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_peer_cert_required(const hsmtls_config *cfg) { return cfg->verify.peer_cert_required; }

int hsmtls_config_set_check_hostname(hsmtls_config *cfg, int check)
{
    cfg->verify.check_hostname = !!check;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_check_hostname(const hsmtls_config *cfg) { return cfg->verify.check_hostname; }

int hsmtls_config_set_hostname_cn_fallback(hsmtls_config *cfg, int on)
{
    cfg->verify.cn_fallback = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_hostname_cn_fallback(const hsmtls_config *cfg) { return cfg->verify.cn_fallback; }

int hsmtls_config_set_verify_flags(hsmtls_config *cfg, unsigned flags)
{
    unsigned known = HSMTLS_VFLAG_CRL_CHECK | HSMTLS_VFLAG_CRL_CHECK_ALL | HSMTLS_VFLAG_STRICT |
                     HSMTLS_VFLAG_PARTIAL_CHAIN | HSMTLS_VFLAG_TRUSTED_FIRST;
    if (flags & ~known)
        return hsmtls__err_set(&cfg->err, "unknown verify flags 0x%x", flags & ~known);
    cfg->verify.flags = flags;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

unsigned hsmtls_config_verify_flags(const hsmtls_config *cfg) { return cfg->verify.flags; }

int hsmtls_config_set_interrupt_on_verify_error(hsmtls_config *cfg, int on)
{
    if (cfg->role != HSMTLS_CLIENT && on)
        return hsmtls__err_set(&cfg->err, "interrupt on verification errors: only for clients (OpenSSL's retry-verify)");
    cfg->verify.interrupt = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_interrupt_on_verify_error(const hsmtls_config *cfg) { return cfg->verify.interrupt; }

int hsmtls_config_set_post_handshake_auth(hsmtls_config *cfg, int on)
{
    cfg->verify.pha = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_post_handshake_auth(const hsmtls_config *cfg) { return cfg->verify.pha; }

int hsmtls__config_effective_verify(const hsmtls_config *cfg)
{
    if (cfg->verify.mode != HSMTLS_VERIFY_AUTO)
        return cfg->verify.mode;
    return cfg->role == HSMTLS_CLIENT ? HSMTLS_VERIFY_PEER : HSMTLS_VERIFY_QUERY;
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    cfg->verify = (struct hsmtls_cfg_verify){
        .mode = HSMTLS_VERIFY_AUTO, .depth = -1, .peer_cert_required = 1,
        .check_hostname = cfg->role == HSMTLS_CLIENT,
    };
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    dst->verify = src->verify; /* no pointers */
    return 0;
}

static void release(hsmtls_config *cfg) { (void)cfg; }

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_verify *x = &a->verify, *y = &b->verify;
    return x->mode == y->mode && x->depth == y->depth && x->peer_cert_required == y->peer_cert_required &&
           x->check_hostname == y->check_hostname && x->cn_fallback == y->cn_fallback &&
           x->interrupt == y->interrupt && x->flags == y->flags && x->pha == y->pha;
}

/* OpenSSL's mode from ours, our callbacks, depth, host name rules and flags. */
static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    (void)e;
    const struct hsmtls_cfg_verify *v = &cfg->verify;
    int eff = hsmtls__config_effective_verify(cfg), mode = SSL_VERIFY_NONE;
    if (cfg->role == HSMTLS_CLIENT)
        mode = eff == HSMTLS_VERIFY_PEER ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
    else if (eff == HSMTLS_VERIFY_QUERY)
        mode = SSL_VERIFY_PEER;
    else if (eff == HSMTLS_VERIFY_PEER)
        mode = SSL_VERIFY_PEER | (v->peer_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    /* The callback runs in every mode: it records each error for the application. */
    SSL_CTX_set_verify(ctx, mode, hsmtls__verify_cb);
    if (v->interrupt && cfg->role == HSMTLS_CLIENT)
        SSL_CTX_set_cert_verify_callback(ctx, hsmtls__verify_chain_cb, NULL);
    if (v->depth >= 0)
        SSL_CTX_set_verify_depth(ctx, v->depth);
    /* RFC 6125: names in the subjectAltName only, unless the application asks for the
     * subject's common name too (used then only when there is no DNS name) */
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                    (v->cn_fallback ? 0 : X509_CHECK_FLAG_NEVER_CHECK_SUBJECT));
    static const struct { unsigned ours; unsigned long x509; } flag_map[] = {
        { HSMTLS_VFLAG_CRL_CHECK, X509_V_FLAG_CRL_CHECK },
        { HSMTLS_VFLAG_CRL_CHECK_ALL, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL },
        { HSMTLS_VFLAG_STRICT, X509_V_FLAG_X509_STRICT },
        { HSMTLS_VFLAG_PARTIAL_CHAIN, X509_V_FLAG_PARTIAL_CHAIN },
        { HSMTLS_VFLAG_TRUSTED_FIRST, X509_V_FLAG_TRUSTED_FIRST },
    };
    for (size_t i = 0; i < sizeof flag_map / sizeof flag_map[0]; i++)
        if (v->flags & flag_map[i].ours)
            X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), flag_map[i].x509);
    if (v->pha) {
        if (cfg->role == HSMTLS_CLIENT)
            SSL_CTX_set_post_handshake_auth(ctx, 1);
        else /* ask for the certificate when told, not in the handshake */
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_POST_HANDSHAKE |
                               (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                               hsmtls__verify_cb);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_verify = { "verification", init, copy, release, equal, apply };
