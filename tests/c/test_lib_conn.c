/* libhsmtls connection API tests, both ends in this process: memory-buffer mode pumped
 * by hand, non-blocking sockets driven by poll(), and what a connection reports after
 * its handshake (version, cipher, ALPN, peer, verification errors, resumption).
 * usage: test_lib_conn SANDBOX_DIR CASE  (--list prints the cases) */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509_vfy.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static void pair(hsmtls_config *cc, hsmtls_config *sc, hsmtls_conn **cli, hsmtls_conn **srv, const char *host)
{
    *cli = hsmtls_conn_new(cc);
    *srv = hsmtls_conn_new(sc);
    CHECK_MSG(*cli && *srv, hsmtls_error_message());
    CHECK(hsmtls_conn_use_memory(*cli) == 0 && hsmtls_conn_use_memory(*srv) == 0);
    if (host)
        CHECK(hsmtls_conn_set_hostname(*cli, host) == 0);
}

/* Sends msg one way and reads it on the other side. */
static void exchange(hsmtls_conn *from, hsmtls_conn *to, const char *msg)
{
    char buf[256];
    CHECK(hsmtls_conn_write(from, msg, strlen(msg)) == (int)strlen(msg));
    check_move(from, to);
    int n = hsmtls_conn_read(to, buf, sizeof buf - 1);
    CHECK_MSG(n == (int)strlen(msg), hsmtls_conn_error_message(to));
    if (n > 0) {
        buf[n] = '\0';
        CHECK(strcmp(buf, msg) == 0);
    }
    check_move(to, from); /* TLS 1.3 tickets and the like */
}

static void case_memory(void)
{
    hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
    CHECK(hsmtls_config_set_alpn(sc, "h2,http/1.1") == 0);
    CHECK(hsmtls_config_set_alpn(cc, "http/1.1,h2") == 0);
    hsmtls_conn *cli, *srv;
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(hsmtls_conn_role(cli) == HSMTLS_CLIENT && hsmtls_conn_role(srv) == HSMTLS_SERVER);
    CHECK(hsmtls_conn_version(cli) == NULL && !hsmtls_conn_handshake_done(cli));
    CHECK(hsmtls_conn_alpn_status(cli) == HSMTLS_ALPN_NONE); /* not yet known */
    /* nothing fed yet: the server wants to read */
    CHECK(hsmtls_conn_handshake(srv) == HSMTLS_WANT_READ);
    CHECK(hsmtls_conn_outgoing(cli) == 0);
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_WANT_READ);
    CHECK(hsmtls_conn_outgoing(cli) > 0); /* the ClientHello */
    int rs;
    int rc = check_handshake(cli, srv, &rs);
    CHECK_MSG(rc == 0, hsmtls_conn_error_message(cli));
    CHECK_MSG(rs == 0, hsmtls_conn_error_message(srv));
    CHECK(hsmtls_conn_handshake_done(cli) && hsmtls_conn_handshake_done(srv));
    CHECK(strcmp(hsmtls_conn_version(cli), "TLSv1.3") == 0);
    CHECK(hsmtls_conn_version_number(srv) == HSMTLS_TLS1_3);
    CHECK(check_contains(hsmtls_conn_cipher(cli), "TLS_"));
    CHECK(hsmtls_conn_cipher_bits(cli) >= 128);
    CHECK_MSG(hsmtls_conn_alpn(cli) && strcmp(hsmtls_conn_alpn(cli), "h2") == 0, hsmtls_conn_alpn(cli));
    CHECK(hsmtls_conn_alpn(srv) && strcmp(hsmtls_conn_alpn(srv), "h2") == 0);
    CHECK(hsmtls_conn_alpn_status(cli) == HSMTLS_ALPN_NEGOTIATED && hsmtls_conn_alpn_status(srv) == HSMTLS_ALPN_NEGOTIATED);
    CHECK(check_contains(hsmtls_conn_peer_subject(cli), "OU=ec-p256"));
    CHECK(hsmtls_conn_peer_subject(srv) == NULL);
    CHECK(hsmtls_conn_verify_result(cli) == X509_V_OK && hsmtls_conn_peer_verified(cli));
    CHECK(hsmtls_conn_verify_error_count(cli) == 0);
    CHECK(strcmp(hsmtls_conn_hostname(srv), "localhost") == 0);
    CHECK(!hsmtls_conn_session_reused(cli));
    CHECK(check_contains(hsmtls_conn_summary(cli), "TLSv1.3"));
    CHECK(check_contains(hsmtls_conn_summary(cli), "verified"));

    exchange(cli, srv, "hello server\n");
    exchange(srv, cli, "hello client\n");
    /* pending: part of a record read, the rest waits decrypted */
    CHECK(hsmtls_conn_write(srv, "0123456789", 10) == 10);
    check_move(srv, cli);
    char buf[16];
    CHECK(hsmtls_conn_read(cli, buf, 4) == 4);
    CHECK(hsmtls_conn_pending(cli) == 6);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == 6);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == HSMTLS_WANT_READ);

    /* shutdown: the client half-closes, the server still answers, then closes */
    CHECK(hsmtls_conn_shutdown(cli) == 0);
    CHECK(hsmtls_conn_shutdown_state(cli) == HSMTLS_SHUTDOWN_SENT);
    check_move(cli, srv);
    CHECK(hsmtls_conn_read(srv, buf, sizeof buf) == 0);
    CHECK(hsmtls_conn_shutdown_state(srv) == HSMTLS_SHUTDOWN_RECEIVED);
    CHECK(hsmtls_conn_write(srv, "bye", 3) == 3);
    CHECK(hsmtls_conn_shutdown(srv) == 0);
    check_move(srv, cli);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == 3);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == 0);
    CHECK(hsmtls_conn_shutdown_state(cli) == (HSMTLS_SHUTDOWN_SENT | HSMTLS_SHUTDOWN_RECEIVED));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* garbage from the peer: a clear error, not a hang */
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(hsmtls_conn_handshake(srv) == HSMTLS_WANT_READ);
    CHECK(hsmtls_conn_feed(srv, "GET / HTTP/1.1\r\n\r\n", 18) == 18);
    CHECK(hsmtls_conn_handshake(srv) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(srv), "TLS handshake failed: "), hsmtls_conn_error_message(srv));
    /* a peer that goes away mid-handshake */
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_WANT_READ);
    CHECK(hsmtls_conn_feed_eof(cli) == 0);
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_CLOSED);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "TLS handshake: the peer closed the connection without close_notify"),
              hsmtls_conn_error_message(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* I/O must be chosen first */
    cli = hsmtls_conn_new(cc);
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_conn_error_message(cli), "no fd, memory buffers or I/O callbacks"));
    CHECK(hsmtls_conn_feed(cli, "x", 1) == HSMTLS_ERROR);
    hsmtls_conn_free(cli);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? 0 : -1;
}

