/* Writes the DTLS seeds of fuzz/corpus/ from real handshakes of libhsmtls's own client:
 *   make_seeds DIR   ->  DIR/fuzz_dtls_verifier/{client-hello,client-hello-cookie}
 *                        DIR/fuzz_dtls_server/{ecdhe,psk,fragmented}
 * The verifier seeds are single ClientHellos, without and with the cookie for the fuzzers'
 * peer and secret (fuzz_dtls.h). The server seeds are in fuzz_dtls_server's input format
 * (datagrams, each after a 2-byte length): everything the client sent after the cookie
 * exchange in a whole handshake (ECDHE-ECDSA, PSK), and the ClientHello cut in two
 * fragments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "fuzz_dtls.h"
#include "hsmtls/config.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"
#include "hsmtls/error.h"

static const char *dir;
static const unsigned char psk[16] = "fuzz psk 16bytes";

static int psk_client(hsmtls_conn *conn, const char *hint, char *identity, size_t identity_size,
                      unsigned char *out, size_t size, void *arg)
{
    snprintf(identity, identity_size, "fuzz");
    memcpy(out, psk, sizeof psk);
    return (int)sizeof psk;
}

static int psk_server(hsmtls_conn *conn, const char *identity, unsigned char *out, size_t size, void *arg)
{
    memcpy(out, psk, sizeof psk);
    return (int)sizeof psk;
}

static void write_file(const char *target, const char *name, const unsigned char *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    FUZZ_CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "writing %s", path);
    printf("%s (%zu bytes)\n", path, len);
}

/* A self-signed P-256 certificate and key for the server. */
static void server_cert(hsmtls_config *cfg)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cb, x);
    PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(cb, &p);
    FUZZ_CHECK(hsmtls_config_set_cert_mem(cfg, p, (size_t)n) == 0, "%s", hsmtls_error_message());
    n = BIO_get_mem_data(kb, &p);
    FUZZ_CHECK(hsmtls_config_set_key_mem(cfg, p, (size_t)n) == 0, "%s", hsmtls_error_message());
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* One handshake through the verifier; returns in flight (server input format) what the
 * client sent after the HelloVerifyRequest, and the two ClientHellos. */
static size_t handshake(const char *ciphers, int use_psk, unsigned char *flight, unsigned char *ch1,
                        size_t *ch1_len, unsigned char *ch2, size_t *ch2_len)
{
    hsmtls_config *ccfg = hsmtls_config_new(HSMTLS_CLIENT), *scfg = hsmtls_config_new(HSMTLS_SERVER);
    FUZZ_CHECK(hsmtls_config_set_ciphers(ccfg, ciphers) == 0 && hsmtls_config_set_ciphers(scfg, ciphers) == 0,
               "%s", hsmtls_error_message());
    if (use_psk) {
        hsmtls_config_set_psk_client_cb(ccfg, psk_client, NULL);
        hsmtls_config_set_psk_server_cb(scfg, psk_server, NULL);
    } else {
        server_cert(scfg);
        hsmtls_config_set_verify_mode(ccfg, HSMTLS_VERIFY_NONE);
    }
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    hsmtls_dtls_verifier_set_secret(v, "SHA256", fuzz_dtls_secret, sizeof fuzz_dtls_secret);
    hsmtls_dtls *cl = hsmtls_dtls_new(ccfg), *sv = hsmtls_dtls_new(scfg);
    struct sockaddr_in peer = fuzz_dtls_peer();
    FUZZ_CHECK(cl && sv && hsmtls_dtls_set_peer_address(cl, "127.0.0.1", 4433, "fuzz") == 0 &&
                   hsmtls_dtls_set_peer(sv, (struct sockaddr *)&peer, sizeof peer, NULL) == 0 &&
                   hsmtls_dtls_use_verifier_secret(sv, v) == 0,
               "%s", hsmtls_error_message());

    unsigned char dg[4096], reply[300];
    size_t rl, out = 0;
    FUZZ_CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ, "start");
    int n = hsmtls_dtls_take(cl, ch1, 4096);
    *ch1_len = (size_t)n;
    FUZZ_CHECK(hsmtls_dtls_verifier_check(v, ch1, *ch1_len, (struct sockaddr *)&peer, sizeof peer, reply,
                                          sizeof reply, &rl) == 0 && rl > 0, "no HelloVerifyRequest");
    hsmtls_dtls_handshake(cl, reply, rl);
    int cst = HSMTLS_WANT_READ, sst = HSMTLS_WANT_READ, first = 1;
    for (int round = 0; round < 8 && (cst != 0 || sst != 0); round++) {
        while ((n = hsmtls_dtls_take(cl, dg, sizeof dg)) > 0) {
            if (first) {
                memcpy(ch2, dg, (size_t)n);
                *ch2_len = (size_t)n;
                first = 0;
            }
            fuzz_put16(flight + out, (size_t)n);
            memcpy(flight + out + 2, dg, (size_t)n);
            out += 2 + (size_t)n;
            sst = hsmtls_dtls_handshake(sv, dg, (size_t)n);
        }
        while ((n = hsmtls_dtls_take(sv, dg, sizeof dg)) > 0)
            cst = hsmtls_dtls_handshake(cl, dg, (size_t)n);
    }
    FUZZ_CHECK(cst == 0 && sst == 0, "handshake: %s / %s", hsmtls_dtls_error_message(cl),
               hsmtls_dtls_error_message(sv));
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(ccfg);
    hsmtls_config_free(scfg);
    return out;
}

/* The ClientHello in ch (one record) as two datagrams, each a fragment of it. */
static size_t fragment(const unsigned char *ch, size_t len, unsigned char *out)
{
    const size_t R = FUZZ_DTLS_REC, H = FUZZ_DTLS_HS;
    size_t body = fuzz_get24(ch + R + 1), cut = body / 2, o = 0;
    for (int part = 0; part < 2; part++) {
        size_t off = part ? cut : 0, flen = part ? body - cut : cut;
        unsigned char *d = out + o + 2;
        memcpy(d, ch, R + H);
        d[10] = (unsigned char)part; /* record sequence number */
        fuzz_put16(d + 11, H + flen);
        fuzz_put24(d + R + 6, off);
        fuzz_put24(d + R + 9, flen);
        memcpy(d + R + H, ch + R + H + off, flen);
        fuzz_put16(out + o, R + H + flen);
        o += 2 + R + H + flen;
    }
    return o;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    static unsigned char flight[65536], ch1[4096], ch2[4096], frag[8192];
    size_t l1, l2;
    size_t n = handshake("ECDHE-ECDSA-AES128-GCM-SHA256", 0, flight, ch1, &l1, ch2, &l2);
    write_file("fuzz_dtls_verifier", "client-hello", ch1, l1);
    write_file("fuzz_dtls_verifier", "client-hello-cookie", ch2, l2);
    write_file("fuzz_dtls_server", "ecdhe", flight, n);
    write_file("fuzz_dtls_server", "fragmented", frag, fragment(ch2, l2, frag));
    n = handshake("PSK-AES128-GCM-SHA256", 1, flight, ch1, &l1, ch2, &l2);
    write_file("fuzz_dtls_server", "psk", flight, n);
    return 0;
}
