/* From a config's values to an SSL_CTX. The context is built at the first connection
 * and shared by the next ones (so TLS 1.2 session IDs and ticket keys work across
 * them); any setter drops it, and connections made before keep the old one: the config
 * values are fixed into a connection when it is made. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

void hsmtls__config_changed(hsmtls_config *cfg)
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX_free(cfg->built);
    cfg->built = NULL;
    pthread_mutex_unlock(&cfg->lock);
}

int hsmtls__config_effective_verify(const hsmtls_config *cfg)
{
    if (cfg->verify_mode != HSMTLS_VERIFY_AUTO)
        return cfg->verify_mode;
    return cfg->role == HSMTLS_CLIENT ? HSMTLS_VERIFY_PEER : HSMTLS_VERIFY_QUERY;
}

/* The server's ALPN list (and OCSP response) is copied into the SSL_CTX (ex_data),
 * not pointed at in the config, since the config may change while the context still
 * serves connections. */
struct alpn_copy {
    size_t len;
    unsigned char wire[];
};

static int alpn_index = -1;
static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;

static void free_alpn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void make_alpn_index(void)
{
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
}

/* Server preference: the first of our protocols that the client offers. No overlap is
 * not fatal (RFC 7301 allows going on without ALPN), the client sees no result. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct alpn_copy *a = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    if (!a)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < a->len; i += 1 + (size_t)a->wire[i]) {
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (a->wire[i] == in[j] && j + 1u + in[j] <= inlen &&
                memcmp(a->wire + i + 1, in + j + 1, in[j]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static void keylog_line(const SSL *ssl, const char *line)
{
    hsmtls_conn *conn = SSL_get_ex_data(ssl, hsmtls__conn_index());
    if (conn && conn->keylog)
        conn->keylog(conn, line, conn->keylog_arg);
}

/* SNI: the application may answer with another config's certificate and key. The
 * connection keeps a reference to that config for as long as it uses its context. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    hsmtls_conn *conn = SSL_get_ex_data(ssl, hsmtls__conn_index());
    if (!conn || !conn->sni)
        return SSL_TLSEXT_ERR_OK;
    hsmtls_config *use = NULL;
    if (conn->sni(conn, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), &use, conn->sni_arg) != 0) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (!use || use == conn->cfg)
        return SSL_TLSEXT_ERR_OK;
    if (use->role != HSMTLS_SERVER) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    SSL_CTX *other = SSL_is_dtls(ssl) ? hsmtls__dtls_ctx(use, NULL) : hsmtls__config_ctx(use, NULL);
    if (!other || !SSL_set_SSL_CTX(ssl, other)) {
        SSL_CTX_free(other);
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    SSL_CTX_free(other); /* the SSL holds its own reference */
    hsmtls_config_up_ref(use);
    hsmtls_config_free(conn->cfg);
    conn->cfg = use;
    return SSL_TLSEXT_ERR_OK;
}

/* PSK: OpenSSL's callbacks, which also serve TLS 1.3 external PSKs (with its
 * SHA-256 suite) when no session callbacks are set. */
static unsigned int psk_client(SSL *ssl, const char *hint, char *identity, unsigned int max_identity,
                               unsigned char *psk, unsigned int max_psk)
{
    hsmtls_conn *conn = SSL_get_ex_data(ssl, hsmtls__conn_index());
    if (!conn || !conn->psk_client || max_identity == 0)
        return 0;
    identity[0] = '\0';
    int n = conn->psk_client(conn, hint, identity, max_identity, psk, max_psk, conn->psk_arg);
    if (n <= 0 || (unsigned int)n > max_psk || !memchr(identity, '\0', max_identity))
        return 0;
    return (unsigned int)n;
}

static unsigned int psk_server(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max_psk)
{
    hsmtls_conn *conn = SSL_get_ex_data(ssl, hsmtls__conn_index());
    if (!conn || !conn->psk_server || !identity)
        return 0;
    int n = conn->psk_server(conn, identity, psk, max_psk, conn->psk_arg);
    if (n <= 0 || (unsigned int)n > max_psk)
        return 0;
    free(conn->psk_identity);
    conn->psk_identity = strdup(identity);
    return (unsigned int)n;
}

/* OCSP: like the ALPN list, the server's response is copied into the SSL_CTX. The
 * status callback hands libssl a fresh copy per connection (libssl frees it). */
static int ocsp_index = -1;
static pthread_once_t ocsp_once = PTHREAD_ONCE_INIT;

static void make_ocsp_index(void)
{
    ocsp_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
}

static int ocsp_status(SSL *ssl, void *arg)
{
    if (SSL_is_server(ssl)) {
        const struct alpn_copy *r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ocsp_index);
        if (!r)
            return SSL_TLSEXT_ERR_NOACK;
        unsigned char *copy = OPENSSL_malloc(r->len);
        if (!copy)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        memcpy(copy, r->wire, r->len);
        SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)r->len);
        return SSL_TLSEXT_ERR_OK;
    }
    return 1; /* client: keep the response for the application, which judges it */
}

