/* hsmtls_dtls: one DTLS association over OpenSSL's DTLS state machine.
 *
 * The context comes from the config's own build (same keys, CAs, verification, PSK,
 * lists), switched to a DTLS method and cached on the config's built context, so it is
 * dropped with it when a setter changes the config. The association embeds a
 * hsmtls_conn for the SSL, so verification recording, ignore-and-resume and every
 * getter are hsmtls_conn's. A server with cookie verification on enters through
 * DTLSv1_listen() on its first datagram, which checks the cookie (the verifier's HMAC)
 * and sets the sequence numbers a ClientHello with a cookie needs. */
#include "dtls_internal.h"
#include "lib_internal.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

const struct hsmtls_cookie_params *hsmtls__verifier_params(const hsmtls_dtls_verifier *v);

struct hsmtls_dtls {
    hsmtls_conn *conn;
    BIO *bio;
    enum hsmtls_role role;
    enum hsmtls_dtls_state state;
    int cookie;                     /* server: enter through DTLSv1_listen */
    int listened;
    int aborted;
    struct hsmtls_cookie_params cookie_params;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[64];
    char *verify_name;
    unsigned mtu;
    unsigned first_timeout_ms;
    char err[HSMTLS_ERRLEN];
};

static int dtls_index = -1, ctx_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    SSL_CTX_free(ptr);
}

static void make_indexes(void)
{
    dtls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx);
}

static hsmtls_dtls *from_ssl(SSL *ssl) { return SSL_get_ex_data(ssl, dtls_index); }

/* ---- the cookie, as DTLSv1_listen checks it ---- */

static int gen_cookie(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    hsmtls_dtls *d = from_ssl(ssl);
    if (!d || !d->peer_len)
        return 0;
    size_t n = hsmtls__cookie(&d->cookie_params, (struct sockaddr *)&d->peer, d->peer_len, cookie);
    *len = (unsigned int)n;
    return n > 0;
}

static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    unsigned char want[HSMTLS_COOKIE_MAX];
    unsigned int wlen = 0;
    return gen_cookie(ssl, want, &wlen) && wlen == len && CRYPTO_memcmp(want, cookie, len) == 0;
}

/* Retransmission: the first timeout is the association's, doubled up to 60 s. */
static unsigned int timer_cb(SSL *ssl, unsigned int us)
{
    hsmtls_dtls *d = from_ssl(ssl);
    unsigned first = d && d->first_timeout_ms ? d->first_timeout_ms : 1000;
    if (us == 0)
        return first * 1000u;
    return us >= 30000000u ? 60000000u : us * 2;
}

/* The config's values on a DTLS method. */
static int to_dtls(hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    ERR_clear_error();
    /* Deprecated in 3.0 but kept through 3.x; SSL_set_ssl_method() on each SSL would not
     * do: SSL_clear() (DTLSv1_listen calls it) goes back to the context's method. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    int ok = SSL_CTX_set_ssl_version(ctx, cfg->role == HSMTLS_SERVER ? DTLS_server_method() : DTLS_client_method());
#pragma GCC diagnostic pop
    if (!ok)
        return hsmtls__fail_ssl(err, "cannot make a DTLS context");
    /* switching the method resets the cipher list: the config's lists again */
    if (hsmtls__config_apply_lists(cfg, ctx, err) != HSMTLS_OK)
        return HSMTLS_ERROR;
    int min = cfg->allow_legacy && cfg->min_version && cfg->min_version < HSMTLS_TLS1_2 ? DTLS1_VERSION : DTLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, 0))
        return hsmtls__fail_ssl(err, "DTLS protocol range rejected");
    if (cfg->role == HSMTLS_SERVER) {
        SSL_CTX_set_cookie_generate_cb(ctx, gen_cookie);
        SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);
    }
    return HSMTLS_OK;
}

SSL_CTX *hsmtls__dtls_ctx(hsmtls_config *cfg, char *err)
{
    SSL_CTX *tls = hsmtls__config_ctx(cfg, err);
    if (!tls)
        return NULL;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *d = SSL_CTX_get_ex_data(tls, ctx_index);
    if (!d) {
        d = hsmtls__config_build_new(cfg, err);
        if (d && to_dtls(cfg, d, err) != HSMTLS_OK) {
            SSL_CTX_free(d);
            d = NULL;
        }
        if (d)
            SSL_CTX_set_ex_data(tls, ctx_index, d);
    }
    if (d)
        SSL_CTX_up_ref(d);
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(tls);
    return d;
}

