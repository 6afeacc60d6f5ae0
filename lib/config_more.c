/* More of the config: equality (Qt's operator==), the lists of what the library
 * supports, CRLs for the CRL-check verify flags, the CA names a server sends to clients,
 * post-handshake client authentication (TLS 1.3) and TLS 1.2 renegotiation. */
#include "lib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

/* ---- CRLs ---- */

int hsmtls_config_add_crl(hsmtls_config *cfg, const char *file)
{
    if (!file)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_crl: no file");
    ERR_clear_error();
    BIO *b = BIO_new_file(file, "rb");
    if (!b)
        return hsmtls__fail_ssl(cfg->err, "CRL file %s", file);
    STACK_OF(X509_CRL) *got = sk_X509_CRL_new_null();
    X509_CRL *crl;
    while (got && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)))
        if (!sk_X509_CRL_push(got, crl))
            X509_CRL_free(crl);
    if (got && sk_X509_CRL_num(got) == 0) {
        /* not PEM: one DER CRL */
        ERR_clear_error();
        BIO_reset(b);
        if ((crl = d2i_X509_CRL_bio(b, NULL)) && !sk_X509_CRL_push(got, crl))
            X509_CRL_free(crl);
    }
    BIO_free(b);
    if (!got || sk_X509_CRL_num(got) == 0) {
        sk_X509_CRL_free(got);
        return hsmtls__fail_ssl(cfg->err, "CRL file %s holds no CRL (PEM or DER)", file);
    }
    ERR_clear_error();
    if (!cfg->crls && !(cfg->crls = sk_X509_CRL_new_null())) {
        sk_X509_CRL_pop_free(got, X509_CRL_free);
        return hsmtls__fail(cfg->err, "out of memory");
    }
    while ((crl = sk_X509_CRL_shift(got)))
        if (!sk_X509_CRL_push(cfg->crls, crl))
            X509_CRL_free(crl);
    sk_X509_CRL_free(got);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_crl_count(const hsmtls_config *cfg) { return cfg->crls ? sk_X509_CRL_num(cfg->crls) : 0; }

/* ---- the CA names a server sends ---- */

static int push_name(char ***v, int *n, const X509_NAME *name)
{
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    *v = nv;
    if (!(nv[*n] = hsmtls__name_line(name)))
        return -1;
    (*n)++;
    return 0;
}

int hsmtls_config_add_client_ca(hsmtls_config *cfg, const char *ref)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_client_ca: only for servers");
    STACK_OF(X509) *certs = hsmtls__load_certs(ref, NULL, 0, &cfg->pin, cfg->provider_path, cfg->err);
    if (!certs)
        return HSMTLS_ERROR;
    if (!cfg->client_ca && !(cfg->client_ca = sk_X509_NAME_new_null())) {
        sk_X509_pop_free(certs, X509_free);
        return hsmtls__fail(cfg->err, "out of memory");
    }
    int bad = 0;
    for (int i = 0; i < sk_X509_num(certs) && !bad; i++) {
        X509_NAME *n = X509_NAME_dup(X509_get_subject_name(sk_X509_value(certs, i)));
        bad = !n || !sk_X509_NAME_push(cfg->client_ca, n) ||
              push_name(&cfg->client_ca_names, &cfg->n_client_ca_names, n) != 0;
        if (bad && n && sk_X509_NAME_num(cfg->client_ca) > cfg->n_client_ca_names)
            sk_X509_NAME_pop(cfg->client_ca);
        if (bad)
            X509_NAME_free(n);
    }
    sk_X509_pop_free(certs, X509_free);
    hsmtls__config_changed(cfg);
    return bad ? hsmtls__fail(cfg->err, "out of memory") : HSMTLS_OK;
}

int hsmtls_config_client_ca_count(const hsmtls_config *cfg) { return cfg->n_client_ca_names; }

const char *hsmtls_config_client_ca_name(const hsmtls_config *cfg, int i)
{
    return i >= 0 && i < cfg->n_client_ca_names ? cfg->client_ca_names[i] : NULL;
}

/* ---- post-handshake authentication, renegotiation ---- */