/* Domain parameters of a named finite-field group ("ffdhe2048"). */
EVP_PKEY *hsmtls__ffdhe(OSSL_LIB_CTX *lc, const char *name)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(lc, "DH", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *pkey = NULL;
    if (pc && EVP_PKEY_fromdata_init(pc) > 0)
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_KEY_PARAMETERS, params);
    EVP_PKEY_CTX_free(pc);
    return pkey;
}

static int add_cert_and_key(hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    if (!cfg->chain && !cfg->key) {
        if (cfg->role == HSMTLS_SERVER && !cfg->psk_server)
            return hsmtls__fail(err, "the server config has no certificate and key");
        return HSMTLS_OK;
    }
    if (!cfg->chain)
        return hsmtls__fail(err, "the config has a private key but no certificate");
    if (!cfg->key)
        return hsmtls__fail(err, "the config has a certificate but no private key");
    STACK_OF(X509) *rest = sk_X509_dup(cfg->chain);
    if (!rest)
        return hsmtls__fail(err, "out of memory");
    X509 *leaf = sk_X509_shift(rest);
    int ok = SSL_CTX_use_cert_and_key(ctx, leaf, cfg->key, rest, 1);
    sk_X509_free(rest);
    if (!ok)
        return hsmtls__fail_ssl(err, "certificate %s with key %s rejected",
                                cfg->cert_ref ? cfg->cert_ref : "(memory)",
                                cfg->key_ref ? cfg->key_ref : "(memory)");
    return HSMTLS_OK;
}

static int add_trust(hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(cfg->ca); i++) {
        X509 *x = sk_X509_value(cfg->ca, i);
        if (!X509_STORE_add_cert(st, x))
            return hsmtls__fail_ssl(err, "cannot add a CA certificate");
        /* Servers name their CAs to clients, so a client with several keys picks right. */
        if (cfg->role == HSMTLS_SERVER && !SSL_CTX_add_client_CA(ctx, x))
            return hsmtls__fail_ssl(err, "cannot add a CA name");
    }
    for (int i = 0; i < cfg->n_ca_dirs; i++)
        if (!SSL_CTX_load_verify_dir(ctx, cfg->ca_dirs[i]))
            return hsmtls__fail_ssl(err, "CA directory %s", cfg->ca_dirs[i]);
    int nothing_set = sk_X509_num(cfg->ca) == 0 && cfg->n_ca_dirs == 0;
    int use_default = cfg->ca_default == 1 || (cfg->ca_default == -1 && nothing_set && cfg->role == HSMTLS_CLIENT);
    if (use_default && !SSL_CTX_set_default_verify_paths(ctx))
        return hsmtls__fail_ssl(err, "cannot use the system CA store");
    return HSMTLS_OK;
}

/* Peer verification: OpenSSL's mode from ours, our callbacks, depth and flags. */
static void apply_verify(const hsmtls_config *cfg, SSL_CTX *ctx)
{
    int v = hsmtls__config_effective_verify(cfg), mode = SSL_VERIFY_NONE;
    if (cfg->role == HSMTLS_CLIENT)
        mode = v == HSMTLS_VERIFY_PEER ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
    else if (v == HSMTLS_VERIFY_QUERY)
        mode = SSL_VERIFY_PEER;
    else if (v == HSMTLS_VERIFY_PEER)
        mode = SSL_VERIFY_PEER | (cfg->peer_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    /* The callback runs in every mode: it records each error for the application. */
    SSL_CTX_set_verify(ctx, mode, hsmtls__verify_cb);
    if (cfg->interrupt_on_verify && cfg->role == HSMTLS_CLIENT)
        SSL_CTX_set_cert_verify_callback(ctx, hsmtls__verify_chain_cb, NULL);
    if (cfg->verify_depth >= 0)
        SSL_CTX_set_verify_depth(ctx, cfg->verify_depth);
    /* RFC 6125: names in the subjectAltName only, unless the application asks for the
     * subject's common name too (used then only when there is no DNS name) */
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                    (cfg->cn_fallback ? 0 : X509_CHECK_FLAG_NEVER_CHECK_SUBJECT));
    static const struct { unsigned ours; unsigned long x509; } flag_map[] = {
        { HSMTLS_VFLAG_CRL_CHECK, X509_V_FLAG_CRL_CHECK },
        { HSMTLS_VFLAG_CRL_CHECK_ALL, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL },
        { HSMTLS_VFLAG_STRICT, X509_V_FLAG_X509_STRICT },
        { HSMTLS_VFLAG_PARTIAL_CHAIN, X509_V_FLAG_PARTIAL_CHAIN },
        { HSMTLS_VFLAG_TRUSTED_FIRST, X509_V_FLAG_TRUSTED_FIRST },
    };
    for (size_t i = 0; i < sizeof flag_map / sizeof flag_map[0]; i++)
        if (cfg->verify_flags & flag_map[i].ours)
            X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), flag_map[i].x509);
}