SSL_CTX *hsmtls__dtls_ctx_of(SSL_CTX *tls)
{
    pthread_once(&index_once, make_indexes);
    if (ctx_index < 0)
        return NULL;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *d = SSL_CTX_get_ex_data(tls, ctx_index);
    if (d && !SSL_CTX_up_ref(d))
        d = NULL;
    pthread_mutex_unlock(&ctx_lock);
    return d;
}

hsmtls_dtls *hsmtls_dtls_new(hsmtls_config *cfg)
{
    if (!cfg) {
        hsmtls__fail(NULL, "hsmtls_dtls_new: no config");
        return NULL;
    }
    pthread_once(&index_once, make_indexes);
    const struct hsmtls_cookie_params *defp = hsmtls__cookie_default();
    hsmtls_dtls *d = calloc(1, sizeof *d);
    hsmtls_conn *c = calloc(1, sizeof *c);
    if (!d || !c || dtls_index < 0 || ctx_index < 0 || hsmtls__conn_index() < 0 || !defp) {
        free(d);
        free(c);
        hsmtls__fail(NULL, "hsmtls_dtls_new: out of memory");
        return NULL;
    }
    SSL_CTX *ctx = hsmtls__dtls_ctx(cfg, d->err);
    if (!ctx) {
        free(d);
        free(c);
        return NULL; /* the thread's message says why */
    }
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    d->bio = c->ssl ? hsmtls__dgram_bio_new() : NULL;
    if (!d->bio) {
        hsmtls__fail_ssl(NULL, "cannot make a DTLS association");
        SSL_free(c->ssl);
        free(d);
        free(c);
        return NULL;
    }
    SSL_set_bio(c->ssl, d->bio, d->bio);
    SSL_set_ex_data(c->ssl, hsmtls__conn_index(), c);
    SSL_set_ex_data(c->ssl, dtls_index, d);
    hsmtls_config_up_ref(cfg);
    c->cfg = cfg;
    c->role = cfg->role;
    c->mode = MODE_CALLBACKS; /* the I/O is ours */
    c->effective_verify = hsmtls__config_effective_verify(cfg);
    c->check_hostname = cfg->check_hostname && cfg->role == HSMTLS_CLIENT;
    c->alpn_listed = cfg->alpn_wire != NULL;
    c->keylog = cfg->keylog;
    c->keylog_arg = cfg->keylog_arg;
    c->interrupt_on_verify = cfg->interrupt_on_verify && cfg->role == HSMTLS_CLIENT;
    c->psk_client = cfg->psk_client;
    c->psk_server = cfg->psk_server;
    c->psk_arg = cfg->psk_arg;
    /* SNI switching: the config's callback picks a config, whose DTLS context the
     * association moves to (config_build.c asks hsmtls__dtls_ctx for it) */
    c->sni = cfg->sni;
    c->sni_arg = cfg->sni_arg;
    d->conn = c;
    d->role = cfg->role;
    d->cookie = cfg->role == HSMTLS_SERVER && !cfg->dtls_cookie_off;
    d->cookie_params = *defp;
    d->first_timeout_ms = 1000;
    SSL_set_options(c->ssl, SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(c->ssl, 1400);
    DTLS_set_timer_cb(c->ssl, timer_cb);
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
    OPENSSL_cleanse(&d->cookie_params, sizeof d->cookie_params);
    free(d);
}

enum hsmtls_role hsmtls_dtls_role(const hsmtls_dtls *d) { return d->role; }
const char *hsmtls_dtls_error_message(const hsmtls_dtls *d) { return d ? d->err : hsmtls_error_message(); }
hsmtls_conn *hsmtls_dtls_conn(hsmtls_dtls *d) { return d->conn; }
enum hsmtls_dtls_state hsmtls_dtls_state(const hsmtls_dtls *d) { return d->state; }
const char *hsmtls_dtls_peer(const hsmtls_dtls *d) { return d->peer_text; }
const char *hsmtls_dtls_verify_name(const hsmtls_dtls *d) { return d->verify_name; }
unsigned hsmtls_dtls_mtu_hint(const hsmtls_dtls *d) { return d->mtu ? d->mtu : 1400; }

const char *hsmtls_dtls_state_name(enum hsmtls_dtls_state s)
{
    static const char *names[] = { "not started", "in progress", "peer verification failed", "complete", "failed",
                                   "closed" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int started(hsmtls_dtls *d, const char *what)
{
    if (d->state != HSMTLS_DTLS_NOT_STARTED)
        return hsmtls__fail(d->err, "%s: only before the handshake", what);
    return HSMTLS_OK;
}

/* Unspecified, multicast and broadcast addresses are no DTLS peers. */
static const char *bad_v4(uint32_t v)
{
    if (v == 0)
        return "the unspecified address";
    if ((v >> 28) == 0xE)
        return "a multicast address";
    if (v == 0xFFFFFFFFu)
        return "the broadcast address";
    return NULL;
}

static const char *bad_address(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET) {
        struct sockaddr_in v4;
        memcpy(&v4, a, sizeof v4);
        return bad_v4(ntohl(v4.sin_addr.s_addr));
    }
    struct sockaddr_in6 v6;
    memcpy(&v6, a, sizeof v6);
    const unsigned char *x = v6.sin6_addr.s6_addr;
    static const unsigned char zero[16], mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
    if (memcmp(x, zero, 16) == 0)
        return "the unspecified address";
    if (x[0] == 0xFF)
        return "a multicast address";
    if (memcmp(x, mapped, 12) == 0)
        return bad_v4((uint32_t)x[12] << 24 | (uint32_t)x[13] << 16 | (uint32_t)x[14] << 8 | x[15]);
    return NULL;
}

int hsmtls_dtls_set_peer(hsmtls_dtls *d, const struct sockaddr *addr, socklen_t len, const char *verify_name)
{
    if (started(d, "hsmtls_dtls_set_peer") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (!addr || !((addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
                   (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))))
        return hsmtls__fail(d->err, "hsmtls_dtls_set_peer: an IPv4 or IPv6 address is needed");
    const char *bad = bad_address(addr);
    if (bad)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_peer: %s cannot be a DTLS peer", bad);
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        len = sizeof *a;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        len = sizeof *a;
    }
    if (port == 0)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_peer: port 0");
    const char *name = verify_name && *verify_name ? verify_name : host;
    if (d->role == HSMTLS_CLIENT && hsmtls_conn_set_hostname(d->conn, name) != HSMTLS_OK)
        return hsmtls__fail(d->err, "%s", hsmtls_conn_error_message(d->conn));
    char *copy = strdup(name);
    if (!copy)
        return hsmtls__fail(d->err, "out of memory");
    free(d->verify_name);
    d->verify_name = copy;
    memcpy(&d->peer, addr, len);
    d->peer_len = len;
    snprintf(d->peer_text, sizeof d->peer_text, addr->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
    hsmtls__dgram_bio_set_peer(d->bio, addr, len);
    return HSMTLS_OK;
}

int hsmtls_dtls_set_peer_address(hsmtls_dtls *d, const char *address, unsigned port, const char *verify_name)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (port > 65535 || !address)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_peer_address: bad address or port");
    if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return hsmtls_dtls_set_peer(d, (struct sockaddr *)a4, sizeof *a4, verify_name);
    }
    if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return hsmtls_dtls_set_peer(d, (struct sockaddr *)a6, sizeof *a6, verify_name);
    }
    return hsmtls__fail(d->err, "hsmtls_dtls_set_peer_address: \"%s\" is not an IP address", address);
}

