/* libhsmtls DTLS API tests, both ends in this process in memory mode: the cookie
 * exchange through hsmtls_dtls_verifier, the handshake datagram by datagram with the
 * MTU hint checked on every datagram, retransmission, data both ways, garbage,
 * truncated and replayed datagrams, close_notify, refused peer addresses, and
 * verification errors with ignore-and-resume; then test_dtls_sessions.c's (resumption,
 * SNI, fd mode, getters).
 * usage: test_dtls SANDBOX_DIR CASE [SERVER_KEY_REF]  (default: the soft ec-p256 key) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "check.h"
#include "dtls_check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

static void test_full(void)
{
    hsmtls_config *scfg = dtls_server_config(), *ccfg = dtls_client_config(1);
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    static const unsigned char secret[] = "a secret of our own";
    CHECK(hsmtls_dtls_verifier_set_secret(v, "SHA384", secret, sizeof secret) == 0);
    CHECK(hsmtls_dtls_verifier_set_secret(v, "NOPE", secret, sizeof secret) == HSMTLS_ERROR);
    CHECK(strcmp(hsmtls_dtls_verifier_digest(v), "SHA384") == 0);
    struct sockaddr_in caddr = dtls_addr("127.0.0.1", 40000), saddr = dtls_addr("127.0.0.1", 4433);
    /* ALPN over DTLS (RFC 7301 applies alike; WebRTC names "webrtc") */
    CHECK(hsmtls_config_set_alpn(ccfg, "coap,webrtc") == 0 && hsmtls_config_set_alpn(scfg, "webrtc") == 0);

    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg);
    CHECK(cl != NULL);
    CHECK(hsmtls_dtls_set_peer(cl, (struct sockaddr *)&saddr, sizeof saddr, "localhost") == 0);
    CHECK(strcmp(hsmtls_dtls_peer(cl), "127.0.0.1:4433") == 0);
    CHECK(hsmtls_dtls_set_mtu_hint(cl, 100) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_set_mtu_hint(cl, 400) == 0);
    CHECK(hsmtls_dtls_timeout_ms(cl) == -1);
    int cst = 0, sst = 0;
    hsmtls_dtls *sv = dtls_cookie_exchange(v, scfg, cl, &caddr, &sst);
    CHECK(hsmtls_dtls_set_mtu_hint(sv, 400) == HSMTLS_ERROR); /* too late: started */
    dtls_largest = 0;
    CHECK_MSG(dtls_run_handshake(cl, sv, &cst, &sst), hsmtls_dtls_error_message(sv));
    CHECK_MSG(cst == 0, hsmtls_dtls_error_message(cl));
    CHECK(strcmp(hsmtls_dtls_version(cl), "DTLSv1.2") == 0);
    CHECK(hsmtls_dtls_version_number(sv) == 0xFEFD);
    CHECK(hsmtls_dtls_cipher(cl) && strcmp(hsmtls_dtls_cipher(cl), hsmtls_dtls_cipher(sv)) == 0);
    CHECK(hsmtls_dtls_cipher_bits(cl) >= 128);
    CHECK(hsmtls_conn_peer_verified(hsmtls_dtls_conn(cl)));
    for (int i = 0; i < 2; i++) {
        hsmtls_conn *c = hsmtls_dtls_conn(i ? sv : cl);
        CHECK_MSG(hsmtls_conn_alpn_status(c) == HSMTLS_ALPN_NEGOTIATED, i ? "server" : "client");
        CHECK(hsmtls_conn_alpn(c) && strcmp(hsmtls_conn_alpn(c), "webrtc") == 0);
    }
    printf("# %s\n", hsmtls_dtls_summary(cl));

    /* data both ways, one datagram each */
    unsigned char dg[4096], out[4096];
    CHECK(hsmtls_dtls_write(cl, "ping", 4) == 4);
    int n = hsmtls_dtls_take(cl, dg, sizeof dg);
    CHECK(n > 4);
    CHECK(hsmtls_dtls_read(sv, dg, (size_t)n, out, sizeof out) == 4 && memcmp(out, "ping", 4) == 0);
    /* replayed, truncated, garbage: dropped, the association goes on */
    CHECK(hsmtls_dtls_read(sv, dg, (size_t)n, out, sizeof out) == 0);
    CHECK(hsmtls_dtls_read(sv, dg, (size_t)n - 3, out, sizeof out) == 0);
    unsigned char junk[300];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    CHECK(hsmtls_dtls_read(sv, junk, sizeof junk, out, sizeof out) == 0);
    memcpy(junk, dg, 13); /* a record header that fits, garbage behind it */
    CHECK(hsmtls_dtls_read(sv, junk, sizeof junk, out, sizeof out) == 0);
    CHECK(hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE);
    CHECK(hsmtls_dtls_write(sv, "pong!", 5) == 5);
    n = hsmtls_dtls_take(sv, dg, sizeof dg);
    CHECK(hsmtls_dtls_read(cl, dg, (size_t)n, out, sizeof out) == 5 && memcmp(out, "pong!", 5) == 0);
    CHECK(hsmtls_dtls_write(cl, dg, 16385) == HSMTLS_ERROR);

    /* close_notify */
    CHECK(hsmtls_dtls_shutdown(cl) == 0);
    n = hsmtls_dtls_take(cl, dg, sizeof dg);
    CHECK(n > 0);
    CHECK(hsmtls_dtls_read(sv, dg, (size_t)n, out, sizeof out) == 0);
    CHECK(hsmtls_dtls_state(sv) == HSMTLS_DTLS_CLOSED);
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

