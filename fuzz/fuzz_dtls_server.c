/* A DTLS server's first flight (lib/dtls*.c, lib/dgram_bio.c, and OpenSSL's DTLS state
 * machine behind them): a hsmtls_dtls server with cookie verification on (the default),
 * an EC P-256 certificate and key made in memory and a PSK callback (both kinds of suite
 * offered), on a clock of its own. The input is the datagrams the client sends after the
 * cookie exchange, each as a 2-byte big-endian length and its bytes (the last may omit
 * its length: the rest of the input). The first datagram, when it starts with an
 * unfragmented ClientHello, gets the cookie the verifier gives this peer put in (so the
 * fuzzer spends its time past the cookie check); others go as they are.
 *
 * Each datagram is handed to hsmtls_dtls_handshake, what the server sends is taken, and
 * the timer is run out once. The rules: every call answers with a status of the API, the
 * server never sends a datagram over its MTU, and a failed association stays failed.
 * FUZZ_DEBUG=1 in the environment prints what each datagram did. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "fuzz_dtls.h"
#include "hsmtls/config.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"
#include "hsmtls/error.h"

static hsmtls_config *cfg;
static hsmtls_dtls_verifier *verifier;
static unsigned char cookie[64];
static size_t cookie_len;
static uint64_t now_ms = 1000000;
static int debug;

static uint64_t fuzz_clock(void *arg) { return now_ms; }

static const unsigned char psk[16] = "fuzz psk 16bytes";

static int psk_server(hsmtls_conn *conn, const char *identity, unsigned char *out, size_t size, void *arg)
{
    if (size < sizeof psk)
        return 0;
    memcpy(out, psk, sizeof psk);
    return (int)sizeof psk;
}

/* A self-signed P-256 certificate and its key, as PEM in memory. */
static void make_cert(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FUZZ_CHECK(key && x, "key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    FUZZ_CHECK(X509_sign(x, key, EVP_sha256()) > 0, "sign");
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    FUZZ_CHECK(PEM_write_bio_X509(cb, x) && PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL),
               "PEM");
    char *p;
    long n = BIO_get_mem_data(cb, &p);
    FUZZ_CHECK(hsmtls_config_set_cert_mem(cfg, p, (size_t)n) == 0, "cert: %s", hsmtls_error_message());
    n = BIO_get_mem_data(kb, &p);
    FUZZ_CHECK(hsmtls_config_set_key_mem(cfg, p, (size_t)n) == 0, "key: %s", hsmtls_error_message());
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void setup(void)
{
    debug = getenv("FUZZ_DEBUG") != NULL;
    cfg = hsmtls_config_new(HSMTLS_SERVER);
    FUZZ_CHECK(cfg != NULL, "config: %s", hsmtls_error_message());
    make_cert();
    FUZZ_CHECK(hsmtls_config_set_ciphers(cfg, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                              "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256") == 0,
               "ciphers: %s", hsmtls_error_message());
    FUZZ_CHECK(hsmtls_config_set_psk_server_cb(cfg, psk_server, NULL) == 0, "psk");
    FUZZ_CHECK(hsmtls_config_set_dtls_clock(cfg, fuzz_clock, NULL) == 0, "clock: %s", hsmtls_error_message());

    verifier = hsmtls_dtls_verifier_new();
    FUZZ_CHECK(verifier && hsmtls_dtls_verifier_set_secret(verifier, "SHA256", fuzz_dtls_secret,
                                                          sizeof fuzz_dtls_secret) == 0, "verifier");
    /* the cookie for our peer: the verifier's answer to a minimal cookieless hello */
    unsigned char ch[128] = { 22, 0xFE, 0xFD }, reply[300];
    size_t body = 2 + 32 + 1 + 1 + 2 + 2 + 2, rl = 0;
    fuzz_put16(ch + 11, FUZZ_DTLS_HS + body);
    unsigned char *h = ch + FUZZ_DTLS_REC, *b = h + FUZZ_DTLS_HS;
    h[0] = 1;
    fuzz_put24(h + 1, body);
    fuzz_put24(h + 9, body);
    b[0] = 0xFE, b[1] = 0xFD;
    fuzz_put16(b + 36, 2), b[38] = 0xC0, b[39] = 0x2B, b[40] = 1, b[41] = 0;
    struct sockaddr_in peer = fuzz_dtls_peer();
    int r = hsmtls_dtls_verifier_check(verifier, ch, FUZZ_DTLS_REC + FUZZ_DTLS_HS + body,
                                       (struct sockaddr *)&peer, sizeof peer, reply, sizeof reply, &rl);
    FUZZ_CHECK(r == 0 && rl > FUZZ_DTLS_REC + FUZZ_DTLS_HS + 3, "no HelloVerifyRequest");
    cookie_len = reply[FUZZ_DTLS_REC + FUZZ_DTLS_HS + 2];
    FUZZ_CHECK(cookie_len <= sizeof cookie, "cookie");
    memcpy(cookie, reply + FUZZ_DTLS_REC + FUZZ_DTLS_HS + 3, cookie_len);
}

static int is_status(int r)
{
    return r == HSMTLS_OK || r == HSMTLS_WANT_READ || r == HSMTLS_WANT_VERIFY || r == HSMTLS_ERROR;
}

/* Takes everything the server wants to send. */
static void drain(hsmtls_dtls *sv)
{
    unsigned char out[HSMTLS_DTLS_MAX_DATAGRAM];
    int n;
    while ((n = hsmtls_dtls_take(sv, out, sizeof out)) > 0)
        FUZZ_CHECK((unsigned)n <= hsmtls_dtls_mtu_hint(sv), "a datagram of %d bytes over the MTU %u", n,
                   hsmtls_dtls_mtu_hint(sv));
    FUZZ_CHECK(n == 0, "take: %s", hsmtls_dtls_error_message(sv));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg)
        setup();
    hsmtls_dtls *sv = hsmtls_dtls_new(cfg);
    FUZZ_CHECK(sv != NULL, "server: %s", hsmtls_error_message());
    struct sockaddr_in peer = fuzz_dtls_peer();
    FUZZ_CHECK(hsmtls_dtls_set_peer(sv, (struct sockaddr *)&peer, sizeof peer, NULL) == 0 &&
                   hsmtls_dtls_use_verifier_secret(sv, verifier) == 0,
               "peer: %s", hsmtls_dtls_error_message(sv));

    static unsigned char patched[HSMTLS_DTLS_MAX_DATAGRAM + 512];
    size_t at = 0;
    for (int i = 0; at < size && i < 16; i++) {
        size_t len = size - at;
        const uint8_t *dg = data + at;
        if (len >= 2 && fuzz_get16(dg) <= len - 2) {
            len = fuzz_get16(dg);
            dg += 2;
            at += 2;
        }
        at += len;
        if (i == 0) {
            size_t n = fuzz_dtls_set_cookie(dg, len, cookie, cookie_len, patched);
            if (n) {
                dg = patched;
                len = n;
            }
        }
        if (len == 0)
            continue;
        enum hsmtls_dtls_state before = hsmtls_dtls_state(sv);
        int r = hsmtls_dtls_handshake(sv, dg, len);
        if (debug) /* FUZZ_DEBUG=1: what each datagram did, to read a reproducer */
            fprintf(stderr, "datagram %d (%zu bytes): %d, state %s%s%s, %zu to send\n", i, len, r,
                    hsmtls_dtls_state_name(hsmtls_dtls_state(sv)), r == HSMTLS_ERROR ? ": " : "",
                    r == HSMTLS_ERROR ? hsmtls_dtls_error_message(sv) : "", hsmtls_dtls_outgoing(sv));
        FUZZ_CHECK(is_status(r), "handshake answered %d", r);
        if (before == HSMTLS_DTLS_FAILED)
            FUZZ_CHECK(r == HSMTLS_ERROR && hsmtls_dtls_state(sv) == HSMTLS_DTLS_FAILED,
                       "a failed association came back");
        drain(sv);
    }
    /* the timer, run out once: the last flight again */
    long t = hsmtls_dtls_timeout_ms(sv);
    if (t >= 0) {
        now_ms += (uint64_t)t;
        int r = hsmtls_dtls_handle_timeout(sv);
        FUZZ_CHECK(r == 0 || r == 1 || r == HSMTLS_ERROR, "handle_timeout answered %d", r);
        drain(sv);
    }
    hsmtls_dtls_free(sv);
    ERR_clear_error();
    return 0;
}
