/* libhsmtls DTLS API tests, part two: session resumption (saved as bytes and offered
 * on a new association, with session IDs and with tickets), SNI (the client's name
 * sent and checked; the server's config callback switching to another config, with
 * the other kind of key: file or token), fd mode on real loopback UDP sockets, and the
 * getters before and after a handshake. Run from test_dtls.c's main. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "dtls_check.h"
#include "hsmtls/conn.h"

/* A full handshake between a new client and a new server association; the client is
 * offered sess first when given. Returns 1 when both completed. */
static int associate(hsmtls_config *scfg, hsmtls_config *ccfg, const char *name, hsmtls_session *sess,
                     hsmtls_dtls **cl_out, hsmtls_dtls **sv_out)
{
    static unsigned port = 41000;
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in caddr = dtls_addr("127.0.0.1", port++);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg);
    CHECK_MSG(cl != NULL, hsmtls_error_message());
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, name) == 0);
    if (sess)
        CHECK_MSG(hsmtls_dtls_set_session(cl, sess) == 0, hsmtls_dtls_error_message(cl));
    int cst = 0, sst = 0;
    hsmtls_dtls *sv = dtls_cookie_exchange(v, scfg, cl, &caddr, &sst);
    int ok = dtls_run_handshake(cl, sv, &cst, &sst);
    hsmtls_dtls_verifier_free(v);
    *cl_out = cl;
    *sv_out = sv;
    return ok;
}

/* A TLS (not DTLS) session, from a TLS handshake in memory. */
static hsmtls_session *tls_session(hsmtls_config *ccfg)
{
    hsmtls_config *scfg = dtls_server_config();
    hsmtls_conn *c = hsmtls_conn_new(ccfg), *s = hsmtls_conn_new(scfg);
    CHECK(hsmtls_conn_use_memory(c) == 0 && hsmtls_conn_use_memory(s) == 0);
    CHECK(hsmtls_conn_set_hostname(c, "localhost") == 0);
    unsigned char buf[16384];
    for (int i = 0; i < 20 && !(hsmtls_conn_handshake_done(c) && hsmtls_conn_handshake_done(s)); i++) {
        hsmtls_conn_handshake(c);
        int n;
        while ((n = hsmtls_conn_take(c, buf, sizeof buf)) > 0)
            hsmtls_conn_feed(s, buf, (size_t)n);
        hsmtls_conn_handshake(s);
        while ((n = hsmtls_conn_take(s, buf, sizeof buf)) > 0)
            hsmtls_conn_feed(c, buf, (size_t)n);
    }
    hsmtls_conn_read(c, buf, sizeof buf); /* TLS 1.3: the ticket comes after */
    hsmtls_session *sess = hsmtls_conn_session(c);
    CHECK_MSG(sess != NULL, hsmtls_conn_error_message(c));
    hsmtls_conn_free(c);
    hsmtls_conn_free(s);
    hsmtls_config_free(scfg);
    return sess;
}

