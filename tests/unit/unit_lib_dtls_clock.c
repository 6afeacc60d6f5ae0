/* DTLS retransmission on a clock the test owns, hermetic (PSK, memory mode, no
 * certificate, no socket, no sleep): the schedule (first timeout, doubled, not due
 * before its deadline), a lost ClientHello resent and the handshake completed from the
 * resent one, retransmissions exhausted, and the system clock when no clock is given. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "hsmtls/config.h"
#include "hsmtls/dtls.h"

static uint64_t now_ms;
static uint64_t test_clock(void *arg) { return *(uint64_t *)arg; }

static const unsigned char key[16] = "0123456789abcdef";

static int psk_client(hsmtls_conn *conn, const char *hint, char *identity, size_t identity_size,
                      unsigned char *out, size_t size, void *arg)
{
    strcpy(identity, "unit");
    memcpy(out, key, sizeof key);
    return sizeof key;
}

static int psk_server(hsmtls_conn *conn, const char *identity, unsigned char *out, size_t size, void *arg)
{
    memcpy(out, key, sizeof key);
    return strcmp(identity, "unit") == 0 ? (int)sizeof key : 0;
}

static hsmtls_config *config(enum hsmtls_role role, int with_clock)
{
    hsmtls_config *c = hsmtls_config_new(role);
    CHECK(hsmtls_config_set_ciphers(c, "PSK-AES128-GCM-SHA256") == 0);
    if (role == HSMTLS_SERVER) {
        CHECK(hsmtls_config_set_psk_server_cb(c, psk_server, NULL) == 0);
        CHECK(hsmtls_config_set_dtls_cookie_verification(c, 0) == 0);
    } else {
        CHECK(hsmtls_config_set_psk_client_cb(c, psk_client, NULL) == 0);
    }
    if (with_clock)
        CHECK(hsmtls_config_set_dtls_clock(c, test_clock, &now_ms) == 0);
    return c;
}

static hsmtls_dtls *client(hsmtls_config *cfg)
{
    hsmtls_dtls *d = hsmtls_dtls_new(cfg);
    CHECK(d && hsmtls_dtls_set_peer_address(d, "127.0.0.1", 4433, "localhost") == 0);
    return d;
}

/* Hands every datagram from one side to the other; returns how many. */
static int pass(hsmtls_dtls *from, hsmtls_dtls *to, int *st)
{
    unsigned char dg[4096];
    int n, count = 0;
    while ((n = hsmtls_dtls_take(from, dg, sizeof dg)) > 0) {
        *st = hsmtls_dtls_handshake(to, dg, (size_t)n);
        count++;
    }
    return count;
}

static void test_schedule_and_resend(void)
{
    hsmtls_config *ccfg = config(HSMTLS_CLIENT, 1), *scfg = config(HSMTLS_SERVER, 1);
    now_ms = 1000000;
    hsmtls_dtls *cl = client(ccfg), *sv = hsmtls_dtls_new(scfg);
    CHECK(hsmtls_dtls_timeout_ms(cl) == -1);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    unsigned char lost[4096];
    CHECK(hsmtls_dtls_take(cl, lost, sizeof lost) > 0); /* the ClientHello, lost */
    CHECK(hsmtls_dtls_timeout_ms(cl) == 1000);
    now_ms += 999;
    CHECK(hsmtls_dtls_timeout_ms(cl) == 1);
    CHECK(hsmtls_dtls_handle_timeout(cl) == 0 && hsmtls_dtls_outgoing(cl) == 0);
    now_ms += 1;
    CHECK(hsmtls_dtls_timeout_ms(cl) == 0);
    CHECK(hsmtls_dtls_handle_timeout(cl) == 1 && hsmtls_dtls_outgoing(cl) == 1);
    CHECK(hsmtls_dtls_timeout_ms(cl) == 2000);

    /* the resent ClientHello goes through; the server's flight has its own timer */
    int sst = 0, cst = HSMTLS_WANT_READ;
    CHECK(pass(cl, sv, &sst) == 1 && sst == HSMTLS_WANT_READ);
    CHECK(hsmtls_dtls_timeout_ms(sv) == 1000);
    for (int round = 0; round < 4 && (cst != 0 || sst != 0); round++) {
        pass(sv, cl, &cst);
        pass(cl, sv, &sst);
    }
    CHECK_MSG(cst == 0, hsmtls_dtls_error_message(cl));
    CHECK_MSG(sst == 0, hsmtls_dtls_error_message(sv));
    CHECK(hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE && hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE);
    CHECK(hsmtls_dtls_timeout_ms(cl) == -1);
    unsigned char dg[4096], out[64];
    CHECK(hsmtls_dtls_write(cl, "ping", 4) == 4);
    int n = hsmtls_dtls_take(cl, dg, sizeof dg);
    CHECK(n > 0 && hsmtls_dtls_read(sv, dg, (size_t)n, out, sizeof out) == 4 && memcmp(out, "ping", 4) == 0);
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_config_free(ccfg);
    hsmtls_config_free(scfg);
}

/* Nobody answers: 1, 2, 4 ... 60 s, then OpenSSL gives up; the clock only moves. */
static void test_exhausted(void)
{
    hsmtls_config *ccfg = config(HSMTLS_CLIENT, 1);
    now_ms = 5;
    hsmtls_dtls *cl = client(ccfg);
    CHECK(hsmtls_dtls_set_retransmit_timeout(cl, 100) == 0);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    long expect = 100;
    int resent = 0, r = 0;
    for (int i = 0; i < 40; i++) {
        long t = hsmtls_dtls_timeout_ms(cl);
        CHECK_MSG(t == expect, "the doubled timeout");
        now_ms += (uint64_t)t;
        if ((r = hsmtls_dtls_handle_timeout(cl)) != 1)
            break;
        resent++;
        expect = expect * 2 > 60000 ? 60000 : expect * 2;
    }
    CHECK(r == HSMTLS_ERROR && resent >= 10 && resent <= 12);
    CHECK(hsmtls_dtls_state(cl) == HSMTLS_DTLS_FAILED && hsmtls_dtls_timeout_ms(cl) == -1);
    CHECK(strstr(hsmtls_dtls_error_message(cl), "the peer did not answer") != NULL);
    hsmtls_dtls_free(cl);
    hsmtls_config_free(ccfg);
}

/* Without a clock: OpenSSL's timer on the system clock, as before. */
static void test_system_clock(void)
{
    hsmtls_config *ccfg = config(HSMTLS_CLIENT, 0);
    hsmtls_dtls *cl = client(ccfg);
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    long t = hsmtls_dtls_timeout_ms(cl);
    CHECK(t > 500 && t <= 1000);
    CHECK(hsmtls_dtls_handle_timeout(cl) == 0 && hsmtls_dtls_outgoing(cl) == 1);
    hsmtls_dtls_free(cl);
    /* the clock can be taken back */
    CHECK(hsmtls_config_set_dtls_clock(ccfg, test_clock, &now_ms) == 0);
    CHECK(hsmtls_config_set_dtls_clock(ccfg, NULL, NULL) == 0);
    hsmtls_config_free(ccfg);
}

int main(void)
{
    test_schedule_and_resend();
    test_exhausted();
    test_system_clock();
    return check_finish();
}
