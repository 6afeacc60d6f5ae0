/* The protocol group: the version range (TLS 1.2 minimum unless legacy versions are
 * allowed), the server's cipher preference and TLS 1.2 renegotiation. */
#include "lib_internal.h"

static int known_version(int v)
{
    return v == 0 || (v >= HSMTLS_TLS1_0 && v <= HSMTLS_TLS1_3);
}

int hsmtls_config_set_protocols(hsmtls_config *cfg, int min_version, int max_version)
{
    struct hsmtls_cfg_protocol *p = &cfg->proto;
    if (!known_version(min_version) || !known_version(max_version))
        return hsmtls__err_set(&cfg->err, "unknown protocol version 0x%04x",
                               known_version(min_version) ? max_version : min_version);
    if (max_version && min_version > max_version)
        return hsmtls__err_set(&cfg->err, "protocol range is empty (minimum above maximum)");
    /* 0 as the minimum means "the lowest allowed", which is 1.2 unless legacy is allowed */
    int lowest = min_version ? min_version : (p->allow_legacy ? HSMTLS_TLS1_0 : HSMTLS_TLS1_2);
    if ((lowest < HSMTLS_TLS1_2 || (max_version && max_version < HSMTLS_TLS1_2)) && !p->allow_legacy)
        return hsmtls__err_set(&cfg->err, "TLS 1.0 and 1.1 are refused; call "
                               "hsmtls_config_allow_legacy_protocols() first to allow them");
    p->min_version = lowest;
    p->max_version = max_version;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_allow_legacy_protocols(hsmtls_config *cfg, int allow)
{
    struct hsmtls_cfg_protocol *p = &cfg->proto;
    p->allow_legacy = !!allow;
    if (!allow && p->min_version < HSMTLS_TLS1_2)
        p->min_version = HSMTLS_TLS1_2;
    if (!allow && p->max_version && p->max_version < HSMTLS_TLS1_2)
        p->max_version = 0;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_min_protocol(const hsmtls_config *cfg) { return cfg->proto.min_version; }
int hsmtls_config_max_protocol(const hsmtls_config *cfg) { return cfg->proto.max_version; }

int hsmtls_config_set_server_preference(hsmtls_config *cfg, int on)
{
    cfg->proto.server_preference = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_server_preference(const hsmtls_config *cfg) { return cfg->proto.server_preference; }

int hsmtls_config_set_renegotiation(hsmtls_config *cfg, int on)
{
    cfg->proto.renegotiation = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_renegotiation(const hsmtls_config *cfg) { return cfg->proto.renegotiation; }

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    cfg->proto = (struct hsmtls_cfg_protocol){ .min_version = HSMTLS_TLS1_2, .server_preference = 1 };
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    dst->proto = src->proto; /* no pointers */
    return 0;
}

static void release(hsmtls_config *cfg) { (void)cfg; }

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_protocol *x = &a->proto, *y = &b->proto;
    return x->min_version == y->min_version && x->max_version == y->max_version &&
           x->allow_legacy == y->allow_legacy && x->server_preference == y->server_preference &&
           x->renegotiation == y->renegotiation;
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_protocol *p = &cfg->proto;
    /* OpenSSL 3's default security level refuses TLS 1.0/1.1 (SHA-1); asking for them
     * explicitly means asking for that too. */
    if (p->allow_legacy && p->min_version < HSMTLS_TLS1_2)
        SSL_CTX_set_security_level(ctx, 0);
    if (!SSL_CTX_set_min_proto_version(ctx, p->min_version) || !SSL_CTX_set_max_proto_version(ctx, p->max_version))
        return hsmtls__err_ssl(e, "protocol range rejected");
    if (cfg->role == HSMTLS_SERVER && p->server_preference)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (p->renegotiation) {
        SSL_CTX_clear_options(ctx, SSL_OP_NO_RENEGOTIATION);
        /* OpenSSL 3 servers refuse a client's renegotiation unless told otherwise */
        if (cfg->role == HSMTLS_SERVER)
            SSL_CTX_set_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_protocol = { "protocol", init, copy, release, equal, apply };