int hsmtls_dtls_set_mtu_hint(hsmtls_dtls *d, unsigned mtu)
{
    if (started(d, "hsmtls_dtls_set_mtu_hint") != HSMTLS_OK)
        return HSMTLS_ERROR;
    unsigned m = mtu ? mtu : 1400;
    if (m < 256 || m > HSMTLS_DTLS_MAX_DATAGRAM)
        return hsmtls__fail(d->err, "MTU hint %u: between 256 and %d", mtu, HSMTLS_DTLS_MAX_DATAGRAM);
    ERR_clear_error();
    if (!SSL_set_mtu(d->conn->ssl, m))
        return hsmtls__fail_ssl(d->err, "MTU hint %u rejected", m);
    d->mtu = m;
    return HSMTLS_OK;
}

int hsmtls_dtls_set_retransmit_timeout(hsmtls_dtls *d, unsigned ms)
{
    if (ms < 10 || ms > 60000)
        return hsmtls__fail(d->err, "retransmission timeout %u ms: between 10 and 60000", ms);
    d->first_timeout_ms = ms;
    return HSMTLS_OK;
}

int hsmtls_dtls_set_fd(hsmtls_dtls *d, int fd)
{
    if (fd < 0)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_fd: bad fd");
    hsmtls__dgram_bio_set_fd(d->bio, fd);
    return HSMTLS_OK;
}

int hsmtls_dtls_take(hsmtls_dtls *d, void *buf, size_t size)
{
    int n = hsmtls__dgram_bio_take(d->bio, buf, size);
    if (n < 0)
        return hsmtls__fail(d->err, "hsmtls_dtls_take: the datagram needs %zu bytes",
                            hsmtls__dgram_bio_next_size(d->bio));
    return n;
}