/* The test's clock: the timers move only when the test says so. */
static uint64_t fake_ms;
static uint64_t fake_clock(void *arg)
{
    return *(uint64_t *)arg;
}

static void test_mtu_and_timeouts(void)
{
    hsmtls_config *scfg = dtls_server_config(), *ccfg = dtls_client_config(1);
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in caddr = dtls_addr("127.0.0.1", 40001);
    fake_ms = 5000;
    CHECK(hsmtls_config_set_dtls_clock(ccfg, fake_clock, &fake_ms) == 0);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg);
    CHECK(hsmtls_config_set_dtls_clock(ccfg, NULL, NULL) == 0); /* the next ones: the system clock */
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
    CHECK(hsmtls_dtls_set_mtu_hint(cl, 300) == 0);
    CHECK(hsmtls_dtls_set_retransmit_timeout(cl, 20) == 0);
    int cst = 0, sst = 0;
    hsmtls_dtls *sv = dtls_cookie_exchange(v, scfg, cl, &caddr, &sst);
    hsmtls_dtls_free(sv);
    /* the server's association is gone: the client's timer runs and retransmits, on
     * the test's clock: 20 ms, then 40, 80 ... */
    CHECK(hsmtls_dtls_timeout_ms(cl) == 20);
    fake_ms += 19;
    CHECK(hsmtls_dtls_timeout_ms(cl) == 1);
    CHECK(hsmtls_dtls_handle_timeout(cl) == 0); /* not due: nothing resent */
    CHECK(hsmtls_dtls_outgoing(cl) == 0);
    fake_ms += 1;
    CHECK(hsmtls_dtls_timeout_ms(cl) == 0);
    CHECK(hsmtls_dtls_outgoing(cl) == 0);
    CHECK(hsmtls_dtls_handle_timeout(cl) == 1);
    CHECK(hsmtls_dtls_outgoing(cl) == 1);
    CHECK(hsmtls_dtls_timeout_ms(cl) == 40); /* doubled */
    fake_ms += 40;
    CHECK(hsmtls_dtls_handle_timeout(cl) == 1);
    CHECK(hsmtls_dtls_outgoing(cl) == 2);
    CHECK(hsmtls_dtls_timeout_ms(cl) == 80);
    hsmtls_dtls_free(cl);

    /* the system clock, as before: a 20 ms timer that has not run out */
    cl = hsmtls_dtls_new(ccfg);
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
    CHECK(hsmtls_dtls_set_retransmit_timeout(cl, 20) == 0);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    long t = hsmtls_dtls_timeout_ms(cl);
    CHECK(t >= 0 && t <= 20);
    hsmtls_dtls_free(cl);

    /* a handshake in which no datagram is larger than the MTU hint, either way */
    cl = hsmtls_dtls_new(ccfg);
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
    CHECK(hsmtls_dtls_set_mtu_hint(cl, 300) == 0);
    sv = NULL;
    {
        unsigned char ch[4096], hvr[300];
        size_t hl;
        CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
        int n = hsmtls_dtls_take(cl, ch, sizeof ch);
        CHECK(n > 0 && n <= 300);
        hsmtls_dtls_verifier_check(v, ch, (size_t)n, (struct sockaddr *)&caddr, sizeof caddr, hvr, sizeof hvr, &hl);
        hsmtls_dtls_handshake(cl, hvr, hl);
        n = hsmtls_dtls_take(cl, ch, sizeof ch);
        CHECK(hsmtls_dtls_verifier_check(v, ch, (size_t)n, (struct sockaddr *)&caddr, sizeof caddr, hvr, sizeof hvr,
                                         &hl) == 1);
        sv = hsmtls_dtls_new(scfg);
        CHECK(hsmtls_dtls_set_peer(sv, (struct sockaddr *)&caddr, sizeof caddr, NULL) == 0);
        CHECK(hsmtls_dtls_set_mtu_hint(sv, 300) == 0);
        CHECK(hsmtls_dtls_handshake(sv, ch, (size_t)n) == HSMTLS_WANT_READ);
    }
    dtls_largest = 0;
    CHECK_MSG(dtls_run_handshake(cl, sv, &cst, &sst), hsmtls_dtls_error_message(cl));
    CHECK(dtls_largest > 0 && dtls_largest <= 300);
    printf("# largest handshake datagram with MTU hint 300: %u\n", dtls_largest);
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