/* Waits on both sockets for what their last statuses asked for. */
static void wait_both(int fa, int sa, int fb, int sb)
{
    struct pollfd p[2] = {
        { .fd = sa < 0 ? fa : -1, .events = sa == HSMTLS_WANT_WRITE ? POLLOUT : POLLIN },
        { .fd = sb < 0 ? fb : -1, .events = sb == HSMTLS_WANT_WRITE ? POLLOUT : POLLIN },
    };
    CHECK(poll(p, 2, 5000) > 0);
}

static void case_nonblocking(void)
{
    const char *labels[] = { "rsa2048", "ec-p384", "ed25519" };
    int versions[] = { HSMTLS_TLS1_2, HSMTLS_TLS1_3 };
    for (int li = 0; li < 3; li++) {
        for (int vi = 0; vi < 2; vi++) {
            int sv[2];
            CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
            CHECK(set_nonblocking(sv[0]) == 0 && set_nonblocking(sv[1]) == 0);
            hsmtls_config *sc = check_server_config(labels[li]), *cc = check_client_config();
            CHECK(hsmtls_config_set_protocols(cc, versions[vi], versions[vi]) == 0);
            hsmtls_conn *cli = hsmtls_conn_new(cc), *srv = hsmtls_conn_new(sc);
            CHECK(hsmtls_conn_set_fd(cli, sv[0]) == 0 && hsmtls_conn_set_fd(srv, sv[1]) == 0);
            CHECK(hsmtls_conn_set_fd(cli, sv[0]) == HSMTLS_ERROR);
            CHECK(hsmtls_conn_set_hostname(cli, "localhost") == 0);
            CHECK(hsmtls_conn_set_hostname(srv, "localhost") == HSMTLS_ERROR);
            int rc = 1, rs = 1, wants = 0, rounds = 0;
            while ((rc != 0 || rs != 0) && rounds++ < 100) {
                if (rc != 0)
                    rc = hsmtls_conn_handshake(cli);
                if (rs != 0)
                    rs = hsmtls_conn_handshake(srv);
                if (rc == HSMTLS_ERROR || rs == HSMTLS_ERROR)
                    break;
                wants += rc == HSMTLS_WANT_READ || rs == HSMTLS_WANT_READ;
                if (rc != 0 || rs != 0)
                    wait_both(sv[0], rc, sv[1], rs);
            }
            CHECK_MSG(rc == 0, hsmtls_conn_error_message(cli));
            CHECK_MSG(rs == 0, hsmtls_conn_error_message(srv));
            CHECK(wants > 0);
            CHECK(hsmtls_conn_version_number(cli) == versions[vi]);
            CHECK(hsmtls_conn_peer_verified(cli));
            char subject[64];
            snprintf(subject, sizeof subject, "OU=%s", labels[li]);
            CHECK(check_contains(hsmtls_conn_peer_subject(cli), subject));
            /* data both ways; reading with nothing there is WANT_READ, not a block */
            char buf[64];
            CHECK(hsmtls_conn_read(srv, buf, sizeof buf) == HSMTLS_WANT_READ);
            CHECK(hsmtls_conn_write(cli, "ping\n", 5) == 5);
            int n = HSMTLS_WANT_READ;
            for (int i = 0; i < 100 && n == HSMTLS_WANT_READ; i++) {
                n = hsmtls_conn_read(srv, buf, sizeof buf);
                if (n == HSMTLS_WANT_READ)
                    wait_both(sv[1], n, -1, 0);
            }
            CHECK(n == 5 && memcmp(buf, "ping\n", 5) == 0);
            /* a large write fills the socket: WANT_WRITE until the peer reads */
            size_t big = 4 << 20;
            char *data = calloc(1, big), *sink = malloc(65536);
            size_t sent = 0, got = 0;
            int saw_want_write = 0;
            for (int i = 0; i < 100000 && got < big; i++) {
                if (sent < big) {
                    int w = hsmtls_conn_write(cli, data + sent, big - sent);
                    if (w > 0)
                        sent += (size_t)w;
                    else if (w == HSMTLS_WANT_WRITE)
                        saw_want_write = 1;
                    else
                        CHECK_MSG(w == HSMTLS_WANT_READ, hsmtls_conn_error_message(cli));
                }
                int r = hsmtls_conn_read(srv, sink, 65536);
                if (r > 0)
                    got += (size_t)r;
                else
                    CHECK_MSG(r == HSMTLS_WANT_READ, hsmtls_conn_error_message(srv));
            }
            CHECK(sent == big && got == big);
            CHECK(saw_want_write);
            free(data);
            free(sink);
            hsmtls_conn_free(cli);
            hsmtls_conn_free(srv);
            hsmtls_config_free(sc);
            hsmtls_config_free(cc);
            close(sv[0]);
            close(sv[1]);
        }
    }
}