size_t hsmtls_dtls_next_datagram_size(const hsmtls_dtls *d) { return hsmtls__dgram_bio_next_size(d->bio); }
size_t hsmtls_dtls_outgoing(const hsmtls_dtls *d) { return hsmtls__dgram_bio_count(d->bio); }

int hsmtls_dtls_use_verifier_secret(hsmtls_dtls *d, const hsmtls_dtls_verifier *v)
{
    if (!v)
        return hsmtls__fail(d->err, "hsmtls_dtls_use_verifier_secret: no verifier");
    d->cookie_params = *hsmtls__verifier_params(v);
    return HSMTLS_OK;
}

static int usable(hsmtls_dtls *d, const char *what)
{
    if (d->aborted)
        return hsmtls__fail(d->err, "%s: the association was aborted", what);
    if (d->state == HSMTLS_DTLS_FAILED)
        return hsmtls__fail(d->err, "%s: the association failed earlier", what);
    return HSMTLS_OK;
}

/* An SSL_* result as our status; fatal ones end the association. */
static int status(hsmtls_dtls *d, int r, const char *what)
{
    hsmtls_conn *c = d->conn;
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return HSMTLS_WANT_READ;
    case SSL_ERROR_WANT_RETRY_VERIFY:
        d->state = HSMTLS_DTLS_PEER_VERIFICATION_FAILED;
        hsmtls__fail(d->err, "%s: paused on %d verification error(s)", what, c->n_verrs);
        return HSMTLS_WANT_VERIFY;
    case SSL_ERROR_ZERO_RETURN:
        d->state = HSMTLS_DTLS_CLOSED;
        return hsmtls__fail(d->err, "%s: the peer closed the association", what);
    default:
        break;
    }
    d->state = HSMTLS_DTLS_FAILED;
    hsmtls__fail_ssl(d->err, "%s failed", what);
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK && !SSL_is_init_finished(c->ssl)) {
        size_t u = strlen(d->err);
        u += (size_t)snprintf(d->err + u, sizeof d->err - u, " (");
        for (int i = 0; i < c->n_verrs && u < sizeof d->err; i++)
            u += (size_t)snprintf(d->err + u, sizeof d->err - u, "%s%s", i ? "; " : "", c->verrs[i].message);
        if (!c->n_verrs && u < sizeof d->err)
            u += (size_t)snprintf(d->err + u, sizeof d->err - u, "%s", X509_verify_cert_error_string(vr));
        if (u < sizeof d->err)
            snprintf(d->err + u, sizeof d->err - u, ")");
        hsmtls__set_error(d->err, d->err);
    }
    return HSMTLS_ERROR;
}

