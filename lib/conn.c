/* hsmtls_conn: making a connection from a config, its I/O modes, and the handshake,
 * read, write and shutdown calls with their status mapping. */
#include "lib_internal.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static int conn_index = -1;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void make_index(void)
{
    conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int hsmtls__conn_index(void)
{
    pthread_once(&conn_once, make_index);
    return conn_index;
}

hsmtls_conn *hsmtls_conn_new(hsmtls_config *cfg)
{
    if (!cfg) {
        hsmtls__fail(NULL, "hsmtls_conn_new: no config");
        return NULL;
    }
    hsmtls_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        hsmtls__fail(NULL, "out of memory");
        return NULL;
    }
    SSL_CTX *ctx = hsmtls__config_ctx(cfg, conn->err);
    if (!ctx || hsmtls__conn_index() < 0) {
        SSL_CTX_free(ctx);
        free(conn);
        return NULL; /* the thread's message says why */
    }
    conn->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!conn->ssl) {
        hsmtls__fail_ssl(NULL, "cannot make a connection");
        free(conn);
        return NULL;
    }
    SSL_set_ex_data(conn->ssl, conn_index, conn);
    hsmtls_config_up_ref(cfg);
    conn->cfg = cfg;
    conn->role = cfg->role;
    conn->effective_verify = hsmtls__config_effective_verify(cfg);
    conn->check_hostname = cfg->check_hostname && cfg->role == HSMTLS_CLIENT;
    conn->alpn_listed = cfg->alpn_wire != NULL;
    conn->keylog = cfg->keylog;
    conn->keylog_arg = cfg->keylog_arg;
    conn->interrupt_on_verify = cfg->interrupt_on_verify && cfg->role == HSMTLS_CLIENT;
    conn->psk_client = cfg->psk_client;
    conn->psk_server = cfg->psk_server;
    conn->psk_arg = cfg->psk_arg;
    conn->sni = cfg->sni;
    conn->sni_arg = cfg->sni_arg;
    if (conn->role == HSMTLS_SERVER)
        SSL_set_accept_state(conn->ssl);
    else
        SSL_set_connect_state(conn->ssl);
    return conn;
}

void hsmtls_conn_free(hsmtls_conn *conn)
{
    if (!conn)
        return;
    SSL_free(conn->ssl); /* frees the memory BIOs too */
    hsmtls_config_free(conn->cfg);
    hsmtls__conn_clear_info(conn);
    hsmtls__conn_free_more(conn);
    free(conn->ignored);
    free(conn->psk_identity);
    free(conn->hostname);
    free(conn);
}

enum hsmtls_role hsmtls_conn_role(const hsmtls_conn *conn) { return conn->role; }
const char *hsmtls_conn_error_message(const hsmtls_conn *conn) { return conn ? conn->err : hsmtls_error_message(); }

int hsmtls_conn_set_fd(hsmtls_conn *conn, int fd)
{
    if (conn->mode != MODE_NONE)
        return hsmtls__fail(conn->err, "the connection already has its I/O");
    ERR_clear_error();
    if (fd < 0 || !SSL_set_fd(conn->ssl, fd))
        return hsmtls__fail_ssl(conn->err, "cannot use fd %d", fd);
    conn->mode = MODE_FD;
    return HSMTLS_OK;
}

int hsmtls_conn_use_memory(hsmtls_conn *conn)
{
    if (conn->mode != MODE_NONE)
        return hsmtls__fail(conn->err, "the connection already has its I/O");
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!in || !out) {
        BIO_free(in);
        BIO_free(out);
        return hsmtls__fail_ssl(conn->err, "out of memory");
    }
    /* An empty incoming buffer means "not yet" (want-read) until feed_eof says "never". */
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(conn->ssl, in, out);
    conn->in = in;
    conn->out = out;
    conn->mode = MODE_MEMORY;
    return HSMTLS_OK;
}

int hsmtls_conn_feed(hsmtls_conn *conn, const void *data, size_t len)
{
    if (conn->mode != MODE_MEMORY)
        return hsmtls__fail(conn->err, "hsmtls_conn_feed: the connection is not in memory mode");
    if (len > INT_MAX)
        len = INT_MAX;
    if (len == 0)
        return 0;
    int n = BIO_write(conn->in, data, (int)len);
    return n > 0 ? n : hsmtls__fail_ssl(conn->err, "hsmtls_conn_feed: out of memory");
}

int hsmtls_conn_feed_eof(hsmtls_conn *conn)
{
    if (conn->mode != MODE_MEMORY)
        return hsmtls__fail(conn->err, "hsmtls_conn_feed_eof: the connection is not in memory mode");
    BIO_set_mem_eof_return(conn->in, 0);
    return HSMTLS_OK;
}

