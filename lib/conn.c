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

void hsmtls__conn_adopt(hsmtls_conn *conn, hsmtls_config *cfg)
{
    hsmtls_config_up_ref(cfg);
    conn->cfg = cfg;
    conn->role = cfg->role;
    conn->effective_verify = hsmtls__config_effective_verify(cfg);
    conn->check_hostname = cfg->verify.check_hostname && cfg->role == HSMTLS_CLIENT;
    conn->interrupt_on_verify = cfg->verify.interrupt && cfg->role == HSMTLS_CLIENT;
    conn->alpn_listed = cfg->ext.alpn_wire != NULL;
    conn->cb = cfg->cb;
    conn->cb.psk_hint = NULL; /* the config's to free */
}

hsmtls_conn *hsmtls_conn_new(hsmtls_config *cfg)
{
    if (!cfg) {
        hsmtls__err_set(NULL, "hsmtls_conn_new: no config");
        return NULL;
    }
    hsmtls_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        hsmtls__err_set(NULL, "out of memory");
        return NULL;
    }
    SSL_CTX *ctx = hsmtls__config_ctx(cfg, &conn->err);
    if (!ctx || hsmtls__conn_index() < 0) {
        SSL_CTX_free(ctx);
        hsmtls__err_free(&conn->err);
        free(conn);
        return NULL; /* the thread's message says why */
    }
    conn->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!conn->ssl) {
        hsmtls__err_ssl(NULL, "cannot make a connection");
        free(conn);
        return NULL;
    }
    SSL_set_ex_data(conn->ssl, conn_index, conn);
    hsmtls__conn_adopt(conn, cfg);
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
    hsmtls__conn_free_peer_ca(conn);
    free(conn->ignored);
    free(conn->psk_identity);
    free(conn->hostname);
    hsmtls__err_free(&conn->err);
    free(conn);
}

enum hsmtls_role hsmtls_conn_role(const hsmtls_conn *conn) { return conn->role; }
const char *hsmtls_conn_error_message(const hsmtls_conn *conn) { return conn ? hsmtls__err_message(&conn->err) : hsmtls_error_message(); }

int hsmtls_conn_set_fd(hsmtls_conn *conn, int fd)
{
    if (conn->mode != MODE_NONE)
        return hsmtls__err_set(&conn->err, "the connection already has its I/O");
    ERR_clear_error();
    if (fd < 0 || !SSL_set_fd(conn->ssl, fd))
        return hsmtls__err_ssl(&conn->err, "cannot use fd %d", fd);
    conn->mode = MODE_FD;
    return HSMTLS_OK;
}

int hsmtls_conn_use_memory(hsmtls_conn *conn)
{
    if (conn->mode != MODE_NONE)
        return hsmtls__err_set(&conn->err, "the connection already has its I/O");
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!in || !out) {
        BIO_free(in);
        BIO_free(out);
        return hsmtls__err_ssl(&conn->err, "out of memory");
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
        return hsmtls__err_set(&conn->err, "hsmtls_conn_feed: the connection is not in memory mode");
    if (len > INT_MAX)
        len = INT_MAX;
    if (len == 0)
        return 0;
    int n = BIO_write(conn->in, data, (int)len);
    return n > 0 ? n : hsmtls__err_ssl(&conn->err, "hsmtls_conn_feed: out of memory");
}

int hsmtls_conn_feed_eof(hsmtls_conn *conn)
{
    if (conn->mode != MODE_MEMORY)
        return hsmtls__err_set(&conn->err, "hsmtls_conn_feed_eof: the connection is not in memory mode");
    BIO_set_mem_eof_return(conn->in, 0);
    return HSMTLS_OK;
}

int hsmtls_conn_take(hsmtls_conn *conn, void *buf, size_t size)
{
    if (conn->mode != MODE_MEMORY)
        return hsmtls__err_set(&conn->err, "hsmtls_conn_take: the connection is not in memory mode");
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
        return hsmtls__err_set(&conn->err, "hsmtls_conn_set_hostname: only for clients");
    if (!name || !*name)
        return hsmtls__err_set(&conn->err, "hsmtls_conn_set_hostname: empty name");
    char *copy = strdup(name);
    if (!copy)
        return hsmtls__err_set(&conn->err, "out of memory");
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
        return hsmtls__err_set(&conn->err, "host name \"%s\" rejected", hsmtls__short(name).s);
    }
    free(conn->hostname);
    conn->hostname = copy;
    return HSMTLS_OK;
}

