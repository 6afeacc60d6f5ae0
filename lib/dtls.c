/* hsmtls_dtls: one DTLS association over OpenSSL's DTLS state machine.
 *
 * The context is the config's DTLS one (dtls_ctx.c). The association embeds a
 * hsmtls_conn for the SSL, so verification recording, ignore-and-resume and every
 * getter are hsmtls_conn's. A server with cookie verification on enters through
 * DTLSv1_listen() on its first datagram, which checks the cookie (the verifier's HMAC)
 * and sets the sequence numbers a ClientHello with a cookie needs. The peer's address
 * is dtls_peer.c's, the retransmission timer dtls_timer.c's. */
#include "dtls_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

hsmtls_dtls *hsmtls_dtls_new(hsmtls_config *cfg)
{
    if (!cfg) {
        hsmtls__err_set(NULL, "hsmtls_dtls_new: no config");
        return NULL;
    }
    const struct hsmtls_cookie_params *defp = hsmtls__cookie_default();
    hsmtls_dtls *d = calloc(1, sizeof *d);
    hsmtls_conn *c = calloc(1, sizeof *c);
    if (!d || !c || hsmtls__dtls_index() < 0 || hsmtls__conn_index() < 0 || !defp) {
        free(d);
        free(c);
        hsmtls__err_set(NULL, "hsmtls_dtls_new: out of memory");
        return NULL;
    }
    SSL_CTX *ctx = hsmtls__dtls_ctx(cfg, &d->err);
    if (!ctx) {
        hsmtls__err_free(&d->err);
        free(d);
        free(c);
        return NULL; /* the thread's message says why */
    }
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    d->bio = c->ssl ? hsmtls__dgram_bio_new() : NULL;
    if (!d->bio) {
        hsmtls__err_ssl(NULL, "cannot make a DTLS association");
        SSL_free(c->ssl);
        hsmtls__err_free(&d->err);
        free(d);
        free(c);
        return NULL;
    }
    SSL_set_bio(c->ssl, d->bio, d->bio);
    SSL_set_ex_data(c->ssl, hsmtls__conn_index(), c);
    SSL_set_ex_data(c->ssl, hsmtls__dtls_index(), d);
    /* SNI switching: the config's callback picks a config, whose DTLS context the
     * association moves to (config_callbacks.c asks hsmtls__dtls_ctx for it) */
    hsmtls__conn_adopt(c, cfg);
    c->mode = MODE_CALLBACKS; /* the I/O is ours */
    d->conn = c;
    d->role = cfg->role;
    d->cookie = cfg->role == HSMTLS_SERVER && !cfg->dtls.cookie_off;
    d->cookie_params = *defp;
    SSL_set_options(c->ssl, SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(c->ssl, 1400);
    hsmtls__dtls_timer_init(d, cfg);
    if (d->role == HSMTLS_SERVER)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    return d;
}

void hsmtls_dtls_free(hsmtls_dtls *d)
{
    if (!d)
        return;
    hsmtls_conn_free(d->conn); /* frees the SSL and with it the BIO */
    free(d->verify_name);
    hsmtls__err_free(&d->err);
    OPENSSL_cleanse(&d->cookie_params, sizeof d->cookie_params);
    free(d);
}

enum hsmtls_role hsmtls_dtls_role(const hsmtls_dtls *d) { return d->role; }
const char *hsmtls_dtls_error_message(const hsmtls_dtls *d) { return d ? hsmtls__err_message(&d->err) : hsmtls_error_message(); }
hsmtls_conn *hsmtls_dtls_conn(hsmtls_dtls *d) { return d->conn; }
enum hsmtls_dtls_state hsmtls_dtls_state(const hsmtls_dtls *d) { return d->state; }
unsigned hsmtls_dtls_mtu_hint(const hsmtls_dtls *d) { return d->mtu ? d->mtu : 1400; }

const char *hsmtls_dtls_state_name(enum hsmtls_dtls_state s)
{
    static const char *names[] = { "not started", "in progress", "peer verification failed", "complete", "failed",
                                   "closed" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

int hsmtls__dtls_not_started(hsmtls_dtls *d, const char *what)
{
    if (d->state != HSMTLS_DTLS_NOT_STARTED)
        return hsmtls__err_set(&d->err, "%s: only before the handshake", what);
    return HSMTLS_OK;
}

int hsmtls_dtls_set_mtu_hint(hsmtls_dtls *d, unsigned mtu)
{
    if (hsmtls__dtls_not_started(d, "hsmtls_dtls_set_mtu_hint") != HSMTLS_OK)
        return HSMTLS_ERROR;
    unsigned m = mtu ? mtu : 1400;
    if (m < 256 || m > HSMTLS_DTLS_MAX_DATAGRAM)
        return hsmtls__err_set(&d->err, "MTU hint %u: between 256 and %d", mtu, HSMTLS_DTLS_MAX_DATAGRAM);
    ERR_clear_error();
    if (!SSL_set_mtu(d->conn->ssl, m))
        return hsmtls__err_ssl(&d->err, "MTU hint %u rejected", m);
    d->mtu = m;
    return HSMTLS_OK;
}

int hsmtls_dtls_set_fd(hsmtls_dtls *d, int fd)
{
    if (fd < 0)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_fd: bad fd");
    hsmtls__dgram_bio_set_fd(d->bio, fd);
    return HSMTLS_OK;
}

int hsmtls_dtls_take(hsmtls_dtls *d, void *buf, size_t size)
{
    int n = hsmtls__dgram_bio_take(d->bio, buf, size);
    if (n < 0)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_take: the datagram needs %zu bytes",
                            hsmtls__dgram_bio_next_size(d->bio));
    return n;
}

size_t hsmtls_dtls_next_datagram_size(const hsmtls_dtls *d) { return hsmtls__dgram_bio_next_size(d->bio); }
size_t hsmtls_dtls_outgoing(const hsmtls_dtls *d) { return hsmtls__dgram_bio_count(d->bio); }

int hsmtls_dtls_use_verifier_secret(hsmtls_dtls *d, const hsmtls_dtls_verifier *v)
{
    if (!v)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_use_verifier_secret: no verifier");
    d->cookie_params = *hsmtls__verifier_params(v);
    return HSMTLS_OK;
}

int hsmtls__dtls_usable(hsmtls_dtls *d, const char *what)
{
    if (d->aborted)
        return hsmtls__err_set(&d->err, "%s: the association was aborted", what);
    if (d->state == HSMTLS_DTLS_FAILED)
        return hsmtls__err_set(&d->err, "%s: the association failed earlier", what);
    return HSMTLS_OK;
}

/* An SSL_* result as our status (hsmtls_conn's mapping; a datagram is always
 * writable, so every wait is for the peer); fatal ones end the association. */
static int status(hsmtls_dtls *d, int r, const char *what)
{
    int zero = SSL_get_error(d->conn->ssl, r) == SSL_ERROR_ZERO_RETURN;
    int st = hsmtls__conn_result(d->conn, r, what, "association", &d->err);
    switch (st) {
    case HSMTLS_WANT_READ:
    case HSMTLS_WANT_WRITE:
        return HSMTLS_WANT_READ;
    case HSMTLS_WANT_VERIFY:
        d->state = HSMTLS_DTLS_PEER_VERIFICATION_FAILED;
        return st;
    default:
        d->state = zero ? HSMTLS_DTLS_CLOSED : HSMTLS_DTLS_FAILED;
        return HSMTLS_ERROR;
    }
}

int hsmtls_dtls_handshake(hsmtls_dtls *d, const void *dgram, size_t len)
{
    if (hsmtls__dtls_usable(d, "DTLS handshake") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->state == HSMTLS_DTLS_CLOSED)
        return hsmtls__err_set(&d->err, "DTLS handshake: the association is closed");
    hsmtls_conn *c = d->conn;
    if (d->state == HSMTLS_DTLS_COMPLETE) {
        if (dgram && len) { /* a late retransmission: answered by the record layer */
            unsigned char sink[512];
            hsmtls_dtls_read(d, dgram, len, sink, sizeof sink);
        }
        return HSMTLS_OK;
    }
    if (d->role == HSMTLS_SERVER && d->state == HSMTLS_DTLS_NOT_STARTED && (!dgram || !len))
        return hsmtls__err_set(&d->err, "DTLS handshake: a server starts with the client's ClientHello");
    if (c->check_hostname && !c->hostname && c->effective_verify != HSMTLS_VERIFY_NONE)
        return hsmtls__err_set(&d->err, "DTLS handshake: host name checking is on but no peer or verification name "
                                    "was set (hsmtls_dtls_set_peer, or turn the checks off)");
    if (dgram && len && hsmtls__dgram_bio_push(d->bio, dgram, len) != 0)
        return hsmtls__err_set(&d->err, "out of memory");
    ERR_clear_error();
    if (d->cookie && !d->listened) {
        if (!d->peer_len) {
            hsmtls__dgram_bio_clear_in(d->bio);
            return hsmtls__err_set(&d->err, "DTLS handshake: cookie verification needs the peer's address "
                                        "(hsmtls_dtls_set_peer)");
        }
        BIO_ADDR *client = BIO_ADDR_new();
        int r = client ? DTLSv1_listen(c->ssl, client) : -1;
        BIO_ADDR_free(client);
        hsmtls__dgram_bio_clear_in(d->bio);
        if (r == 0)
            return HSMTLS_WANT_READ; /* no valid cookie: a HelloVerifyRequest went out */
        if (r < 0)
            return hsmtls__err_ssl(&d->err, "DTLS handshake: the ClientHello was refused");
        d->listened = 1;
    }
    d->state = HSMTLS_DTLS_IN_PROGRESS;
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    hsmtls__dgram_bio_clear_in(d->bio);
    if (r == 1) {
        d->state = HSMTLS_DTLS_COMPLETE;
        return HSMTLS_OK;
    }
    return status(d, r, "DTLS handshake");
}

int hsmtls_dtls_ignore_verify_error(hsmtls_dtls *d, long code)
{
    if (hsmtls_conn_ignore_verify_error(d->conn, code) != HSMTLS_OK)
        return hsmtls__err_set(&d->err, "%s", hsmtls_conn_error_message(d->conn));
    return HSMTLS_OK;
}

int hsmtls_dtls_resume_handshake(hsmtls_dtls *d)
{
    if (d->state != HSMTLS_DTLS_PEER_VERIFICATION_FAILED)
        return hsmtls__err_set(&d->err, "resume: the handshake is not paused on verification errors");
    d->state = HSMTLS_DTLS_IN_PROGRESS;
    return hsmtls_dtls_handshake(d, NULL, 0);
}

int hsmtls_dtls_write(hsmtls_dtls *d, const void *data, size_t len)
{
    if (hsmtls__dtls_usable(d, "DTLS write") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->state != HSMTLS_DTLS_COMPLETE)
        return hsmtls__err_set(&d->err, "DTLS write: the handshake is not complete");
    if (len == 0 || len > 16384)
        return hsmtls__err_set(&d->err, "DTLS write: %zu bytes (1 to 16384 in one datagram)", len);
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(d->conn->ssl, data, (int)len);
    if (r > 0)
        return r;
    int s = status(d, r, "DTLS write");
    return s == HSMTLS_WANT_READ ? hsmtls__err_set(&d->err, "DTLS write: the datagram could not be sent") : s;
}

int hsmtls_dtls_read(hsmtls_dtls *d, const void *dgram, size_t len, void *buf, size_t size)
{
    if (hsmtls__dtls_usable(d, "DTLS read") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->state == HSMTLS_DTLS_CLOSED)
        return 0;
    if (d->state != HSMTLS_DTLS_COMPLETE) {
        int r = hsmtls_dtls_handshake(d, dgram, len);
        return r == HSMTLS_WANT_READ || r == HSMTLS_OK ? 0 : r;
    }
    if (size == 0)
        return 0;
    if (size > INT_MAX)
        size = INT_MAX;
    if (dgram && len && hsmtls__dgram_bio_push(d->bio, dgram, len) != 0)
        return hsmtls__err_set(&d->err, "out of memory");
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(d->conn->ssl, buf, (int)size);
    hsmtls__dgram_bio_clear_in(d->bio);
    if (r > 0)
        return r;
    if (SSL_get_error(d->conn->ssl, r) == SSL_ERROR_ZERO_RETURN) {
        d->state = HSMTLS_DTLS_CLOSED;
        return 0;
    }
    int s = status(d, r, "DTLS read");
    return s == HSMTLS_WANT_READ ? 0 : s;
}

int hsmtls_dtls_shutdown(hsmtls_dtls *d)
{
    if (d->aborted)
        return hsmtls__err_set(&d->err, "shutdown: the association was aborted");
    if (d->state != HSMTLS_DTLS_COMPLETE && d->state != HSMTLS_DTLS_CLOSED)
        return hsmtls__err_set(&d->err, "shutdown: the handshake is not complete");
    if (d->conn->shutdown_sent)
        return HSMTLS_OK;
    ERR_clear_error();
    int r = SSL_shutdown(d->conn->ssl);
    if (r < 0)
        return hsmtls__err_ssl(&d->err, "shutdown failed");
    d->conn->shutdown_sent = 1;
    return HSMTLS_OK;
}

int hsmtls_dtls_abort(hsmtls_dtls *d)
{
    d->aborted = 1;
    hsmtls__dgram_bio_mute(d->bio);
    SSL_set_quiet_shutdown(d->conn->ssl, 1);
    d->state = HSMTLS_DTLS_CLOSED;
    return HSMTLS_OK;
}

const char *hsmtls_dtls_version(const hsmtls_dtls *d)
{
    return d->state == HSMTLS_DTLS_COMPLETE || d->state == HSMTLS_DTLS_CLOSED ? SSL_get_version(d->conn->ssl) : NULL;
}

int hsmtls_dtls_version_number(const hsmtls_dtls *d)
{
    return hsmtls_dtls_version(d) ? SSL_version(d->conn->ssl) : 0;
}

const char *hsmtls_dtls_cipher(const hsmtls_dtls *d)
{
    return hsmtls_dtls_version(d) ? hsmtls_conn_cipher(d->conn) : NULL;
}

int hsmtls_dtls_cipher_bits(const hsmtls_dtls *d)
{
    return hsmtls_dtls_version(d) ? hsmtls_conn_cipher_bits(d->conn) : 0;
}

const char *hsmtls_dtls_summary(hsmtls_dtls *d) { return hsmtls_conn_summary(d->conn); }

/* ---- resumption: hsmtls_conn's sessions, which are OpenSSL's and carry the version ---- */

hsmtls_session *hsmtls_dtls_session(hsmtls_dtls *d)
{
    return d->state == HSMTLS_DTLS_COMPLETE || d->state == HSMTLS_DTLS_CLOSED ? hsmtls_conn_session(d->conn) : NULL;
}

int hsmtls_dtls_set_session(hsmtls_dtls *d, hsmtls_session *sess)
{
    if (hsmtls__dtls_not_started(d, "hsmtls_dtls_set_session") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->role != HSMTLS_CLIENT)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_session: only for clients");
    if (!sess)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_session: no session");
    /* OpenSSL would quietly start a new session instead of resuming a TLS one */
    int v = hsmtls_session_version(sess);
    if (v != DTLS1_2_VERSION && v != DTLS1_VERSION)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_session: a TLS session (version 0x%04x), not a DTLS one", v);
    if (hsmtls_conn_set_session(d->conn, sess) != HSMTLS_OK)
        return hsmtls__err_set(&d->err, "%s", hsmtls_conn_error_message(d->conn));
    return HSMTLS_OK;
}

int hsmtls_dtls_session_reused(const hsmtls_dtls *d)
{
    return hsmtls_dtls_version(d) ? hsmtls_conn_session_reused(d->conn) : 0;
}