void test_dtls_resume(void)
{
    hsmtls_config *ccfg = dtls_client_config(1);
    int ok;
    for (int tickets = 1; tickets >= 0; tickets--) {
        hsmtls_config *scfg = dtls_server_config();
        CHECK(hsmtls_config_set_session_tickets(scfg, tickets) == 0);
        hsmtls_dtls *cl, *sv;
        ok = associate(scfg, ccfg, "localhost", NULL, &cl, &sv);
        CHECK_MSG(ok, hsmtls_dtls_error_message(cl));
        CHECK(hsmtls_dtls_session_reused(cl) == 0 && hsmtls_dtls_session_reused(sv) == 0);
        hsmtls_session *first = hsmtls_dtls_session(cl);
        CHECK_MSG(first != NULL, "no session after the handshake");
        CHECK(hsmtls_session_version(first) == 0xFEFD);
        CHECK(hsmtls_session_has_ticket(first) == tickets);
        /* kept as bytes and loaded back, as a client keeps it across runs */
        int n = hsmtls_session_save(first, NULL, 0);
        CHECK(n > 0);
        unsigned char *der = malloc((size_t)n);
        CHECK(hsmtls_session_save(first, der, (size_t)n) == n);
        hsmtls_session *loaded = hsmtls_session_load(der, (size_t)n);
        CHECK(loaded != NULL);
        free(der);
        /* freed without close_notify, OpenSSL takes the session for broken and drops it */
        CHECK(hsmtls_dtls_shutdown(cl) == 0 && hsmtls_dtls_shutdown(sv) == 0);
        hsmtls_dtls_free(cl);
        hsmtls_dtls_free(sv);

        hsmtls_dtls *cl2, *sv2;
        ok = associate(scfg, ccfg, "localhost", loaded, &cl2, &sv2);
        CHECK_MSG(ok, hsmtls_dtls_error_message(cl2));
        CHECK_MSG(hsmtls_dtls_session_reused(cl2) == 1, tickets ? "ticket not resumed" : "session ID not resumed");
        CHECK(hsmtls_dtls_session_reused(sv2) == 1);
        CHECK(check_contains(hsmtls_dtls_summary(cl2), "resumed session"));
        CHECK(hsmtls_conn_peer_verified(hsmtls_dtls_conn(cl2)));
        /* too late once started, and never on a server */
        CHECK(hsmtls_dtls_set_session(cl2, loaded) == HSMTLS_ERROR);
        CHECK(check_contains(hsmtls_dtls_error_message(cl2), "only before the handshake"));
        /* the config's cache counters and flush see the DTLS context's cache (only DTLS
         * ran here): two handshakes accepted, the second resumed; the session is in the
         * cache when there is no ticket to carry it */
        hsmtls_session_stats st;
        CHECK(hsmtls_config_session_stats(scfg, &st) == 0);
        CHECK_MSG(st.accept == 2 && st.accept_good == 2 && st.connect == 0, "DTLS handshakes not counted");
        CHECK_MSG(st.hits == 1 && st.number == !tickets, "DTLS cache not counted");
        CHECK(hsmtls_config_flush_sessions(scfg, 1) == !tickets);
        CHECK(hsmtls_config_session_stats(scfg, &st) == 0 && st.number == 0 && st.accept_good == 2);
        hsmtls_dtls_free(cl2);
        hsmtls_dtls_free(sv2);

        /* another server (another cache and ticket key): a full handshake instead */
        hsmtls_config *other = dtls_server_config();
        CHECK(associate(other, ccfg, "localhost", loaded, &cl2, &sv2));
        CHECK(hsmtls_dtls_session_reused(cl2) == 0 && hsmtls_dtls_session_reused(sv2) == 0);
        hsmtls_dtls_free(cl2);
        hsmtls_dtls_free(sv2);
        hsmtls_config_free(other);

        hsmtls_session_free(first);
        hsmtls_session_free(loaded);
        hsmtls_config_free(scfg);
    }
    hsmtls_config *scfg = dtls_server_config();
    hsmtls_dtls *sv = hsmtls_dtls_new(scfg), *cl = hsmtls_dtls_new(ccfg);
    CHECK(hsmtls_dtls_session(cl) == NULL); /* nothing before a handshake */
    CHECK(hsmtls_dtls_set_session(cl, NULL) == HSMTLS_ERROR);
    hsmtls_session *tls = tls_session(ccfg);
    CHECK(hsmtls_dtls_set_session(sv, tls) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_error_message(sv), "only for clients"));
    CHECK(hsmtls_dtls_set_session(cl, tls) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_error_message(cl), "a TLS session"));
    hsmtls_session_free(tls);
    hsmtls_dtls_free(sv);
    hsmtls_dtls_free(cl);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

struct sni_seen {
    int calls;
    char name[64];
    hsmtls_conn *conn;
    hsmtls_config *other;
};

static int pick(hsmtls_conn *conn, const char *name, hsmtls_config **use, void *arg)
{
    struct sni_seen *seen = arg;
    seen->calls++;
    seen->conn = conn;
    snprintf(seen->name, sizeof seen->name, "%s", name ? name : "(none)");
    if (name && strcmp(name, "refused.example") == 0)
        return -1;
    if (name && strcmp(name, "rsa.example") == 0)
        *use = seen->other;
    return 0;
}

