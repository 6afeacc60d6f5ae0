/* hsmtls_config: the values, their setters and getters, copy and reference counting.
 * Certificates and keys are config_creds.c's, string lists config_lists.c's, and
 * turning the values into an SSL_CTX config_build.c's. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

hsmtls_config *hsmtls_config_new(enum hsmtls_role role)
{
    if (role != HSMTLS_CLIENT && role != HSMTLS_SERVER) {
        hsmtls__fail(NULL, "hsmtls_config_new: role must be HSMTLS_CLIENT or HSMTLS_SERVER");
        return NULL;
    }
    if (!hsmtls__libctx(NULL))
        return NULL;
    hsmtls_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->ca = sk_X509_new_null())) {
        free(cfg);
        hsmtls__fail(NULL, "out of memory");
        return NULL;
    }
    atomic_init(&cfg->refs, 1);
    pthread_mutex_init(&cfg->lock, NULL);
    cfg->role = role;
    cfg->min_version = HSMTLS_TLS1_2;
    cfg->max_version = 0;
    cfg->ca_default = -1;
    cfg->verify_mode = HSMTLS_VERIFY_AUTO;
    cfg->verify_depth = -1;
    cfg->peer_cert_required = 1;
    cfg->check_hostname = role == HSMTLS_CLIENT;
    cfg->tickets = 1;
    cfg->server_preference = 1;
    cfg->sess_cache_mode = HSMTLS_SESS_CACHE_SERVER;
    cfg->sess_cache_size = -1;
    return cfg;
}

int hsmtls_config_up_ref(hsmtls_config *cfg)
{
    if (!cfg)
        return HSMTLS_ERROR;
    atomic_fetch_add(&cfg->refs, 1);
    return HSMTLS_OK;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void hsmtls_config_free(hsmtls_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    SSL_CTX_free(cfg->built);
    sk_X509_pop_free(cfg->chain, X509_free);
    sk_X509_pop_free(cfg->ca, X509_free);
    EVP_PKEY_free(cfg->key);
    free(cfg->cert_ref);
    free(cfg->key_ref);
    free(cfg->cert_subject);
    free(cfg->provider_path);
    free(cfg->pin_source);
    free(cfg->psk_hint);
    free(cfg->ocsp);
    free(cfg->dh_group);
    EVP_PKEY_free(cfg->dh_params);
    free_strings(cfg->ca_dirs, cfg->n_ca_dirs);
    free(cfg->alpn_wire);
    free(cfg->alpn);
    free(cfg->ciphers);
    free(cfg->ciphersuites);
    free(cfg->groups);
    for (int i = 0; i < cfg->n_opts; i++) {
        free(cfg->opts[i].name);
        free(cfg->opts[i].value);
    }
    free(cfg->opts);
    hsmtls__config_free_more(cfg);
    pthread_mutex_destroy(&cfg->lock);
    free(cfg);
}

/* Copies a string field; returns 0, or -1 when out of memory. */
static int dup_field(char **dst, const char *src)
{
    *dst = hsmtls__strdup(src);
    return src && !*dst ? -1 : 0;
}