int hsmtls_config_set_post_handshake_auth(hsmtls_config *cfg, int on)
{
    cfg->pha = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_post_handshake_auth(const hsmtls_config *cfg) { return cfg->pha; }

int hsmtls_config_set_renegotiation(hsmtls_config *cfg, int on)
{
    cfg->renegotiation = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_renegotiation(const hsmtls_config *cfg) { return cfg->renegotiation; }

/* ---- into the SSL_CTX, copy, free ---- */

int hsmtls__config_apply_more(const hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; cfg->crls && i < sk_X509_CRL_num(cfg->crls); i++)
        if (!X509_STORE_add_crl(st, sk_X509_CRL_value(cfg->crls, i)))
            return hsmtls__fail_ssl(err, "cannot add a CRL");
    if (cfg->role == HSMTLS_SERVER && cfg->client_ca) {
        /* an explicit list replaces the names of the trusted CAs */
        STACK_OF(X509_NAME) *names = SSL_dup_CA_list(cfg->client_ca);
        if (!names)
            return hsmtls__fail_ssl(err, "out of memory");
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (cfg->pha) {
        if (cfg->role == HSMTLS_CLIENT)
            SSL_CTX_set_post_handshake_auth(ctx, 1);
        else /* ask for the certificate when told, not in the handshake */
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_POST_HANDSHAKE |
                               (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
                               hsmtls__verify_cb);
    }
    if (cfg->renegotiation) {
        SSL_CTX_clear_options(ctx, SSL_OP_NO_RENEGOTIATION);
        /* OpenSSL 3 servers refuse a client's renegotiation unless told otherwise */
        if (cfg->role == HSMTLS_SERVER)
            SSL_CTX_set_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    } else
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    return HSMTLS_OK;
}

int hsmtls__config_copy_more(hsmtls_config *dst, const hsmtls_config *src)
{
    if (src->crls) {
        if (!(dst->crls = sk_X509_CRL_new_null()))
            return -1;
        for (int i = 0; i < sk_X509_CRL_num(src->crls); i++) {
            X509_CRL *c = sk_X509_CRL_value(src->crls, i);
            if (!X509_CRL_up_ref(c) || !sk_X509_CRL_push(dst->crls, c))
                return -1; /* a reference may leak only when out of memory */
        }
    }
    if (src->client_ca) {
        if (!(dst->client_ca = SSL_dup_CA_list(src->client_ca)))
            return -1;
        for (int i = 0; i < sk_X509_NAME_num(dst->client_ca); i++)
            if (push_name(&dst->client_ca_names, &dst->n_client_ca_names, sk_X509_NAME_value(dst->client_ca, i)) != 0)
                return -1;
    }
    dst->pha = src->pha;
    dst->renegotiation = src->renegotiation;
    return 0;
}

void hsmtls__config_free_more(hsmtls_config *cfg)
{
    sk_X509_CRL_pop_free(cfg->crls, X509_CRL_free);
    sk_X509_NAME_pop_free(cfg->client_ca, X509_NAME_free);
    for (int i = 0; i < cfg->n_client_ca_names; i++)
        free(cfg->client_ca_names[i]);
    free(cfg->client_ca_names);
}

/* ---- equality ---- */

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int certs_eq(const STACK_OF(X509) *a, const STACK_OF(X509) *b)
{
    int n = a ? sk_X509_num(a) : 0;
    if (n != (b ? sk_X509_num(b) : 0))
        return 0;
    for (int i = 0; i < n; i++)
        if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0)
            return 0;
    return 1;
}

static int crls_eq(const STACK_OF(X509_CRL) *a, const STACK_OF(X509_CRL) *b)
{
    int n = a ? sk_X509_CRL_num(a) : 0;
    if (n != (b ? sk_X509_CRL_num(b) : 0))
        return 0;
    for (int i = 0; i < n; i++)
        if (X509_CRL_match(sk_X509_CRL_value(a, i), sk_X509_CRL_value(b, i)) != 0)
            return 0;
    return 1;
}

int hsmtls_config_equal(const hsmtls_config *a, const hsmtls_config *b)
{
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    int eq = a->role == b->role && a->min_version == b->min_version && a->max_version == b->max_version &&
             a->allow_legacy == b->allow_legacy && certs_eq(a->chain, b->chain) &&
             (a->key == b->key || (a->key && b->key && EVP_PKEY_eq(a->key, b->key) == 1)) &&
             a->cert_loc == b->cert_loc && a->key_loc == b->key_loc && str_eq(a->cert_ref, b->cert_ref) &&
             str_eq(a->key_ref, b->key_ref) && certs_eq(a->ca, b->ca) && a->n_ca_dirs == b->n_ca_dirs &&
             a->ca_default == b->ca_default && a->verify_mode == b->verify_mode &&
             a->verify_depth == b->verify_depth && a->peer_cert_required == b->peer_cert_required &&
             a->check_hostname == b->check_hostname && a->cn_fallback == b->cn_fallback && a->interrupt_on_verify == b->interrupt_on_verify &&
             a->verify_flags == b->verify_flags && a->session_timeout == b->session_timeout &&
             a->server_preference == b->server_preference && str_eq(a->alpn, b->alpn) &&
             str_eq(a->ciphers, b->ciphers) && str_eq(a->ciphersuites, b->ciphersuites) &&
             str_eq(a->groups, b->groups) && str_eq(a->dh_group, b->dh_group) &&
             (a->dh_params == b->dh_params ||
              (a->dh_params && b->dh_params && EVP_PKEY_parameters_eq(a->dh_params, b->dh_params) == 1)) &&
             a->sess_cache_mode == b->sess_cache_mode && a->sess_cache_size == b->sess_cache_size && a->tickets == b->tickets &&
             a->ocsp_len == b->ocsp_len && (!a->ocsp_len || memcmp(a->ocsp, b->ocsp, a->ocsp_len) == 0) &&
             a->ocsp_request == b->ocsp_request && a->keylog == b->keylog && a->keylog_arg == b->keylog_arg &&
             a->dtls_cookie_off == b->dtls_cookie_off &&
             a->sni == b->sni && a->sni_arg == b->sni_arg && a->psk_client == b->psk_client &&
             a->psk_server == b->psk_server && a->psk_arg == b->psk_arg && str_eq(a->psk_hint, b->psk_hint) &&
             a->pin.cb == b->pin.cb && a->pin.arg == b->pin.arg && str_eq(a->pin_source, b->pin_source) &&
             str_eq(a->provider_path, b->provider_path) && a->n_opts == b->n_opts &&
             crls_eq(a->crls, b->crls) && a->n_client_ca_names == b->n_client_ca_names &&
             a->pha == b->pha && a->renegotiation == b->renegotiation;
    for (int i = 0; eq && i < a->n_ca_dirs; i++)
        eq = str_eq(a->ca_dirs[i], b->ca_dirs[i]);
    for (int i = 0; eq && i < a->n_opts; i++)
        eq = str_eq(a->opts[i].name, b->opts[i].name) && str_eq(a->opts[i].value, b->opts[i].value);
    for (int i = 0; eq && i < a->n_client_ca_names; i++)
        eq = str_eq(a->client_ca_names[i], b->client_ca_names[i]);
    return eq;
}

int hsmtls_config_is_default(const hsmtls_config *cfg)
{
    hsmtls_config *fresh = cfg ? hsmtls_config_new(cfg->role) : NULL;
    int eq = fresh && hsmtls_config_equal(cfg, fresh);
    hsmtls_config_free(fresh);
    return eq;
}

/* ---- what the library supports ---- */

static char *join_ciphers(const hsmtls_config *cfg, int tls13)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(NULL);
    SSL_CTX *ctx = lc ? SSL_CTX_new_ex(lc, NULL, TLS_method()) : NULL;
    if (!ctx)
        return NULL;
    if (cfg->allow_legacy)
        SSL_CTX_set_security_level(ctx, 0);
    char *out = NULL;
    size_t used = 0;
    if (SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL") && SSL_CTX_set_ciphersuites(ctx,
            "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
            "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256")) {
        STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
        out = calloc(1, 1);
        for (int i = 0; out && i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            if ((strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0) != tls13)
                continue;
            const char *name = SSL_CIPHER_get_name(c);
            char *more = realloc(out, used + strlen(name) + 2);
            if (!more) {
                free(out);
                out = NULL;
                break;
            }
            out = more;
            used += (size_t)sprintf(out + used, "%s%s", used ? ":" : "", name);
        }
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!out)
        hsmtls__fail(NULL, "out of memory");
    return out;
}

char *hsmtls_config_supported_ciphers(const hsmtls_config *cfg) { return join_ciphers(cfg, 0); }
char *hsmtls_config_supported_ciphersuites(const hsmtls_config *cfg) { return join_ciphers(cfg, 1); }

char *hsmtls_config_supported_groups(const hsmtls_config *cfg)
{
    (void)cfg;
    /* OpenSSL 3.0 cannot list its groups: the TLS groups it may know, each tried */
    static const char *const known[] = {
        "X25519", "X448", "P-256", "P-384", "P-521", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144",
        "ffdhe8192", "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1",
    };
    OSSL_LIB_CTX *lc = hsmtls__libctx(NULL);
    SSL_CTX *ctx = lc ? SSL_CTX_new_ex(lc, NULL, TLS_method()) : NULL;
    char *out = ctx ? calloc(1, 256) : NULL;
    size_t used = 0;
    for (size_t i = 0; out && i < sizeof known / sizeof known[0]; i++)
        if (SSL_CTX_set1_groups_list(ctx, known[i]))
            used += (size_t)snprintf(out + used, 256 - used, "%s%s", used ? ":" : "", known[i]);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!out)
        hsmtls__fail(NULL, "out of memory");
    return out;
}