void test_dtls_sni(void)
{
    /* the switched-to config holds the other kind of key than the default one */
    int token = strncmp(dtls_server_key, "pkcs11:", 7) == 0;
    const char *rsa_key = token ? check_path("soft/rsa2048.key")
                                : "pkcs11:token=server;object=rsa2048;type=private?pin-value=1234";
    hsmtls_config *scfg = dtls_server_config(), *other = hsmtls_config_new(HSMTLS_SERVER);
    CHECK_MSG(hsmtls_config_set_cert_key(other, check_path("certs/rsa2048.pem"), rsa_key) == 0,
              hsmtls_config_error(other));
    struct sni_seen seen = { .other = other };
    CHECK(hsmtls_config_set_sni_cb(scfg, pick, &seen) == 0);
    hsmtls_config *checked = dtls_client_config(1), *unchecked = dtls_client_config(1);
    CHECK(hsmtls_config_set_check_hostname(unchecked, 0) == 0);
    hsmtls_dtls *cl, *sv;
    int ok;

    /* by name: the other certificate, which does not name rsa.example */
    ok = associate(scfg, unchecked, "rsa.example", NULL, &cl, &sv);
    CHECK_MSG(ok, hsmtls_dtls_error_message(cl));
    CHECK(strcmp(seen.name, "rsa.example") == 0 && seen.conn == hsmtls_dtls_conn(sv));
    CHECK(check_contains(hsmtls_conn_peer_subject(hsmtls_dtls_conn(cl)), "OU=rsa2048"));
    CHECK(hsmtls_dtls_server_name(sv) && strcmp(hsmtls_dtls_server_name(sv), "rsa.example") == 0);
    CHECK(strcmp(hsmtls_dtls_server_name(cl), "rsa.example") == 0);
    printf("# SNI rsa.example: %s\n", hsmtls_dtls_summary(cl));
    unsigned char dg[2048], out[64];
    CHECK(hsmtls_dtls_write(sv, "switched", 8) == 8); /* the switched association carries data */
    int n = hsmtls_dtls_take(sv, dg, sizeof dg);
    CHECK(n > 0 && hsmtls_dtls_read(cl, dg, (size_t)n, out, sizeof out) == 8);
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);

    /* with host name checks on, that certificate is refused for that name */
    CHECK(!associate(scfg, checked, "rsa.example", NULL, &cl, &sv));
    CHECK(hsmtls_dtls_state(cl) == HSMTLS_DTLS_FAILED);
    CHECK_MSG(check_contains(hsmtls_dtls_error_message(cl), "hostname mismatch"), hsmtls_dtls_error_message(cl));
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);

    /* the default certificate for its own name, verified */
    CHECK(associate(scfg, checked, "localhost", NULL, &cl, &sv));
    CHECK(strcmp(seen.name, "localhost") == 0);
    CHECK(check_contains(hsmtls_conn_peer_subject(hsmtls_dtls_conn(cl)), "OU=ec-p256"));
    CHECK(hsmtls_conn_peer_verified(hsmtls_dtls_conn(cl)));
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);

    /* an IP address is no server name: none is sent, the certificate's IP SAN checked */
    int calls = seen.calls;
    CHECK(associate(scfg, checked, "127.0.0.1", NULL, &cl, &sv));
    CHECK(seen.calls == calls + 1 && strcmp(seen.name, "(none)") == 0);
    CHECK(hsmtls_dtls_server_name(sv) == NULL);
    CHECK(hsmtls_conn_peer_verified(hsmtls_dtls_conn(cl)));
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);

    /* the callback refuses a name: unrecognized_name ends both sides (at the first
     * ClientHello, so without the cookie exchange here) */
    CHECK(hsmtls_config_set_dtls_cookie_verification(scfg, 0) == 0);
    cl = hsmtls_dtls_new(checked);
    sv = hsmtls_dtls_new(scfg);
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "refused.example") == 0);
    int cst = hsmtls_dtls_handshake(cl, NULL, 0), sst = 0;
    CHECK(!dtls_run_handshake(cl, sv, &cst, &sst) && cst == HSMTLS_ERROR && sst == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_state(sv) == HSMTLS_DTLS_FAILED && hsmtls_dtls_state(cl) == HSMTLS_DTLS_FAILED);
    CHECK_MSG(check_contains(hsmtls_dtls_error_message(cl), "unrecognized name"), hsmtls_dtls_error_message(cl));
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);

    hsmtls_config_free(checked);
    hsmtls_config_free(unchecked);
    hsmtls_config_free(scfg);
    hsmtls_config_free(other);
}