static void test_peers_refused(void)
{
    hsmtls_config *ccfg = dtls_client_config(1);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg);
    const char *bad[] = { "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::", "ff02::1",
                          "::ffff:224.0.0.1", "not-an-address" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(hsmtls_dtls_set_peer_address(cl, bad[i], 4433, NULL) == HSMTLS_ERROR, bad[i]);
    CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 0, NULL) == HSMTLS_ERROR);
    CHECK(strstr(hsmtls_dtls_error_message(cl), "port 0") != NULL);
    CHECK(hsmtls_dtls_set_peer_address(cl, "::1", 4433, NULL) == 0);
    CHECK(strcmp(hsmtls_dtls_peer(cl), "[::1]:4433") == 0);
    CHECK(strcmp(hsmtls_dtls_verify_name(cl), "::1") == 0);
    CHECK(hsmtls_dtls_write(cl, "x", 1) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_shutdown(cl) == HSMTLS_ERROR);
    hsmtls_dtls_free(cl);
    /* a server starts from a ClientHello, and cookie checks need the peer's address */
    hsmtls_config *scfg = dtls_server_config();
    hsmtls_dtls *sv = hsmtls_dtls_new(scfg);
    CHECK(hsmtls_dtls_handshake(sv, NULL, 0) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_handshake(sv, "x", 1) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_abort(sv) == 0);
    CHECK(hsmtls_dtls_handshake(sv, "x", 1) == HSMTLS_ERROR);
    hsmtls_dtls_free(sv);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

/* No CA: the verification fails; paused, the errors can be ignored and the handshake
 * resumed (Qt's ignoreVerificationErrors + resumeHandshake). */