int hsmtls_dtls_handshake(hsmtls_dtls *d, const void *dgram, size_t len)
{
    if (usable(d, "DTLS handshake") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->state == HSMTLS_DTLS_CLOSED)
        return hsmtls__fail(d->err, "DTLS handshake: the association is closed");
    hsmtls_conn *c = d->conn;
    if (d->state == HSMTLS_DTLS_COMPLETE) {
        if (dgram && len) { /* a late retransmission: answered by the record layer */
            unsigned char sink[512];
            hsmtls_dtls_read(d, dgram, len, sink, sizeof sink);
        }
        return HSMTLS_OK;
    }
    if (d->role == HSMTLS_SERVER && d->state == HSMTLS_DTLS_NOT_STARTED && (!dgram || !len))
        return hsmtls__fail(d->err, "DTLS handshake: a server starts with the client's ClientHello");
    if (c->check_hostname && !c->hostname && c->effective_verify != HSMTLS_VERIFY_NONE)
        return hsmtls__fail(d->err, "DTLS handshake: host name checking is on but no peer or verification name "
                                    "was set (hsmtls_dtls_set_peer, or turn the checks off)");
    if (dgram && len && hsmtls__dgram_bio_push(d->bio, dgram, len) != 0)
        return hsmtls__fail(d->err, "out of memory");
    ERR_clear_error();
    if (d->cookie && !d->listened) {
        if (!d->peer_len) {
            hsmtls__dgram_bio_clear_in(d->bio);
            return hsmtls__fail(d->err, "DTLS handshake: cookie verification needs the peer's address "
                                        "(hsmtls_dtls_set_peer)");
        }
        BIO_ADDR *client = BIO_ADDR_new();
        int r = client ? DTLSv1_listen(c->ssl, client) : -1;
        BIO_ADDR_free(client);
        hsmtls__dgram_bio_clear_in(d->bio);
        if (r == 0)
            return HSMTLS_WANT_READ; /* no valid cookie: a HelloVerifyRequest went out */
        if (r < 0)
            return hsmtls__fail_ssl(d->err, "DTLS handshake: the ClientHello was refused");
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
        return hsmtls__fail(d->err, "%s", hsmtls_conn_error_message(d->conn));
    return HSMTLS_OK;
}

int hsmtls_dtls_resume_handshake(hsmtls_dtls *d)
{
    if (d->state != HSMTLS_DTLS_PEER_VERIFICATION_FAILED)
        return hsmtls__fail(d->err, "resume: the handshake is not paused on verification errors");
    d->state = HSMTLS_DTLS_IN_PROGRESS;
    return hsmtls_dtls_handshake(d, NULL, 0);
}

long hsmtls_dtls_timeout_ms(const hsmtls_dtls *d)
{
    struct timeval tv;
    if (d->aborted || d->state == HSMTLS_DTLS_FAILED || !DTLSv1_get_timeout(d->conn->ssl, &tv))
        return -1;
    return (long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

int hsmtls_dtls_handle_timeout(hsmtls_dtls *d)
{
    if (usable(d, "handle timeout") != HSMTLS_OK)
        return HSMTLS_ERROR;
    ERR_clear_error();
    int r = (int)DTLSv1_handle_timeout(d->conn->ssl);
    if (r >= 0)
        return r > 0 ? 1 : 0;
    d->state = HSMTLS_DTLS_FAILED;
    return hsmtls__fail_ssl(d->err, "DTLS: the peer did not answer (retransmissions exhausted)");
}

int hsmtls_dtls_write(hsmtls_dtls *d, const void *data, size_t len)
{
    if (usable(d, "DTLS write") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->state != HSMTLS_DTLS_COMPLETE)
        return hsmtls__fail(d->err, "DTLS write: the handshake is not complete");
    if (len == 0 || len > 16384)
        return hsmtls__fail(d->err, "DTLS write: %zu bytes (1 to 16384 in one datagram)", len);
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(d->conn->ssl, data, (int)len);
    if (r > 0)
        return r;
    int s = status(d, r, "DTLS write");
    return s == HSMTLS_WANT_READ ? hsmtls__fail(d->err, "DTLS write: the datagram could not be sent") : s;
}

int hsmtls_dtls_read(hsmtls_dtls *d, const void *dgram, size_t len, void *buf, size_t size)
{
    if (usable(d, "DTLS read") != HSMTLS_OK)
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
        return hsmtls__fail(d->err, "out of memory");
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
        return hsmtls__fail(d->err, "shutdown: the association was aborted");
    if (d->state != HSMTLS_DTLS_COMPLETE && d->state != HSMTLS_DTLS_CLOSED)
        return hsmtls__fail(d->err, "shutdown: the handshake is not complete");
    if (d->conn->shutdown_sent)
        return HSMTLS_OK;
    ERR_clear_error();
    int r = SSL_shutdown(d->conn->ssl);
    if (r < 0)
        return hsmtls__fail_ssl(d->err, "shutdown failed");
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
    if (started(d, "hsmtls_dtls_set_session") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (d->role != HSMTLS_CLIENT)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_session: only for clients");
    if (!sess)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_session: no session");
    /* OpenSSL would quietly start a new session instead of resuming a TLS one */
    int v = hsmtls_session_version(sess);
    if (v != DTLS1_2_VERSION && v != DTLS1_VERSION)
        return hsmtls__fail(d->err, "hsmtls_dtls_set_session: a TLS session (version 0x%04x), not a DTLS one", v);
    if (hsmtls_conn_set_session(d->conn, sess) != HSMTLS_OK)
        return hsmtls__fail(d->err, "%s", hsmtls_conn_error_message(d->conn));
    return HSMTLS_OK;
}

int hsmtls_dtls_session_reused(const hsmtls_dtls *d)
{
    return hsmtls_dtls_version(d) ? hsmtls_conn_session_reused(d->conn) : 0;
}

const char *hsmtls_dtls_server_name(const hsmtls_dtls *d)
{
    return hsmtls_conn_hostname(d->conn);
}

/* The config's DTLS switch (config.h): kept as "off" so a new config has it on. */
int hsmtls_config_set_dtls_cookie_verification(hsmtls_config *cfg, int on)
{
    cfg->dtls_cookie_off = !on;
    return HSMTLS_OK;
}

int hsmtls_config_dtls_cookie_verification(const hsmtls_config *cfg) { return !cfg->dtls_cookie_off; }