static int udp_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = dtls_addr("127.0.0.1", 0);
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)bound, &len) == 0);
    return fd;
}

/* QDtls's way: both ends on UDP sockets the test owns, one datagram at a time from
 * recvfrom() into the association; nothing waits in memory. */
void test_dtls_fd_mode(void)
{
    hsmtls_config *scfg = dtls_server_config(), *ccfg = dtls_client_config(1);
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in saddr, caddr;
    int sfd = udp_socket(&saddr), cfd = udp_socket(&caddr);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg), *sv = NULL;
    CHECK(hsmtls_dtls_set_fd(cl, -1) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_set_peer(cl, (struct sockaddr *)&saddr, sizeof saddr, "localhost") == 0);
    CHECK(hsmtls_dtls_set_fd(cl, cfd) == 0);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    CHECK(hsmtls_dtls_outgoing(cl) == 0);
    unsigned char dg[HSMTLS_DTLS_MAX_DATAGRAM], hvr[300];
    int hvrs = 0;
    for (int round = 0; round < 200; round++) {
        if (hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE && sv && hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE)
            break;
        struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = cfd, .events = POLLIN } };
        if (poll(p, 2, 50) <= 0) {
            if (hsmtls_dtls_timeout_ms(cl) == 0)
                hsmtls_dtls_handle_timeout(cl);
            continue;
        }
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n;
        while ((n = recvfrom(sfd, dg, sizeof dg, 0, (struct sockaddr *)&from, &flen)) > 0) {
            if (sv) {
                hsmtls_dtls_handshake(sv, dg, (size_t)n);
                continue;
            }
            size_t hl = 0;
            if (hsmtls_dtls_verifier_check(v, dg, (size_t)n, (struct sockaddr *)&from, flen, hvr, sizeof hvr, &hl) != 1) {
                hvrs++;
                CHECK(sendto(sfd, hvr, hl, 0, (struct sockaddr *)&from, flen) == (ssize_t)hl);
                continue;
            }
            sv = hsmtls_dtls_new(scfg);
            CHECK(hsmtls_dtls_set_peer(sv, (struct sockaddr *)&from, flen, NULL) == 0);
            CHECK(hsmtls_dtls_set_fd(sv, sfd) == 0);
            CHECK(hsmtls_dtls_handshake(sv, dg, (size_t)n) == HSMTLS_WANT_READ);
        }
        while ((n = recv(cfd, dg, sizeof dg, 0)) > 0)
            hsmtls_dtls_handshake(cl, dg, (size_t)n);
    }
    CHECK(hvrs == 1);
    CHECK_MSG(sv && hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE, sv ? hsmtls_dtls_error_message(sv) : "no server");
    CHECK_MSG(hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE, hsmtls_dtls_error_message(cl));
    CHECK(hsmtls_dtls_outgoing(cl) == 0 && (!sv || hsmtls_dtls_outgoing(sv) == 0));
    if (sv && hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE) {
        unsigned char out[64];
        CHECK(hsmtls_dtls_write(cl, "over udp", 8) == 8);
        struct pollfd p = { .fd = sfd, .events = POLLIN };
        CHECK(poll(&p, 1, 2000) == 1);
        ssize_t n = recv(sfd, dg, sizeof dg, 0);
        CHECK(n > 8 && hsmtls_dtls_read(sv, dg, (size_t)n, out, sizeof out) == 8 && memcmp(out, "over udp", 8) == 0);
    }
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    close(sfd);
    close(cfd);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