static void test_verify(void)
{
    hsmtls_config *scfg = dtls_server_config();
    CHECK(hsmtls_config_set_dtls_cookie_verification(scfg, 0) == 0);
    CHECK(hsmtls_config_dtls_cookie_verification(scfg) == 0);
    for (int pause = 0; pause < 2; pause++) {
        hsmtls_config *ccfg = dtls_client_config(0);
        hsmtls_config_use_default_ca(ccfg, 0);
        if (pause)
            CHECK(hsmtls_config_set_interrupt_on_verify_error(ccfg, 1) == 0);
        hsmtls_dtls *cl = hsmtls_dtls_new(ccfg), *sv = hsmtls_dtls_new(scfg);
        CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
        int cst = hsmtls_dtls_handshake(cl, NULL, 0), sst = 0;
        CHECK(cst == HSMTLS_WANT_READ);
        dtls_run_handshake(cl, sv, &cst, &sst);
        if (!pause) {
            CHECK(cst == HSMTLS_ERROR && hsmtls_dtls_state(cl) == HSMTLS_DTLS_FAILED);
            CHECK(strstr(hsmtls_dtls_error_message(cl), "local issuer") != NULL);
            printf("# %s\n", hsmtls_dtls_error_message(cl));
        } else {
            CHECK(cst == HSMTLS_WANT_VERIFY);
            CHECK(hsmtls_dtls_state(cl) == HSMTLS_DTLS_PEER_VERIFICATION_FAILED);
            hsmtls_conn *c = hsmtls_dtls_conn(cl);
            CHECK(hsmtls_conn_verify_error_count(c) >= 1);
            for (int i = 0; i < hsmtls_conn_verify_error_count(c); i++) {
                long code;
                hsmtls_conn_verify_error(c, i, &code, NULL);
                CHECK(hsmtls_dtls_ignore_verify_error(cl, code) == 0);
            }
            cst = hsmtls_dtls_resume_handshake(cl);
            CHECK_MSG(cst == HSMTLS_WANT_READ || cst == 0, hsmtls_dtls_error_message(cl));
            CHECK(dtls_run_handshake(cl, sv, &cst, &sst));
            CHECK(!hsmtls_conn_peer_verified(c));
        }
        hsmtls_dtls_free(cl);
        hsmtls_dtls_free(sv);
        hsmtls_config_free(ccfg);
    }
    hsmtls_config_free(scfg);
}

static int psk_client(hsmtls_conn *conn, const char *hint, char *identity, size_t identity_size,
                      unsigned char *key, size_t key_size, void *arg)
{
    snprintf(identity, identity_size, "dtls-client");
    memset(key, 0x42, 32);
    return 32;
}

static int psk_server(hsmtls_conn *conn, const char *identity, unsigned char *key, size_t key_size, void *arg)
{
    if (strcmp(identity, "dtls-client") != 0)
        return -1;
    memset(key, 0x42, 32);
    return 32;
}

/* PSK: a server without a certificate, the config's callbacks. */
static void test_psk(void)
{
    hsmtls_config *scfg = hsmtls_config_new(HSMTLS_SERVER), *ccfg = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(hsmtls_config_set_psk_server_cb(scfg, psk_server, NULL) == 0);
    CHECK(hsmtls_config_set_psk_client_cb(ccfg, psk_client, NULL) == 0);
    CHECK(hsmtls_config_set_ciphers(scfg, "PSK-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_set_ciphers(ccfg, "PSK-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_set_dtls_cookie_verification(scfg, 0) == 0);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg), *sv = hsmtls_dtls_new(scfg);
    CHECK_MSG(cl && sv, hsmtls_error_message());
    if (cl && sv) {
        CHECK(hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "localhost") == 0);
        int cst = hsmtls_dtls_handshake(cl, NULL, 0), sst = 0;
        CHECK_MSG(dtls_run_handshake(cl, sv, &cst, &sst), hsmtls_dtls_error_message(sv));
        CHECK(hsmtls_dtls_cipher(cl) && strcmp(hsmtls_dtls_cipher(cl), "PSK-AES128-GCM-SHA256") == 0);
        const char *id = hsmtls_conn_psk_identity(hsmtls_dtls_conn(sv));
        CHECK(id && strcmp(id, "dtls-client") == 0);
    }
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_config_free(scfg);
    hsmtls_config_free(ccfg);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "peers_refused", test_peers_refused }, { "full", test_full },
        { "mtu_and_timeouts", test_mtu_and_timeouts }, { "verify", test_verify }, { "psk", test_psk },
        { "resume", test_dtls_resume }, { "sni", test_dtls_sni }, { "fd_mode", test_dtls_fd_mode },
        { "getters", test_dtls_getters },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "[SERVER_KEY_REF]", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    dtls_server_key = strdup(argc > 3 ? argv[3] : check_path("soft/ec-p256.key"));
    int status = check_run(c);
    free((char *)dtls_server_key);
    return status;
}