/* A copy of bytes hung on the SSL_CTX under index *idx (made once). */
static int attach_copy(SSL_CTX *ctx, int *idx, pthread_once_t *once, void (*make)(void),
                       const unsigned char *data, size_t len, char *err)
{
    pthread_once(once, make);
    struct alpn_copy *c = malloc(sizeof *c + len);
    if (!c || *idx < 0) {
        free(c);
        return hsmtls__fail(err, "out of memory");
    }
    c->len = len;
    memcpy(c->wire, data, len);
    SSL_CTX_set_ex_data(ctx, *idx, c);
    return HSMTLS_OK;
}

static int apply_server(const hsmtls_config *cfg, OSSL_LIB_CTX *lc, SSL_CTX *ctx, char *err)
{
    if (cfg->server_preference)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2 DHE suites: an RFC 7919 group (OpenSSL 3.0's "auto" picks RFC 3526 MODP
     * primes instead) */
    const char *group = cfg->dh_params ? "(custom parameters)" : cfg->dh_group ? cfg->dh_group : "ffdhe2048";
    EVP_PKEY *dh = cfg->dh_params ? (EVP_PKEY_up_ref(cfg->dh_params) ? cfg->dh_params : NULL) : hsmtls__ffdhe(lc, group);
    if (!dh || !SSL_CTX_set0_tmp_dh_pkey(ctx, dh)) {
        EVP_PKEY_free(dh);
        return hsmtls__fail_ssl(err, "DH group %s rejected", group);
    }
    if (cfg->sni)
        SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    /* needed for resumption once client certificates are asked for */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hsmtls", 6);
    if (cfg->alpn_wire) {
        if (attach_copy(ctx, &alpn_index, &alpn_once, make_alpn_index, cfg->alpn_wire, cfg->alpn_wire_len,
                        err) != HSMTLS_OK)
            return HSMTLS_ERROR;
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    }
    if (cfg->ocsp) {
        if (attach_copy(ctx, &ocsp_index, &ocsp_once, make_ocsp_index, cfg->ocsp, cfg->ocsp_len, err) != HSMTLS_OK)
            return HSMTLS_ERROR;
        SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status);
    }
    if (cfg->psk_server) {
        SSL_CTX_set_psk_server_callback(ctx, psk_server);
        if (cfg->psk_hint && !SSL_CTX_use_psk_identity_hint(ctx, cfg->psk_hint))
            return hsmtls__fail_ssl(err, "PSK identity hint rejected");
    }
    return HSMTLS_OK;
}

static int apply_client(const hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    if (cfg->alpn_wire && SSL_CTX_set_alpn_protos(ctx, cfg->alpn_wire, (unsigned int)cfg->alpn_wire_len) != 0)
        return hsmtls__fail_ssl(err, "ALPN list rejected");
    if (cfg->ocsp_request) {
        SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
        SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status);
    }
    if (cfg->psk_client)
        SSL_CTX_set_psk_client_callback(ctx, psk_client);
    return HSMTLS_OK;
}

static SSL_CTX *build(hsmtls_config *cfg, char *err)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(err);
    if (!lc)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, cfg->role == HSMTLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        hsmtls__fail_ssl(err, "cannot make an SSL_CTX");
        return NULL;
    }
    /* OpenSSL 3's default security level refuses TLS 1.0/1.1 (SHA-1); asking for them
     * explicitly means asking for that too. */
    if (cfg->allow_legacy && cfg->min_version < HSMTLS_TLS1_2)
        SSL_CTX_set_security_level(ctx, 0);
    if (!SSL_CTX_set_min_proto_version(ctx, cfg->min_version) ||
        !SSL_CTX_set_max_proto_version(ctx, cfg->max_version)) {
        hsmtls__fail_ssl(err, "protocol range rejected");
        goto fail;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (add_cert_and_key(cfg, ctx, err) != HSMTLS_OK || add_trust(cfg, ctx, err) != HSMTLS_OK)
        goto fail;

    apply_verify(cfg, ctx);
    if ((cfg->role == HSMTLS_SERVER ? apply_server(cfg, lc, ctx, err) : apply_client(cfg, ctx, err)) != HSMTLS_OK)
        goto fail;
    if (cfg->session_timeout > 0)
        SSL_CTX_set_timeout(ctx, cfg->session_timeout);
    hsmtls__config_apply_session_cache(cfg, ctx);
    if (!cfg->tickets) {
        /* num_tickets 0 as well: OpenSSL would otherwise send TLS 1.3 stateful tickets,
         * a NewSessionTicket the application asked not to send (config.h says so) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (cfg->keylog)
        SSL_CTX_set_keylog_callback(ctx, keylog_line);
    if (hsmtls__config_apply_more(cfg, ctx, err) != HSMTLS_OK)
        goto fail;
    if (hsmtls__config_apply_lists(cfg, ctx, err) != HSMTLS_OK)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *hsmtls__config_ctx(hsmtls_config *cfg, char *err)
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

/* DTLS objects (dtls.c) make their own context from the same values, then switch it to
 * a DTLS method. */
SSL_CTX *hsmtls__config_build_new(hsmtls_config *cfg, char *err)
{
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX *ctx = build(cfg, err);
    pthread_mutex_unlock(&cfg->lock);
    return ctx;
}