/* What the simple getters say, before and after a handshake, and the verifier's
 * defaults and errors. */
void test_dtls_getters(void)
{
    CHECK(strcmp(hsmtls_dtls_state_name(HSMTLS_DTLS_NOT_STARTED), "not started") == 0);
    CHECK(strcmp(hsmtls_dtls_state_name(HSMTLS_DTLS_PEER_VERIFICATION_FAILED), "peer verification failed") == 0);
    CHECK(strcmp(hsmtls_dtls_state_name(HSMTLS_DTLS_CLOSED), "closed") == 0);
    CHECK(strcmp(hsmtls_dtls_state_name((enum hsmtls_dtls_state)42), "?") == 0);

    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    CHECK(strcmp(hsmtls_dtls_verifier_digest(v), "SHA256") == 0);
    CHECK(strcmp(hsmtls_dtls_verifier_error(v), "") == 0);
    CHECK(hsmtls_dtls_verifier_set_secret(v, "NOPE", "x", 1) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_verifier_error(v), "unknown digest \"NOPE\""));
    CHECK(hsmtls_dtls_verifier_set_secret(v, "SHA256", "", 0) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_verifier_error(v), "1 to 256 bytes"));
    struct sockaddr_in a = dtls_addr("127.0.0.1", 40100);
    size_t rl = 7;
    unsigned char small[10];
    CHECK(hsmtls_dtls_verifier_check(v, "x", 1, (struct sockaddr *)&a, sizeof a, small, sizeof small, NULL) ==
          HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_verifier_error(v), "bad arguments"));
    CHECK(hsmtls_dtls_verifier_check(v, "x", 1, (struct sockaddr *)&a, sizeof a, small, sizeof small, &rl) == 0 &&
          rl == 0);

    hsmtls_config *scfg = dtls_server_config(), *ccfg = dtls_client_config(1);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg);
    CHECK(hsmtls_dtls_role(cl) == HSMTLS_CLIENT);
    CHECK(hsmtls_dtls_mtu_hint(cl) == 1400);
    CHECK(hsmtls_dtls_set_retransmit_timeout(cl, 5) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_error_message(cl), "between 10 and 60000"));
    CHECK(strcmp(hsmtls_dtls_peer(cl), "") == 0 && hsmtls_dtls_verify_name(cl) == NULL);
    CHECK(hsmtls_dtls_version(cl) == NULL && hsmtls_dtls_version_number(cl) == 0);
    CHECK(hsmtls_dtls_cipher(cl) == NULL && hsmtls_dtls_cipher_bits(cl) == 0);
    CHECK(hsmtls_dtls_session_reused(cl) == 0);
    CHECK(strcmp(hsmtls_dtls_summary(cl), "handshake not done") == 0);
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
    CHECK(hsmtls_dtls_next_datagram_size(cl) == 0 && hsmtls_dtls_take(cl, small, sizeof small) == 0);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    size_t size = hsmtls_dtls_next_datagram_size(cl);
    CHECK(size > sizeof small && hsmtls_dtls_outgoing(cl) == 1);
    /* a buffer too small keeps the datagram for a larger one */
    CHECK(hsmtls_dtls_take(cl, small, sizeof small) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_error_message(cl), "bytes"));
    unsigned char ch[2048];
    CHECK(hsmtls_dtls_take(cl, ch, sizeof ch) == (int)size && hsmtls_dtls_outgoing(cl) == 0);
    hsmtls_dtls_free(cl);

    hsmtls_dtls *sv = hsmtls_dtls_new(scfg);
    CHECK(hsmtls_dtls_role(sv) == HSMTLS_SERVER);
    CHECK(hsmtls_dtls_use_verifier_secret(sv, NULL) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_resume_handshake(sv) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_error_message(sv), "not paused"));
    hsmtls_dtls_free(sv);
    hsmtls_dtls_free(NULL);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}