int hsmtls_conn_take(hsmtls_conn *conn, void *buf, size_t size)
{
    if (conn->mode != MODE_MEMORY)
        return hsmtls__fail(conn->err, "hsmtls_conn_take: the connection is not in memory mode");
    if (size > INT_MAX)
        size = INT_MAX;
    if (size == 0 || BIO_ctrl_pending(conn->out) == 0)
        return 0;
    int n = BIO_read(conn->out, buf, (int)size);
    return n > 0 ? n : 0;
}

size_t hsmtls_conn_outgoing(const hsmtls_conn *conn)
{
    return conn->mode == MODE_MEMORY ? BIO_ctrl_pending(conn->out) : 0;
}

int hsmtls_conn_set_hostname(hsmtls_conn *conn, const char *name)
{
    if (conn->role != HSMTLS_CLIENT)
        return hsmtls__fail(conn->err, "hsmtls_conn_set_hostname: only for clients");
    if (!name || !*name)
        return hsmtls__fail(conn->err, "hsmtls_conn_set_hostname: empty name");
    char *copy = strdup(name);
    if (!copy)
        return hsmtls__fail(conn->err, "out of memory");
    ERR_clear_error();
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
    int ok = 1;
    if (ip) {
        /* RFC 6066: no SNI for addresses; the certificate is checked for an IP SAN. */
        if (conn->check_hostname)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), name);
        ASN1_OCTET_STRING_free(ip);
    } else {
        ok = SSL_set_tlsext_host_name(conn->ssl, name);
        if (ok && conn->check_hostname) {
            ok = SSL_set1_host(conn->ssl, name); /* the flags are the context's (config_build.c) */
        }
    }
    ERR_clear_error(); /* a2i_IPADDRESS leaves errors for names */
    if (!ok) {
        free(copy);
        return hsmtls__fail(conn->err, "host name \"%s\" rejected", name);
    }
    free(conn->hostname);
    conn->hostname = copy;
    return HSMTLS_OK;
}

int hsmtls_conn_set_session(hsmtls_conn *conn, hsmtls_session *sess)
{
    if (conn->role != HSMTLS_CLIENT)
        return hsmtls__fail(conn->err, "hsmtls_conn_set_session: only for clients");
    ERR_clear_error();
    if (!SSL_set_session(conn->ssl, (SSL_SESSION *)sess))
        return hsmtls__fail_ssl(conn->err, "session rejected");
    return HSMTLS_OK;
}

hsmtls_session *hsmtls_conn_session(hsmtls_conn *conn)
{
    SSL_SESSION *s = SSL_get1_session(conn->ssl);
    if (s && !SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return (hsmtls_session *)s;
}

void hsmtls_session_free(hsmtls_session *sess)
{
    SSL_SESSION_free((SSL_SESSION *)sess);
}

/* Before the first I/O: the connection has its I/O, and a client that checks host names
 * knows the name to check (Python refuses the same way). */
static int ready(hsmtls_conn *conn)
{
    if (conn->mode == MODE_NONE)
        return hsmtls__fail(conn->err, "the connection has no fd, memory buffers or I/O callbacks yet");
    if (conn->check_hostname && !conn->hostname && !SSL_is_init_finished(conn->ssl) &&
        conn->effective_verify != HSMTLS_VERIFY_NONE)
        return hsmtls__fail(conn->err, "host name checking is on but no host name was set "
                            "(hsmtls_conn_set_hostname, or turn the checks off)");
    return HSMTLS_OK;
}

/* Maps an SSL_* result to our status, with a message keeping OpenSSL's reason. */
static int status(hsmtls_conn *conn, int r, const char *what)
{
    int e = SSL_get_error(conn->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return HSMTLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return HSMTLS_WANT_WRITE;
    case SSL_ERROR_WANT_RETRY_VERIFY:
        hsmtls__fail(conn->err, "%s: paused on %d verification error(s)", what, conn->n_verrs);
        return HSMTLS_WANT_VERIFY;
    case SSL_ERROR_ZERO_RETURN:
        return hsmtls__fail(conn->err, "%s: the peer closed the connection", what);
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno)
                return hsmtls__fail(conn->err, "%s: %s", what, strerror(errno));
            hsmtls__fail(conn->err, "%s: the peer closed the connection without close_notify", what);
            return HSMTLS_CLOSED;
        }
        break;
    case SSL_ERROR_SSL:
        /* OpenSSL 3 reports a bare TCP close as this error, not as SYSCALL */
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            hsmtls__fail(conn->err, "%s: the peer closed the connection without close_notify", what);
            return HSMTLS_CLOSED;
        }
        break;
    default:
        break;
    }
    hsmtls__fail_ssl(conn->err, "%s failed", what);
    /* The verification errors, each with its certificate, say more than OpenSSL's
     * "certificate verify failed" alone. */
    long vr = SSL_get_verify_result(conn->ssl);
    if (vr != X509_V_OK && !SSL_is_init_finished(conn->ssl)) {
        size_t u = strlen(conn->err);
        u += (size_t)snprintf(conn->err + u, sizeof conn->err - u, " (");
        for (int i = 0; i < conn->n_verrs && u < sizeof conn->err; i++)
            u += (size_t)snprintf(conn->err + u, sizeof conn->err - u, "%s%s", i ? "; " : "", conn->verrs[i].message);
        if (!conn->n_verrs && u < sizeof conn->err)
            u += (size_t)snprintf(conn->err + u, sizeof conn->err - u, "%s", X509_verify_cert_error_string(vr));
        if (u < sizeof conn->err)
            snprintf(conn->err + u, sizeof conn->err - u, ")");
        hsmtls__set_error(conn->err, conn->err);
    }
    return HSMTLS_ERROR;
}