hsmtls_config *hsmtls_config_copy(const hsmtls_config *src)
{
    if (!src)
        return NULL;
    hsmtls_config *c = hsmtls_config_new(src->role);
    if (!c)
        return NULL;
    int bad = 0;
    c->pin = src->pin;
    c->pin.source = NULL;
    bad |= hsmtls_config_set_pin_source(c, src->pin_source) != HSMTLS_OK;
    c->min_version = src->min_version;
    c->max_version = src->max_version;
    c->allow_legacy = src->allow_legacy;
    c->dtls_cookie_off = src->dtls_cookie_off;
    if (src->chain && !(c->chain = X509_chain_up_ref(src->chain)))
        bad = 1;
    if (src->key && EVP_PKEY_up_ref(src->key))
        c->key = src->key;
    c->cert_loc = src->cert_loc;
    c->key_loc = src->key_loc;
    bad |= dup_field(&c->cert_ref, src->cert_ref) | dup_field(&c->key_ref, src->key_ref) |
           dup_field(&c->cert_subject, src->cert_subject) |
           dup_field(&c->provider_path, src->provider_path);
    for (int i = 0; i < sk_X509_num(src->ca); i++) {
        X509 *x = sk_X509_value(src->ca, i);
        if (X509_up_ref(x) && !sk_X509_push(c->ca, x)) {
            X509_free(x);
            bad = 1;
        }
    }
    for (int i = 0; i < src->n_ca_dirs && !bad; i++)
        bad = hsmtls_config_add_ca_dir(c, src->ca_dirs[i]) != HSMTLS_OK;
    c->ca_default = src->ca_default;
    c->verify_mode = src->verify_mode;
    c->verify_depth = src->verify_depth;
    c->peer_cert_required = src->peer_cert_required;
    c->check_hostname = src->check_hostname;
    c->cn_fallback = src->cn_fallback;
    c->interrupt_on_verify = src->interrupt_on_verify;
    if (!bad && src->alpn)
        bad = hsmtls_config_set_alpn(c, src->alpn) != HSMTLS_OK;
    bad |= dup_field(&c->ciphers, src->ciphers) | dup_field(&c->ciphersuites, src->ciphersuites) |
           dup_field(&c->groups, src->groups);
    c->tickets = src->tickets;
    c->ocsp_request = src->ocsp_request;
    bad |= dup_field(&c->dh_group, src->dh_group);
    if (src->dh_params) {
        /* without its reference the copy would quietly serve ffdhe2048 instead */
        if (EVP_PKEY_up_ref(src->dh_params))
            c->dh_params = src->dh_params;
        else
            bad = 1;
    }
    c->sess_cache_mode = src->sess_cache_mode;
    c->sess_cache_size = src->sess_cache_size;
    if (!bad && src->ocsp)
        bad = hsmtls_config_set_ocsp_response(c, src->ocsp, src->ocsp_len) != HSMTLS_OK;
    c->verify_flags = src->verify_flags;
    c->session_timeout = src->session_timeout;
    c->server_preference = src->server_preference;
    c->psk_client = src->psk_client;
    c->psk_server = src->psk_server;
    c->psk_arg = src->psk_arg;
    bad |= dup_field(&c->psk_hint, src->psk_hint);
    c->sni = src->sni;
    c->sni_arg = src->sni_arg;
    c->keylog = src->keylog;
    c->keylog_arg = src->keylog_arg;
    for (int i = 0; i < src->n_opts && !bad; i++) {
        /* not through the setter: the values were checked when first set */
        struct backend_opt *o = realloc(c->opts, (size_t)(c->n_opts + 1) * sizeof *o);
        if (!o) {
            bad = 1;
            break;
        }
        c->opts = o;
        o[c->n_opts].name = strdup(src->opts[i].name);
        o[c->n_opts].value = strdup(src->opts[i].value);
        c->n_opts++;
        bad = !o[c->n_opts - 1].name || !o[c->n_opts - 1].value;
    }
    if (!bad && hsmtls__config_copy_more(c, src) != 0)
        bad = 1;
    if (bad) {
        hsmtls_config_free(c);
        hsmtls__fail(NULL, "hsmtls_config_copy: out of memory");
        return NULL;
    }
    return c;
}

enum hsmtls_role hsmtls_config_role(const hsmtls_config *cfg) { return cfg->role; }
const char *hsmtls_config_error(const hsmtls_config *cfg) { return cfg ? cfg->err : hsmtls_error_message(); }

int hsmtls_config_set_provider_path(hsmtls_config *cfg, const char *path)
{
    char *p = hsmtls__strdup(path);
    if (path && !p)
        return hsmtls__fail(cfg->err, "out of memory");
    free(cfg->provider_path);
    cfg->provider_path = p;
    return HSMTLS_OK;
}

const char *hsmtls_config_provider_path(const hsmtls_config *cfg)
{
    return cfg->provider_path ? cfg->provider_path : hsmtls__provider_default_path();
}

