/* The callbacks group: the application's keylog, SNI and PSK callbacks, and OpenSSL's
 * callbacks that call them. A connection copies the group when it is made (conn.c), so
 * the trampolines read the connection's copy, not the config's. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

int hsmtls_config_set_keylog_cb(hsmtls_config *cfg, hsmtls_keylog_cb cb, void *arg)
{
    cfg->cb.keylog = cb;
    cfg->cb.keylog_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_sni_cb(hsmtls_config *cfg, hsmtls_sni_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_sni_cb: only for servers");
    cfg->cb.sni = cb;
    cfg->cb.sni_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_psk_client_cb(hsmtls_config *cfg, hsmtls_psk_client_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_CLIENT)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_psk_client_cb: only for clients");
    cfg->cb.psk_client = cb;
    cfg->cb.psk_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_psk_server_cb(hsmtls_config *cfg, hsmtls_psk_server_cb cb, void *arg)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_psk_server_cb: only for servers");
    cfg->cb.psk_server = cb;
    cfg->cb.psk_arg = arg;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_psk_identity_hint(hsmtls_config *cfg, const char *hint)
{
    if (hint && strlen(hint) > 128)
        return hsmtls__err_set(&cfg->err, "PSK identity hint: at most 128 bytes");
    char *copy = hsmtls__strdup(hint);
    if (hint && !copy)
        return hsmtls__err_set(&cfg->err, "out of memory");
    free(cfg->cb.psk_hint);
    cfg->cb.psk_hint = copy;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

const char *hsmtls_config_psk_identity_hint(const hsmtls_config *cfg) { return cfg->cb.psk_hint; }

/* ---- OpenSSL's side ---- */

static hsmtls_conn *conn_of(const SSL *ssl) { return SSL_get_ex_data(ssl, hsmtls__conn_index()); }

static void keylog_line(const SSL *ssl, const char *line)
{
    hsmtls_conn *conn = conn_of(ssl);
    if (conn && conn->cb.keylog)
        conn->cb.keylog(conn, line, conn->cb.keylog_arg);
}

/* SNI: the application may answer with another config's certificate and key. The
 * connection keeps a reference to that config for as long as it uses its context. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    hsmtls_conn *conn = conn_of(ssl);
    if (!conn || !conn->cb.sni)
        return SSL_TLSEXT_ERR_OK;
    hsmtls_config *use = NULL;
    if (conn->cb.sni(conn, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), &use, conn->cb.sni_arg) != 0) {
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
    hsmtls_conn *conn = conn_of(ssl);
    if (!conn || !conn->cb.psk_client || max_identity == 0)
        return 0;
    identity[0] = '\0';
    int n = conn->cb.psk_client(conn, hint, identity, max_identity, psk, max_psk, conn->cb.psk_arg);
    if (n <= 0 || (unsigned int)n > max_psk || !memchr(identity, '\0', max_identity))
        return 0;
    return (unsigned int)n;
}

static unsigned int psk_server(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max_psk)
{
    hsmtls_conn *conn = conn_of(ssl);
    if (!conn || !conn->cb.psk_server || !identity)
        return 0;
    int n = conn->cb.psk_server(conn, identity, psk, max_psk, conn->cb.psk_arg);
    if (n <= 0 || (unsigned int)n > max_psk)
        return 0;
    free(conn->psk_identity);
    conn->psk_identity = strdup(identity);
    return (unsigned int)n;
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* none */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    dst->cb = src->cb;
    dst->cb.psk_hint = NULL;
    return hsmtls__dup_str(&dst->cb.psk_hint, src->cb.psk_hint);
}

static void release(hsmtls_config *cfg) { free(cfg->cb.psk_hint); }

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_callbacks *x = &a->cb, *y = &b->cb;
    return x->keylog == y->keylog && x->keylog_arg == y->keylog_arg && x->sni == y->sni && x->sni_arg == y->sni_arg &&
           x->psk_client == y->psk_client && x->psk_server == y->psk_server && x->psk_arg == y->psk_arg &&
           hsmtls__str_eq(x->psk_hint, y->psk_hint);
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_callbacks *c = &cfg->cb;
    if (c->keylog)
        SSL_CTX_set_keylog_callback(ctx, keylog_line);
    if (cfg->role == HSMTLS_SERVER) {
        if (c->sni)
            SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
        if (c->psk_server) {
            SSL_CTX_set_psk_server_callback(ctx, psk_server);
            if (c->psk_hint && !SSL_CTX_use_psk_identity_hint(ctx, c->psk_hint))
                return hsmtls__err_ssl(e, "PSK identity hint rejected");
        }
    } else if (c->psk_client) {
        SSL_CTX_set_psk_client_callback(ctx, psk_client);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_callbacks = { "callbacks", init, copy, release, equal, apply };