int hsmtls_conn_handshake(hsmtls_conn *conn)
{
    if (SSL_is_init_finished(conn->ssl))
        return HSMTLS_OK;
    if (ready(conn) != HSMTLS_OK)
        return HSMTLS_ERROR;
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(conn->ssl);
    if (r == 1)
        return HSMTLS_OK;
    return status(conn, r, "TLS handshake");
}

int hsmtls_conn_handshake_done(const hsmtls_conn *conn) { return SSL_is_init_finished(conn->ssl); }

int hsmtls_conn_read(hsmtls_conn *conn, void *buf, size_t size)
{
    if (ready(conn) != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (size > INT_MAX)
        size = INT_MAX;
    if (size == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(conn->ssl, buf, (int)size);
    if (r > 0)
        return r;
    if (SSL_get_error(conn->ssl, r) == SSL_ERROR_ZERO_RETURN)
        return 0;
    return status(conn, r, SSL_is_init_finished(conn->ssl) ? "read" : "TLS handshake");
}

int hsmtls_conn_write(hsmtls_conn *conn, const void *data, size_t len)
{
    if (ready(conn) != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (len > INT_MAX)
        len = INT_MAX;
    if (len == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(conn->ssl, data, (int)len);
    if (r > 0)
        return r;
    return status(conn, r, SSL_is_init_finished(conn->ssl) ? "write" : "TLS handshake");
}

size_t hsmtls_conn_pending(const hsmtls_conn *conn)
{
    int n = SSL_pending(conn->ssl);
    return n > 0 ? (size_t)n : 0;
}

int hsmtls_conn_shutdown(hsmtls_conn *conn)
{
    if (conn->shutdown_sent)
        return HSMTLS_OK;
    if (!SSL_is_init_finished(conn->ssl))
        return hsmtls__fail(conn->err, "shutdown: the handshake is not done");
    ERR_clear_error();
    errno = 0;
    /* One call sends close_notify (0) or completes both sides (1); we never call it
     * again to wait for the peer's, so the application can keep reading its data. */
    int r = SSL_shutdown(conn->ssl);
    if (r >= 0) {
        conn->shutdown_sent = 1;
        return HSMTLS_OK;
    }
    return status(conn, r, "shutdown");
}

int hsmtls_conn_shutdown_state(const hsmtls_conn *conn)
{
    int s = SSL_get_shutdown(conn->ssl), out = 0;
    if ((s & SSL_SENT_SHUTDOWN) && conn->shutdown_sent)
        out |= HSMTLS_SHUTDOWN_SENT;
    if (s & SSL_RECEIVED_SHUTDOWN)
        out |= HSMTLS_SHUTDOWN_RECEIVED;
    return out;
}

int hsmtls_conn_export_keying_material(hsmtls_conn *conn, void *out, size_t len, const char *label,
                                       const void *context, size_t context_len)
{
    if (!SSL_is_init_finished(conn->ssl))
        return hsmtls__fail(conn->err, "exporter: the handshake is not done");
    if (!label)
        return hsmtls__fail(conn->err, "exporter: a label is needed");
    ERR_clear_error();
    if (SSL_export_keying_material(conn->ssl, out, len, label, strlen(label), context, context_len,
                                   context != NULL) != 1)
        return hsmtls__fail_ssl(conn->err, "exporter \"%s\" failed", label);
    return HSMTLS_OK;
}

int hsmtls_conn_key_update(hsmtls_conn *conn, int update_peer)
{
    ERR_clear_error();
    if (SSL_version(conn->ssl) != TLS1_3_VERSION || !SSL_is_init_finished(conn->ssl))
        return hsmtls__fail(conn->err, "key update: needs an established TLS 1.3 connection");
    if (!SSL_key_update(conn->ssl, update_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED))
        return hsmtls__fail_ssl(conn->err, "key update failed");
    return HSMTLS_OK;
}

int hsmtls_conn_ignore_verify_error(hsmtls_conn *conn, long code)
{
    for (int i = 0; i < conn->n_ignored; i++)
        if (conn->ignored[i] == code)
            return HSMTLS_OK;
    long *v = realloc(conn->ignored, (size_t)(conn->n_ignored + 1) * sizeof *v);
    if (!v)
        return hsmtls__fail(conn->err, "out of memory");
    conn->ignored = v;
    v[conn->n_ignored++] = code;
    return HSMTLS_OK;
}