int hsmtls_config_set_pin_source(hsmtls_config *cfg, const char *path)
{
    char *p = hsmtls__strdup(path);
    if (path && !p)
        return hsmtls__fail(cfg->err, "out of memory");
    free(cfg->pin_source);
    cfg->pin_source = p;
    cfg->pin.source = p;
    return HSMTLS_OK;
}

const char *hsmtls_location_name(enum hsmtls_location loc)
{
    switch (loc) {
    case HSMTLS_LOC_FILE: return "file";
    case HSMTLS_LOC_MEMORY: return "memory";
    case HSMTLS_LOC_TOKEN: return "token";
    default: return "none";
    }
}

int hsmtls_config_set_pin_cb(hsmtls_config *cfg, hsmtls_pin_cb cb, void *arg)
{
    cfg->pin.cb = cb;
    cfg->pin.arg = arg;
    return HSMTLS_OK;
}

/* ---- protocols ---- */

static int known_version(int v)
{
    return v == 0 || (v >= HSMTLS_TLS1_0 && v <= HSMTLS_TLS1_3);
}

int hsmtls_config_set_protocols(hsmtls_config *cfg, int min_version, int max_version)
{
    if (!known_version(min_version) || !known_version(max_version))
        return hsmtls__fail(cfg->err, "unknown protocol version 0x%04x",
                            known_version(min_version) ? max_version : min_version);
    if (max_version && min_version > max_version)
        return hsmtls__fail(cfg->err, "protocol range is empty (minimum above maximum)");
    /* 0 as the minimum means "the lowest allowed", which is 1.2 unless legacy is allowed */
    int lowest = min_version ? min_version : (cfg->allow_legacy ? HSMTLS_TLS1_0 : HSMTLS_TLS1_2);
    if (lowest < HSMTLS_TLS1_2 && !cfg->allow_legacy)
        return hsmtls__fail(cfg->err, "TLS 1.0 and 1.1 are refused; call "
                            "hsmtls_config_allow_legacy_protocols() first to allow them");
    if (max_version && max_version < HSMTLS_TLS1_2 && !cfg->allow_legacy)
        return hsmtls__fail(cfg->err, "TLS 1.0 and 1.1 are refused; call "
                            "hsmtls_config_allow_legacy_protocols() first to allow them");
    cfg->min_version = lowest;
    cfg->max_version = max_version;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_allow_legacy_protocols(hsmtls_config *cfg, int allow)
{
    cfg->allow_legacy = !!allow;
    if (!allow && cfg->min_version < HSMTLS_TLS1_2)
        cfg->min_version = HSMTLS_TLS1_2;
    if (!allow && cfg->max_version && cfg->max_version < HSMTLS_TLS1_2)
        cfg->max_version = 0;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_min_protocol(const hsmtls_config *cfg) { return cfg->min_version; }
int hsmtls_config_max_protocol(const hsmtls_config *cfg) { return cfg->max_version; }

/* ---- verification ---- */

int hsmtls_config_set_verify_mode(hsmtls_config *cfg, enum hsmtls_verify_mode mode)
{
    if (mode < HSMTLS_VERIFY_NONE || mode > HSMTLS_VERIFY_AUTO)
        return hsmtls__fail(cfg->err, "unknown verify mode %d", (int)mode);
    cfg->verify_mode = mode;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

enum hsmtls_verify_mode hsmtls_config_verify_mode(const hsmtls_config *cfg) { return cfg->verify_mode; }

int hsmtls_config_set_verify_depth(hsmtls_config *cfg, int depth)
{
    if (depth < -1)
        return hsmtls__fail(cfg->err, "verify depth %d: must be -1 (default) or more", depth);
    cfg->verify_depth = depth;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_verify_depth(const hsmtls_config *cfg) { return cfg->verify_depth; }

int hsmtls_config_set_peer_cert_required(hsmtls_config *cfg, int required)
{
    cfg->peer_cert_required = !!required;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_peer_cert_required(const hsmtls_config *cfg) { return cfg->peer_cert_required; }

int hsmtls_config_set_check_hostname(hsmtls_config *cfg, int check)
{
    cfg->check_hostname = !!check;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_check_hostname(const hsmtls_config *cfg) { return cfg->check_hostname; }

int hsmtls_config_set_hostname_cn_fallback(hsmtls_config *cfg, int on)
{
    cfg->cn_fallback = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_hostname_cn_fallback(const hsmtls_config *cfg) { return cfg->cn_fallback; }

int hsmtls_config_set_session_tickets(hsmtls_config *cfg, int on)
{
    cfg->tickets = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_session_tickets(const hsmtls_config *cfg) { return cfg->tickets; }

int hsmtls_config_set_keylog_cb(hsmtls_config *cfg, hsmtls_keylog_cb cb, void *arg)
{
    cfg->keylog = cb;
    cfg->keylog_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_verify_flags(hsmtls_config *cfg, unsigned flags)
{
    unsigned known = HSMTLS_VFLAG_CRL_CHECK | HSMTLS_VFLAG_CRL_CHECK_ALL | HSMTLS_VFLAG_STRICT |
                     HSMTLS_VFLAG_PARTIAL_CHAIN | HSMTLS_VFLAG_TRUSTED_FIRST;
    if (flags & ~known)
        return hsmtls__fail(cfg->err, "unknown verify flags 0x%x", flags & ~known);
    cfg->verify_flags = flags;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

unsigned hsmtls_config_verify_flags(const hsmtls_config *cfg) { return cfg->verify_flags; }

int hsmtls_config_set_session_timeout(hsmtls_config *cfg, long seconds)
{
    if (seconds < 0)
        return hsmtls__fail(cfg->err, "session timeout %ld: must be 0 (default) or more", seconds);
    cfg->session_timeout = seconds;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

long hsmtls_config_session_timeout(const hsmtls_config *cfg) { return cfg->session_timeout; }

int hsmtls_config_set_server_preference(hsmtls_config *cfg, int on)
{
    cfg->server_preference = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_server_preference(const hsmtls_config *cfg) { return cfg->server_preference; }

int hsmtls_config_set_sni_cb(hsmtls_config *cfg, hsmtls_sni_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_sni_cb: only for servers");
    cfg->sni = cb;
    cfg->sni_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_interrupt_on_verify_error(hsmtls_config *cfg, int on)
{
    if (cfg->role != HSMTLS_CLIENT && on)
        return hsmtls__fail(cfg->err, "interrupt on verification errors: only for clients (OpenSSL's retry-verify)");
    cfg->interrupt_on_verify = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_interrupt_on_verify_error(const hsmtls_config *cfg) { return cfg->interrupt_on_verify; }

int hsmtls_config_set_psk_client_cb(hsmtls_config *cfg, hsmtls_psk_client_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_CLIENT)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_psk_client_cb: only for clients");
    cfg->psk_client = cb;
    cfg->psk_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_psk_server_cb(hsmtls_config *cfg, hsmtls_psk_server_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_psk_server_cb: only for servers");
    cfg->psk_server = cb;
    cfg->psk_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_psk_identity_hint(hsmtls_config *cfg, const char *hint)
{
    if (hint && strlen(hint) > 128)
        return hsmtls__fail(cfg->err, "PSK identity hint: at most 128 bytes");
    char *copy = hsmtls__strdup(hint);
    if (hint && !copy)
        return hsmtls__fail(cfg->err, "out of memory");
    free(cfg->psk_hint);
    cfg->psk_hint = copy;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

const char *hsmtls_config_psk_identity_hint(const hsmtls_config *cfg) { return cfg->psk_hint; }

int hsmtls_config_set_ocsp_response(hsmtls_config *cfg, const void *der, size_t len)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_ocsp_response: only for servers");
    unsigned char *copy = NULL;
    if (der && len) {
        if (!(copy = malloc(len)))
            return hsmtls__fail(cfg->err, "out of memory");
        memcpy(copy, der, len);
    }
    free(cfg->ocsp);
    cfg->ocsp = copy;
    cfg->ocsp_len = copy ? len : 0;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_ocsp_request(hsmtls_config *cfg, int on)
{
    if (cfg->role != HSMTLS_CLIENT)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_ocsp_request: only for clients");
    cfg->ocsp_request = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_ocsp_request(const hsmtls_config *cfg) { return cfg->ocsp_request; }