int hsmtls_conn_set_session(hsmtls_conn *conn, hsmtls_session *sess)
{
    if (conn->role != HSMTLS_CLIENT)
        return hsmtls__err_set(&conn->err, "hsmtls_conn_set_session: only for clients");
    ERR_clear_error();
    if (!SSL_set_session(conn->ssl, (SSL_SESSION *)sess))
        return hsmtls__err_ssl(&conn->err, "session rejected");
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
        return hsmtls__err_set(&conn->err, "the connection has no fd, memory buffers or I/O callbacks yet");
    if (conn->check_hostname && !conn->hostname && !SSL_is_init_finished(conn->ssl) &&
        conn->effective_verify != HSMTLS_VERIFY_NONE)
        return hsmtls__err_set(&conn->err, "host name checking is on but no host name was set "
                            "(hsmtls_conn_set_hostname, or turn the checks off)");
    return HSMTLS_OK;
}

int hsmtls__conn_result(hsmtls_conn *conn, int r, const char *what, const char *link, struct hsmtls_err *e)
{
    int err = SSL_get_error(conn->ssl, r), sys = errno;
    unsigned long queued = ERR_peek_error();
    int st = hsmtls__status_of(err, queued, sys);
    switch (st) {
    case HSMTLS_WANT_READ:
    case HSMTLS_WANT_WRITE:
        return st;
    case HSMTLS_WANT_VERIFY:
        return hsmtls__err_status(e, st, "%s: paused on %d verification error(s)", what, conn->n_verrs);
    case HSMTLS_CLOSED:
        return hsmtls__err_status(e, st, "%s: the peer closed the %s without close_notify", what, link);
    default:
        break;
    }
    if (err == SSL_ERROR_ZERO_RETURN)
        return hsmtls__err_set(e, "%s: the peer closed the %s", what, link);
    if (err == SSL_ERROR_SYSCALL && queued == 0)
        return hsmtls__err_set(e, "%s: %s", what, strerror(sys));
    hsmtls__err_ssl(e, "%s failed", what);
    /* The verification errors, each with its certificate, say more than OpenSSL's
     * "certificate verify failed" alone. */
    long vr = SSL_get_verify_result(conn->ssl);
    if (vr != X509_V_OK && !SSL_is_init_finished(conn->ssl)) {
        hsmtls__err_append(e, " (");
        for (int i = 0; i < conn->n_verrs; i++)
            hsmtls__err_append(e, "%s%s", i ? "; " : "", conn->verrs[i].message);
        hsmtls__err_append(e, "%s)", conn->n_verrs ? "" : X509_verify_cert_error_string(vr));
    }
    return HSMTLS_ERROR;
}

static int status(hsmtls_conn *conn, int r, const char *what)
{
    return hsmtls__conn_result(conn, r, what, "connection", &conn->err);
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
        return hsmtls__err_set(&conn->err, "shutdown: the handshake is not done");
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
        return hsmtls__err_set(&conn->err, "exporter: the handshake is not done");
    if (!label)
        return hsmtls__err_set(&conn->err, "exporter: a label is needed");
    ERR_clear_error();
    if (SSL_export_keying_material(conn->ssl, out, len, label, strlen(label), context, context_len,
                                   context != NULL) != 1)
        return hsmtls__err_ssl(&conn->err, "exporter \"%s\" failed", hsmtls__short(label).s);
    return HSMTLS_OK;
}

int hsmtls_conn_key_update(hsmtls_conn *conn, int update_peer)
{
    ERR_clear_error();
    if (SSL_version(conn->ssl) != TLS1_3_VERSION || !SSL_is_init_finished(conn->ssl))
        return hsmtls__err_set(&conn->err, "key update: needs an established TLS 1.3 connection");
    if (!SSL_key_update(conn->ssl, update_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED))
        return hsmtls__err_ssl(&conn->err, "key update failed");
    return HSMTLS_OK;
}