static int has_error(hsmtls_conn *c, long code)
{
    for (int i = 0; i < hsmtls_conn_verify_error_count(c); i++) {
        long got;
        int depth;
        const char *msg = hsmtls_conn_verify_error(c, i, &got, &depth);
        if (got == code && msg)
            return 1;
    }
    return 0;
}

static void case_verify(void)
{
    hsmtls_config *sc = check_server_config("rsa2048"), *cc = check_client_config();
    hsmtls_conn *cli, *srv;
    int rs;

    /* hostname mismatch: refused in VERIFY mode, with the reason */
    pair(cc, sc, &cli, &srv, "www.example.com");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "hostname mismatch"), hsmtls_conn_error_message(cli));
    CHECK(has_error(cli, X509_V_ERR_HOSTNAME_MISMATCH));
    CHECK(hsmtls_conn_verify_result(cli) == X509_V_ERR_HOSTNAME_MISMATCH);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* an IP address is checked against IP SANs */
    pair(cc, sc, &cli, &srv, "127.0.0.1");
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    pair(cc, sc, &cli, &srv, "10.1.2.3");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    CHECK(has_error(cli, X509_V_ERR_IP_ADDRESS_MISMATCH));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* QUERY: the handshake goes on, the errors are listed */
    hsmtls_config *q = hsmtls_config_new(HSMTLS_CLIENT); /* no CA: untrusted */
    CHECK(hsmtls_config_add_ca(q, check_path("certs/ed25519.pem")) == 0); /* some unrelated trust */
    CHECK(hsmtls_config_set_verify_mode(q, HSMTLS_VERIFY_QUERY) == 0);
    pair(q, sc, &cli, &srv, "wrong.example");
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
    CHECK(!hsmtls_conn_peer_verified(cli));
    CHECK(has_error(cli, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
    CHECK(has_error(cli, X509_V_ERR_HOSTNAME_MISMATCH));
    long code;
    int depth;
    const char *m = hsmtls_conn_verify_error(cli, 0, &code, &depth);
    CHECK(m && depth == 0 && check_contains(m, "depth 0 (") && check_contains(m, "OU=rsa2048"));
    CHECK(hsmtls_conn_verify_error_cert(cli, 0) &&
          check_contains(hsmtls_cert_subject(hsmtls_conn_verify_error_cert(cli, 0)), "OU=rsa2048"));
    CHECK(hsmtls_conn_verify_error_cert(cli, 99) == NULL);
    CHECK(hsmtls_conn_peer_chain_count(cli) == 1 && hsmtls_conn_verified_chain_count(cli) == 0);
    CHECK(hsmtls_conn_verify_error(cli, 99, NULL, NULL) == NULL);
    CHECK(check_contains(hsmtls_conn_summary(cli), "NOT verified"));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* NONE: nothing checked, nothing refused; what is wrong is still recorded */
    hsmtls_config *none = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(hsmtls_config_set_verify_mode(none, HSMTLS_VERIFY_NONE) == 0);
    CHECK(hsmtls_config_add_ca(none, check_path("certs/ed25519.pem")) == 0);
    pair(none, sc, &cli, &srv, NULL); /* no host name needed when nothing is checked */
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
    CHECK(!hsmtls_conn_peer_verified(cli) && hsmtls_conn_verify_error_count(cli) > 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(none);

    /* untrusted in VERIFY mode */
    hsmtls_config *u = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(hsmtls_config_add_ca(u, check_path("certs/ed25519.pem")) == 0);
    pair(u, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "unable to get local issuer certificate"),
              hsmtls_conn_error_message(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* host name checks on but no name: refused before anything is sent */
    cli = hsmtls_conn_new(cc);
    hsmtls_conn_use_memory(cli);
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_conn_error_message(cli), "no host name was set"));
    hsmtls_conn_free(cli);

    /* mutual TLS: required client certificate, missing then present; the server sends
     * its chain, the client only its leaf */
    hsmtls_config *ms = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(hsmtls_config_set_cert_key(ms, check_path("certs/ec-p256.chain.pem"), check_path("soft/ec-p256.key")) == 0);
    hsmtls_cert *ca = hsmtls_cert_load(check_path("ca.pem"));
    CHECK(hsmtls_config_add_ca_cert(ms, ca) == 0);
    CHECK(hsmtls_config_set_verify_mode(ms, HSMTLS_VERIFY_PEER) == 0);
    pair(cc, ms, &cli, &srv, "localhost");
    check_handshake(cli, srv, &rs);
    CHECK(rs == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(srv), "certificate"), hsmtls_conn_error_message(srv));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config *mc = check_client_config();
    CHECK(hsmtls_config_set_cert_key(mc, check_path("certs/client-p256.pem"), check_path("soft/client-p256.key")) == 0);
    pair(mc, ms, &cli, &srv, "localhost");
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
    CHECK_MSG(rs == 0, hsmtls_conn_error_message(srv));
    exchange(cli, srv, "x"); /* TLS 1.3: the server checks the client's Finished late */
    CHECK(check_contains(hsmtls_conn_peer_subject(srv), "CN=client-p256"));
    CHECK(hsmtls_conn_peer_verified(srv));
    CHECK(hsmtls_conn_peer_chain_count(cli) == 2);
    CHECK(check_contains(hsmtls_cert_subject(hsmtls_conn_peer_chain_cert(cli, 0)), "OU=ec-p256"));
    CHECK(hsmtls_cert_equal(hsmtls_conn_peer_chain_cert(cli, 1), ca));
    CHECK(hsmtls_conn_peer_chain_cert(cli, 2) == NULL);
    CHECK(hsmtls_conn_verified_chain_count(cli) == 2);
    CHECK(hsmtls_cert_equal(hsmtls_conn_verified_chain_cert(cli, 1), ca));
    CHECK(hsmtls_conn_peer_chain_count(srv) == 1);
    CHECK(check_contains(hsmtls_cert_subject(hsmtls_conn_peer_chain_cert(srv, 0)), "CN=client-p256"));
    CHECK(hsmtls_conn_verified_chain_count(srv) == 2);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    /* optional client certificate: none sent is fine */
    CHECK(hsmtls_config_set_peer_cert_required(ms, 0) == 0);
    pair(cc, ms, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    exchange(cli, srv, "y");
    CHECK(hsmtls_conn_peer_subject(srv) == NULL);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    hsmtls_config_free(mc);
    hsmtls_config_free(ms);
    hsmtls_cert_free(ca);
    hsmtls_config_free(u);
    hsmtls_config_free(q);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

static void case_resume(void)
{
    int versions[] = { HSMTLS_TLS1_2, HSMTLS_TLS1_3 };
    for (int vi = 0; vi < 2; vi++) {
        hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
        CHECK(hsmtls_config_set_protocols(cc, versions[vi], versions[vi]) == 0);
        hsmtls_conn *cli, *srv;
        int rs;
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        exchange(srv, cli, "ticket, please");
        hsmtls_session *sess = hsmtls_conn_session(cli);
        CHECK(sess != NULL);
        CHECK(!hsmtls_conn_session_reused(cli));
        /* OpenSSL forgets the session of a connection dropped without close_notify */
        CHECK(hsmtls_conn_shutdown(cli) == 0 && hsmtls_conn_shutdown(srv) == 0);
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);

        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(hsmtls_conn_set_session(cli, sess) == 0);
        CHECK(hsmtls_conn_set_session(srv, sess) == HSMTLS_ERROR);
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        CHECK(hsmtls_conn_session_reused(cli) && hsmtls_conn_session_reused(srv));
        CHECK(check_contains(hsmtls_conn_summary(srv), "resumed session"));
        hsmtls_session_free(sess);
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        hsmtls_config_free(sc);
        hsmtls_config_free(cc);
    }
}

struct keylog { int lines, client_random; };

static void on_keylog(const hsmtls_conn *conn, const char *line, void *arg)
{
    struct keylog *k = arg;
    k->lines++;
    k->client_random += strncmp(line, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ", 32) == 0 || strncmp(line, "CLIENT_RANDOM ", 14) == 0;
    CHECK(conn != NULL && strchr(line, '\n') == NULL);
}

static void case_misc(void)
{
    /* keylog, TLS 1.2 with a chosen cipher, config changes not reaching a live conn */
    struct keylog k = { 0 };
    hsmtls_config *sc = check_server_config("rsa2048"), *cc = check_client_config();
    CHECK(hsmtls_config_set_keylog_cb(cc, on_keylog, &k) == 0);
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    CHECK(hsmtls_config_set_ciphers(cc, "ECDHE-RSA-AES128-GCM-SHA256") == 0);
    hsmtls_conn *cli, *srv;
    int rs;
    pair(cc, sc, &cli, &srv, "localhost");
    /* a later change to the config does not reach this connection */
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_3, HSMTLS_TLS1_3) == 0);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(strcmp(hsmtls_conn_version(cli), "TLSv1.2") == 0);
    CHECK(strcmp(hsmtls_conn_cipher(cli), "ECDHE-RSA-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_conn_cipher_bits(cli) == 128);
    CHECK(hsmtls_conn_alpn(cli) == NULL);
    CHECK(hsmtls_conn_alpn_status(cli) == HSMTLS_ALPN_NONE && hsmtls_conn_alpn_status(srv) == HSMTLS_ALPN_NONE);
    CHECK(k.lines >= 1 && k.client_random >= 1);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    /* the next connection has the new values */
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(strcmp(hsmtls_conn_version(cli), "TLSv1.3") == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    /* the config may go first: connections hold their reference */
    pair(cc, sc, &cli, &srv, "localhost");
    hsmtls_config_free(cc);
    hsmtls_config_free(sc);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* backend options reach OpenSSL; a server that only speaks 1.2 against a 1.3 client */
    sc = check_server_config("ec-p256");
    cc = check_client_config();
    CHECK(hsmtls_config_set_backend_option(sc, "MaxProtocol", "TLSv1.2") == 0);
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_3, 0) == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR || rs == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(srv), "protocol"), hsmtls_conn_error_message(srv));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    /* ALPN without overlap: no result, no failure */
    CHECK(hsmtls_config_set_protocols(cc, 0, 0) == 0);
    CHECK(hsmtls_config_set_alpn(sc, "h2") == 0);
    CHECK(hsmtls_config_set_alpn(cc, "imap") == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_alpn(cli) == NULL);
    CHECK(hsmtls_conn_alpn_status(cli) == HSMTLS_ALPN_UNSUPPORTED && hsmtls_conn_alpn_status(srv) == HSMTLS_ALPN_UNSUPPORTED);
    CHECK(strcmp(hsmtls_conn_version(cli), "TLSv1.2") == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
    CHECK(strcmp(hsmtls_status_name(HSMTLS_WANT_WRITE), "HSMTLS_WANT_WRITE") == 0);

    /* TLS 1.2 finite-field DHE works out of the box (RFC 7919 groups) */
    sc = check_server_config("rsa2048");
    cc = check_client_config();
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    CHECK(hsmtls_config_set_ciphers(cc, "DHE-RSA-AES128-GCM-SHA256") == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(srv));
    CHECK(hsmtls_conn_cipher(cli) && strcmp(hsmtls_conn_cipher(cli), "DHE-RSA-AES128-GCM-SHA256") == 0);
    CHECK_MSG(hsmtls_conn_ephemeral_key(cli) && strcmp(hsmtls_conn_ephemeral_key(cli), "ffdhe2048") == 0,
              hsmtls_conn_ephemeral_key(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    CHECK(hsmtls_config_set_dh_group(sc, "ffdhe3072") == 0);
    CHECK(strcmp(hsmtls_config_dh_group(sc), "ffdhe3072") == 0);
    CHECK(hsmtls_config_set_dh_group(sc, "modp_2048") == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_dh_group(sc, "ffdhe1234") == HSMTLS_ERROR);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_ephemeral_key(cli) && strcmp(hsmtls_conn_ephemeral_key(cli), "ffdhe3072") == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);

    /* OCSP stapling: the bytes travel to a client that asks, in 1.2 and 1.3 */
    for (int v = HSMTLS_TLS1_2; v <= HSMTLS_TLS1_3; v++) {
        sc = check_server_config("ec-p256");
        cc = check_client_config();
        static const unsigned char resp[] = "stand-in for a DER OCSPResponse";
        CHECK(hsmtls_config_set_ocsp_response(cc, resp, sizeof resp) == HSMTLS_ERROR);
        CHECK(hsmtls_config_set_ocsp_response(sc, resp, sizeof resp) == 0);
        CHECK(hsmtls_config_set_protocols(cc, v, v) == 0);
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        size_t len = 99;
        CHECK(hsmtls_conn_ocsp_response(cli, &len) == NULL && len == 0); /* not asked for */
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        CHECK(hsmtls_config_set_ocsp_request(cc, 1) == 0 && hsmtls_config_ocsp_request(cc) == 1);
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        const unsigned char *got = hsmtls_conn_ocsp_response(cli, &len);
        CHECK(got && len == sizeof resp && memcmp(got, resp, len) == 0);
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        hsmtls_config_free(sc);
        hsmtls_config_free(cc);
    }

    /* exporters agree on both ends; key update; the ephemeral group; chosen group */
    sc = check_server_config("ec-p256");
    cc = check_client_config();
    CHECK(hsmtls_config_set_groups(cc, "P-384") == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    unsigned char a[32], b[32];
    CHECK(hsmtls_conn_export_keying_material(cli, a, sizeof a, "EXPORTER-test", NULL, 0) == HSMTLS_ERROR);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_export_keying_material(cli, a, sizeof a, "EXPORTER-test", "ctx", 3) == 0);
    CHECK(hsmtls_conn_export_keying_material(srv, b, sizeof b, "EXPORTER-test", "ctx", 3) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(hsmtls_conn_export_keying_material(srv, b, sizeof b, "EXPORTER-test", NULL, 0) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK_MSG(hsmtls_conn_ephemeral_key(cli) && strcmp(hsmtls_conn_ephemeral_key(cli), "secp384r1") == 0,
              hsmtls_conn_ephemeral_key(cli));
    CHECK(hsmtls_conn_ephemeral_key(srv) && strcmp(hsmtls_conn_ephemeral_key(srv), "secp384r1") == 0);
    CHECK(hsmtls_conn_key_update(cli, 1) == 0);
    exchange(cli, srv, "after key update");
    exchange(srv, cli, "and back");
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(cc);

    /* verify flags: trusting only the server's own certificate needs PARTIAL_CHAIN */
    cc = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(hsmtls_config_add_ca(cc, check_path("certs/ec-p256.pem")) == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    CHECK(hsmtls_config_set_verify_flags(cc, HSMTLS_VFLAG_PARTIAL_CHAIN | HSMTLS_VFLAG_TRUSTED_FIRST) == 0);
    CHECK(hsmtls_config_verify_flags(cc) == (HSMTLS_VFLAG_PARTIAL_CHAIN | HSMTLS_VFLAG_TRUSTED_FIRST));
    CHECK(hsmtls_config_set_verify_flags(cc, 1u << 20) == HSMTLS_ERROR);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_peer_verified(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(cc);

    /* server preference picks the server's first TLS 1.2 cipher */
    cc = check_client_config();
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    CHECK(hsmtls_config_set_ciphers(cc, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305") == 0);
    CHECK(hsmtls_config_set_ciphers(sc, "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_server_preference(sc) == 1);
    CHECK(hsmtls_config_set_session_timeout(sc, 60) == 0 && hsmtls_config_session_timeout(sc) == 60);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(strcmp(hsmtls_conn_cipher(cli), "ECDHE-ECDSA-CHACHA20-POLY1305") == 0);
    CHECK(hsmtls_conn_key_update(cli, 0) == HSMTLS_ERROR);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    CHECK(hsmtls_config_set_server_preference(sc, 0) == 0);
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(strcmp(hsmtls_conn_cipher(cli), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(cc);
    hsmtls_config_free(sc);
}

/* Ignore-and-resume: the handshake pauses on verification errors, the application
 * accepts some, and resumes. */
static void case_pause(void)
{
    hsmtls_config *sc = check_server_config("rsa2048"), *cc = check_client_config();
    CHECK(hsmtls_config_set_interrupt_on_verify_error(sc, 1) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_interrupt_on_verify_error(cc, 1) == 0);
    CHECK(hsmtls_config_interrupt_on_verify_error(cc) == 1);
    hsmtls_conn *cli, *srv;
    int rs;

    /* nothing wrong: no pause */
    pair(cc, sc, &cli, &srv, "localhost");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_peer_verified(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* a wrong name: paused, accepted, resumed */
    pair(cc, sc, &cli, &srv, "wrong.example");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_WANT_VERIFY);
    CHECK(hsmtls_conn_verify_error_count(cli) == 1);
    long code = 0;
    hsmtls_conn_verify_error(cli, 0, &code, NULL);
    CHECK(code == X509_V_ERR_HOSTNAME_MISMATCH);
    CHECK(check_contains(hsmtls_conn_error_message(cli), "paused on 1 verification error"));
    CHECK(hsmtls_conn_ignore_verify_error(cli, X509_V_ERR_HOSTNAME_MISMATCH) == 0);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_handshake_done(cli));
    CHECK(!hsmtls_conn_peer_verified(cli)); /* accepted, not verified */
    exchange(cli, srv, "accepted");
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);

    /* two errors, one accepted: the resumed handshake fails on the other */
    hsmtls_config *u = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(hsmtls_config_add_ca(u, check_path("certs/ed25519.pem")) == 0);
    CHECK(hsmtls_config_set_interrupt_on_verify_error(u, 1) == 0);
    pair(u, sc, &cli, &srv, "wrong.example");
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_WANT_VERIFY);
    CHECK(hsmtls_conn_verify_error_count(cli) >= 2);
    CHECK(hsmtls_conn_ignore_verify_error(cli, X509_V_ERR_HOSTNAME_MISMATCH) == 0);
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "certificate verify failed"), hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_verify_result(cli) != X509_V_OK && hsmtls_conn_verify_result(cli) != X509_V_ERR_HOSTNAME_MISMATCH);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(u);

    /* accepted before the handshake (Qt's ignoreSslErrors(list)): no pause at all */
    hsmtls_config *plain = check_client_config();
    pair(plain, sc, &cli, &srv, "wrong.example");
    CHECK(hsmtls_conn_ignore_verify_error(cli, X509_V_ERR_HOSTNAME_MISMATCH) == 0);
    CHECK(hsmtls_conn_ignore_verify_error(cli, X509_V_ERR_HOSTNAME_MISMATCH) == 0);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_verify_error_count(cli) == 1 && !hsmtls_conn_peer_verified(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(plain);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

/* Callback I/O over a non-blocking socket pair, counting what passes. */
struct pipe_io {
    int fd;
    size_t in, out;
};

static int cb_read(void *arg, void *buf, size_t size)
{
    struct pipe_io *p = arg;
    ssize_t n = read(p->fd, buf, size);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? HSMTLS_WANT_READ : HSMTLS_ERROR;
    p->in += (size_t)n;
    return (int)n;
}

static int cb_write(void *arg, const void *data, size_t len)
{
    struct pipe_io *p = arg;
    ssize_t n = write(p->fd, data, len);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? HSMTLS_WANT_WRITE : HSMTLS_ERROR;
    p->out += (size_t)n;
    return (int)n;
}

static void case_callbacks(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(set_nonblocking(sv[0]) == 0 && set_nonblocking(sv[1]) == 0);
    struct pipe_io a = { .fd = sv[0] }, b = { .fd = sv[1] };
    hsmtls_config *sc = check_server_config("ed25519"), *cc = check_client_config();
    hsmtls_conn *cli = hsmtls_conn_new(cc), *srv = hsmtls_conn_new(sc);
    CHECK(hsmtls_conn_set_io(cli, cb_read, NULL, &a) == HSMTLS_ERROR);
    CHECK(hsmtls_conn_set_io(cli, cb_read, cb_write, &a) == 0);
    CHECK(hsmtls_conn_set_io(srv, cb_read, cb_write, &b) == 0);
    CHECK(hsmtls_conn_use_memory(srv) == HSMTLS_ERROR);
    CHECK(hsmtls_conn_set_hostname(cli, "localhost") == 0);
    int rc = 1, rs = 1;
    for (int i = 0; i < 100 && (rc != 0 || rs != 0); i++) {
        if (rc != 0)
            rc = hsmtls_conn_handshake(cli);
        if (rs != 0)
            rs = hsmtls_conn_handshake(srv);
        if (rc == HSMTLS_ERROR || rs == HSMTLS_ERROR)
            break;
    }
    CHECK_MSG(rc == 0, hsmtls_conn_error_message(cli));
    CHECK_MSG(rs == 0, hsmtls_conn_error_message(srv));
    CHECK(hsmtls_conn_peer_verified(cli));
    CHECK(a.out > 0 && a.out == b.in && b.out > 0);
    char buf[32];
    CHECK(hsmtls_conn_write(srv, "through callbacks", 17) == 17);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == 17 && memcmp(buf, "through callbacks", 17) == 0);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == HSMTLS_WANT_READ);
    CHECK(hsmtls_conn_shutdown(srv) == 0);
    CHECK(hsmtls_conn_read(cli, buf, sizeof buf) == 0);
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
    close(sv[0]);
    close(sv[1]);
}

/* PSK: identity "alice" has a key, anyone else is unknown. */
struct psk_seen {
    char hint[64];
    const char *identity;
    unsigned char key[32];
};

static int psk_client_cb(hsmtls_conn *conn, const char *hint, char *identity, size_t identity_size,
                         unsigned char *key, size_t key_size, void *arg)
{
    struct psk_seen *p = arg;
    snprintf(p->hint, sizeof p->hint, "%s", hint ? hint : "(none)");
    snprintf(identity, identity_size, "%s", p->identity);
    CHECK(key_size >= sizeof p->key);
    memcpy(key, p->key, sizeof p->key);
    return (int)sizeof p->key;
}

static int psk_server_cb(hsmtls_conn *conn, const char *identity, unsigned char *key, size_t key_size, void *arg)
{
    if (strcmp(identity, "alice") != 0)
        return -1;
    memset(key, 0x42, 32);
    return 32;
}

static void case_psk(void)
{
    int versions[] = { HSMTLS_TLS1_2, HSMTLS_TLS1_3 };
    for (int vi = 0; vi < 2; vi++) {
        struct psk_seen seen = { .identity = "alice" };
        memset(seen.key, 0x42, sizeof seen.key);
        hsmtls_config *sc = hsmtls_config_new(HSMTLS_SERVER), *cc = hsmtls_config_new(HSMTLS_CLIENT);
        CHECK(hsmtls_config_set_psk_server_cb(cc, psk_server_cb, NULL) == HSMTLS_ERROR);
        CHECK(hsmtls_config_set_psk_server_cb(sc, psk_server_cb, NULL) == 0);
        CHECK(hsmtls_config_set_psk_identity_hint(sc, "hint-1") == 0);
        CHECK(strcmp(hsmtls_config_psk_identity_hint(sc), "hint-1") == 0);
        CHECK(hsmtls_config_set_psk_client_cb(cc, psk_client_cb, &seen) == 0);
        CHECK(hsmtls_config_set_protocols(cc, versions[vi], versions[vi]) == 0);
        if (versions[vi] == HSMTLS_TLS1_2) {
            CHECK(hsmtls_config_set_ciphers(cc, "PSK-AES128-GCM-SHA256") == 0);
            CHECK(hsmtls_config_set_ciphers(sc, "PSK-AES128-GCM-SHA256") == 0);
        }
        hsmtls_conn *cli, *srv;
        int rs;
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK_MSG(check_handshake(cli, srv, &rs) == 0, hsmtls_conn_error_message(cli));
        CHECK_MSG(rs == 0, hsmtls_conn_error_message(srv));
        CHECK(hsmtls_conn_version_number(cli) == versions[vi]);
        CHECK(hsmtls_conn_psk_identity(srv) && strcmp(hsmtls_conn_psk_identity(srv), "alice") == 0);
        CHECK(hsmtls_conn_peer_subject(cli) == NULL);
        if (versions[vi] == HSMTLS_TLS1_2)
            CHECK_MSG(strcmp(seen.hint, "hint-1") == 0, seen.hint);
        exchange(cli, srv, "psk");
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        /* an identity the server does not know, or the wrong key: no connection */
        seen.identity = "mallory";
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(check_handshake(cli, srv, &rs) != 0 || rs != 0);
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        seen.identity = "alice";
        seen.key[0] ^= 1;
        pair(cc, sc, &cli, &srv, "localhost");
        CHECK(check_handshake(cli, srv, &rs) != 0 || rs != 0);
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
        hsmtls_config_free(sc);
        hsmtls_config_free(cc);
    }
}

struct sni_table {
    hsmtls_config *rsa;
    int calls;
    char last[64];
};

static int pick(hsmtls_conn *conn, const char *name, hsmtls_config **use, void *arg)
{
    struct sni_table *t = arg;
    t->calls++;
    snprintf(t->last, sizeof t->last, "%s", name ? name : "(none)");
    CHECK(hsmtls_conn_role(conn) == HSMTLS_SERVER);
    if (name && strcmp(name, "refuse.example") == 0)
        return -1;
    if (name && strcmp(name, "rsa.example") == 0)
        *use = t->rsa;
    return 0;
}

static void case_sni(void)
{
    struct sni_table t = { .rsa = check_server_config("rsa2048") };
    hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
    CHECK(hsmtls_config_set_sni_cb(cc, pick, &t) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_sni_cb(sc, pick, &t) == 0);
    /* the names below are not in the certificates: check the chain, not the name */
    CHECK(hsmtls_config_set_check_hostname(cc, 0) == 0);
    const char *names[] = { "rsa.example", "other.example" };
    const char *want[] = { "OU=rsa2048", "OU=ec-p256" };
    for (int i = 0; i < 2; i++) {
        hsmtls_conn *cli, *srv;
        int rs;
        pair(cc, sc, &cli, &srv, names[i]);
        CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(srv));
        CHECK(strcmp(t.last, names[i]) == 0);
        CHECK_MSG(check_contains(hsmtls_conn_peer_subject(cli), want[i]), hsmtls_conn_peer_subject(cli));
        CHECK(hsmtls_conn_peer_verified(cli));
        CHECK(strcmp(hsmtls_conn_hostname(srv), names[i]) == 0);
        exchange(cli, srv, "sni");
        hsmtls_conn_free(cli);
        hsmtls_conn_free(srv);
    }
    hsmtls_conn *cli, *srv;
    int rs;
    pair(cc, sc, &cli, &srv, "refuse.example");
    check_handshake(cli, srv, &rs);
    CHECK(rs == HSMTLS_ERROR);
    check_move(srv, cli); /* the alert */
    CHECK(hsmtls_conn_handshake(cli) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "unrecognized name"), hsmtls_conn_error_message(cli));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    /* the config switched to may be freed by the application: connections keep it */
    pair(cc, sc, &cli, &srv, "rsa.example");
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    hsmtls_config_free(t.rsa);
    t.rsa = NULL;
    exchange(cli, srv, "still here");
    CHECK(check_contains(hsmtls_conn_peer_subject(cli), "OU=rsa2048"));
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    CHECK(t.calls == 4);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "memory", case_memory }, { "nonblocking", case_nonblocking }, { "verify", case_verify },
        { "resume", case_resume }, { "psk", case_psk }, { "callbacks", case_callbacks },
        { "pause", case_pause }, { "sni", case_sni }, { "misc", case_misc },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
