/* libhsmtls API tests for what the key exchange leaves behind: channel bindings (both
 * ends must agree, each value checked against what it is made of), the ephemeral key
 * and its size, and the TLS 1.2 DHE parameters (named groups, custom PEM from a file or
 * memory, bad input). Both ends in this process, over memory.
 * usage: test_lib_binding SANDBOX_DIR CASE TMPDIR  (--list prints the cases) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/cert.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static const char *tmpdir;

/* The binding on both ends, which must agree; its length (0 on any failure). */
static int agreed(hsmtls_conn *cli, hsmtls_conn *srv, const char *type, unsigned char out[64])
{
    unsigned char other[64];
    int a = hsmtls_conn_channel_binding(cli, type, out, 64);
    int b = hsmtls_conn_channel_binding(srv, type, other, sizeof other);
    CHECK_MSG(a > 0 && a == b, hsmtls_conn_error_message(a > 0 ? srv : cli));
    CHECK_MSG(a > 0 && a == b && memcmp(out, other, (size_t)a) == 0, type);
    return a > 0 && a == b ? a : 0;
}

static const char *write_file(const char *name, const char *text);

/* A self-signed certificate for soft/ed25519.key, as a file. */
static const char *self_signed_ed25519(void)
{
    FILE *f = fopen(check_path("soft/ed25519.key"), "r");
    EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    char *pem = NULL, *data;
    BIO *b = BIO_new(BIO_s_mem());
    if (key && x && name && b && X509_set_version(x, X509_VERSION_3) &&
        ASN1_INTEGER_set(X509_get_serialNumber(x), 7) && X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ed25519 self-signed", -1, -1, 0) &&
        X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
        X509_sign(x, key, NULL) > 0 && PEM_write_bio_X509(b, x)) {
        long n = BIO_get_mem_data(b, &data);
        if ((pem = malloc((size_t)n + 1))) {
            memcpy(pem, data, (size_t)n);
            pem[n] = '\0';
        }
    }
    CHECK(pem != NULL);
    const char *path = write_file("ed25519-self.pem", pem ? pem : "");
    free(pem);
    BIO_free(b);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return path;
}

static void case_binding(void)
{
    hsmtls_cert *leaf = hsmtls_cert_load(check_path("certs/ec-p256.pem"));
    unsigned char leaf_sha256[32];
    CHECK(leaf && hsmtls_cert_sha256(leaf, leaf_sha256) == 0);
    unsigned char first_unique[64];
    int versions[] = { HSMTLS_TLS1_2, HSMTLS_TLS1_3 };
    for (int vi = 0; vi < 2; vi++) {
        hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
        CHECK(hsmtls_config_set_protocols(cc, versions[vi], versions[vi]) == 0);
        hsmtls_conn *cli, *srv;
        int rs;
        check_pair(cc, sc, &cli, &srv);
        unsigned char b[64], e[64];
        CHECK(hsmtls_conn_channel_binding(cli, "tls-exporter", b, sizeof b) == HSMTLS_ERROR);
        CHECK(check_contains(hsmtls_conn_error_message(cli), "handshake is not done"));
        CHECK(hsmtls_conn_ephemeral_key_bits(cli) == 0);
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);

        /* tls-exporter: the RFC 5705 exporter with RFC 9266's label, no context */
        CHECK(agreed(cli, srv, "tls-exporter", b) == 32);
        CHECK(hsmtls_conn_export_keying_material(cli, e, 32, "EXPORTER-Channel-Binding", NULL, 0) == 0);
        CHECK(memcmp(b, e, 32) == 0);
        CHECK(hsmtls_conn_export_keying_material(cli, e, 32, "EXPORTER-Channel-Binding", "", 0) == 0);
        if (versions[vi] == HSMTLS_TLS1_2) /* RFC 5705 tells "no context" from an empty one */
            CHECK(memcmp(b, e, 32) != 0);
        /* the length without a buffer, or with one too small (left alone) */
        CHECK(hsmtls_conn_channel_binding(cli, "tls-exporter", NULL, 0) == 32);
        memset(e, 0xAA, sizeof e);
        CHECK(hsmtls_conn_channel_binding(cli, "tls-exporter", e, 16) == 32 && e[0] == 0xAA && e[15] == 0xAA);

        /* tls-server-end-point: the leaf's SHA-256 (its signature's hash) on both ends */
        CHECK(agreed(cli, srv, "tls-server-end-point", b) == 32);
        CHECK(memcmp(b, leaf_sha256, 32) == 0);
        CHECK(hsmtls_conn_channel_binding(cli, "tls-server-end-point", NULL, 0) == 32);

        /* tls-unique: TLS 1.2's first Finished (12 bytes); none in TLS 1.3 */
        if (versions[vi] == HSMTLS_TLS1_2) {
            CHECK(agreed(cli, srv, "tls-unique", first_unique) == 12);
            CHECK(hsmtls_conn_channel_binding(srv, "tls-unique", NULL, 0) == 12);
        } else {
            CHECK(hsmtls_conn_channel_binding(cli, "tls-unique", b, sizeof b) == HSMTLS_ERROR);
            CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "TLS 1.2 only"), hsmtls_conn_error_message(cli));
        }
        CHECK(hsmtls_conn_channel_binding(cli, "tls-fancy", b, sizeof b) == HSMTLS_ERROR);
        CHECK(check_contains(hsmtls_conn_error_message(cli), "\"tls-fancy\": unknown type"));
        CHECK(hsmtls_conn_channel_binding(cli, NULL, b, sizeof b) == HSMTLS_ERROR);

        /* the ephemeral key: X25519 by default, the same on both ends */
        CHECK_MSG(hsmtls_conn_ephemeral_key(cli) && strcmp(hsmtls_conn_ephemeral_key(cli), "X25519") == 0,
                  hsmtls_conn_ephemeral_key(cli));
        CHECK_MSG(hsmtls_conn_ephemeral_key_bits(cli) == 253, hsmtls_conn_version(cli));
        CHECK_MSG(hsmtls_conn_ephemeral_key_bits(srv) == 253, hsmtls_conn_version(cli));
        CHECK(check_exchange(srv, cli, "ticket") == 0);
        hsmtls_session *sess = hsmtls_conn_session(cli);
        check_close(cli, srv);

        /* resumed (TLS 1.2): the server's Finished comes first, a new value on both ends */
        if (versions[vi] == HSMTLS_TLS1_2) {
            check_pair(cc, sc, &cli, &srv);
            CHECK(hsmtls_conn_set_session(cli, sess) == 0);
            CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0 && hsmtls_conn_session_reused(srv));
            CHECK(agreed(cli, srv, "tls-unique", b) == 12);
            CHECK(memcmp(b, first_unique, 12) != 0);
            check_close(cli, srv);
        }
        hsmtls_session_free(sess);
        hsmtls_config_free(sc);
        hsmtls_config_free(cc);
    }
    hsmtls_cert_free(leaf);

    /* a certificate signed with Ed25519 (no separate hash): tls-server-end-point is
     * undefined; the sandbox's are all signed by its ECDSA CA, so make one */
    hsmtls_config *sc = hsmtls_config_new(HSMTLS_SERVER), *cc = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK_MSG(hsmtls_config_set_cert_key(sc, self_signed_ed25519(), check_path("soft/ed25519.key")) == 0,
              hsmtls_config_error(sc));
    CHECK(hsmtls_config_set_verify_mode(cc, HSMTLS_VERIFY_NONE) == 0);
    hsmtls_conn *cli, *srv;
    int rs;
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    unsigned char b[64];
    CHECK(hsmtls_conn_channel_binding(cli, "tls-server-end-point", b, sizeof b) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "undefined for the certificate CN=ed25519 self-signed"),
              hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_channel_binding(srv, "tls-server-end-point", b, sizeof b) == HSMTLS_ERROR);
    CHECK(agreed(cli, srv, "tls-exporter", b) == 32);
    check_close(cli, srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);

    /* TLS 1.2 without the extended master secret (the client does not offer it): the
     * bindings made from the master secret are refused on both ends (RFC 9266 section 3,
     * the triple handshake); tls-server-end-point does not depend on it */
    sc = check_server_config("ec-p256");
    cc = check_client_config();
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    CHECK_MSG(hsmtls_config_set_backend_option(cc, "Options", "-ExtendedMasterSecret") == 0, hsmtls_config_error(cc));
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    hsmtls_conn *ends[] = { cli, srv };
    for (int i = 0; i < 2; i++) {
        const char *types[] = { "tls-exporter", "tls-unique" };
        for (int t = 0; t < 2; t++) {
            CHECK(hsmtls_conn_channel_binding(ends[i], types[t], b, sizeof b) == HSMTLS_ERROR);
            CHECK_MSG(check_contains(hsmtls_conn_error_message(ends[i]), "no extended master secret"),
                      hsmtls_conn_error_message(ends[i]));
            CHECK(hsmtls_conn_channel_binding(ends[i], types[t], NULL, 0) == HSMTLS_ERROR);
        }
    }
    CHECK(agreed(cli, srv, "tls-server-end-point", b) == 32);
    check_close(cli, srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

/* ---- DH parameters ---- */

/* PEM parameters: a named group's, or fresh X9.42 ones of that size (not a named group). */
static char *params_pem(const char *group, int bits, size_t *len)
{
    EVP_PKEY *p = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, group ? "DH" : "DHX", NULL);
    if (pc && EVP_PKEY_paramgen_init(pc) > 0) {
        if (group)
            EVP_PKEY_CTX_set_group_name(pc, group);
        else
            EVP_PKEY_CTX_set_dh_paramgen_prime_len(pc, bits);
        EVP_PKEY_paramgen(pc, &p);
    }
    EVP_PKEY_CTX_free(pc);
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *data;
    if (p && b && PEM_write_bio_Parameters(b, p)) {
        long n = BIO_get_mem_data(b, &data);
        if ((out = malloc((size_t)n + 1))) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(b);
    EVP_PKEY_free(p);
    CHECK(out != NULL);
    return out;
}

static const char *write_file(const char *name, const char *text)
{
    static char path[4][1200];
    static int n;
    n = (n + 1) % 4;
    snprintf(path[n], sizeof path[n], "%s/%s", tmpdir, name);
    FILE *f = fopen(path[n], "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f)
        fclose(f);
    return path[n];
}

/* A TLS 1.2 DHE handshake: the size both ends report for the key exchange. */
static void dhe_sizes(hsmtls_config *sc, int *cli_bits, int *srv_bits)
{
    hsmtls_config *cc = check_client_config();
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    CHECK(hsmtls_config_set_ciphers(cc, "DHE-RSA-AES128-GCM-SHA256") == 0);
    hsmtls_conn *cli, *srv;
    int rs;
    check_pair(cc, sc, &cli, &srv);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    CHECK(check_contains(hsmtls_conn_cipher(cli), "DHE-RSA"));
    *cli_bits = hsmtls_conn_ephemeral_key_bits(cli);
    *srv_bits = hsmtls_conn_ephemeral_key_bits(srv);
    check_close(cli, srv);
    hsmtls_config_free(cc);
}

static void case_dh(void)
{
    hsmtls_config *sc = check_server_config("rsa2048");
    int cb, sb;
    CHECK(strcmp(hsmtls_config_dh_group(sc), "ffdhe2048") == 0 && hsmtls_config_dh_bits(sc) == 2048);
    dhe_sizes(sc, &cb, &sb);
    CHECK(cb == 2048 && sb == 2048);

    /* a named group */
    CHECK(hsmtls_config_set_dh_group(sc, "ffdhe3072") == 0);
    CHECK(strcmp(hsmtls_config_dh_group(sc), "ffdhe3072") == 0 && hsmtls_config_dh_bits(sc) == 3072);
    CHECK(hsmtls_config_set_dh_group(sc, "modp_2048") == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_config_error(sc), "an RFC 7919 group is needed"));
    CHECK(hsmtls_config_dh_bits(sc) == 3072);
    dhe_sizes(sc, &cb, &sb);
    CHECK(cb == 3072 && sb == 3072);

    /* custom parameters from a file: no group name, their own size */
    size_t len;
    char *custom = params_pem(NULL, 2048, &len);
    CHECK_MSG(hsmtls_config_set_dh_params(sc, write_file("dh.pem", custom)) == 0, hsmtls_config_error(sc));
    CHECK(hsmtls_config_dh_group(sc) == NULL && hsmtls_config_dh_bits(sc) == 2048);
    dhe_sizes(sc, &cb, &sb);
    CHECK_MSG(cb == 2048 && sb == 2048, "custom parameters in use");
    /* equality and copies see the parameters */
    hsmtls_config *copy = hsmtls_config_copy(sc);
    CHECK(copy && hsmtls_config_equal(sc, copy) && hsmtls_config_dh_bits(copy) == 2048 &&
          hsmtls_config_dh_group(copy) == NULL);
    /* a named group's parameters from memory are known by name; the last call wins */
    char *named = params_pem("ffdhe4096", 0, &len);
    CHECK_MSG(hsmtls_config_set_dh_params_mem(sc, named, len) == 0, hsmtls_config_error(sc));
    CHECK_MSG(hsmtls_config_dh_group(sc) && strcmp(hsmtls_config_dh_group(sc), "ffdhe4096") == 0,
              hsmtls_config_dh_group(sc));
    CHECK(hsmtls_config_dh_bits(sc) == 4096 && !hsmtls_config_equal(sc, copy));
    CHECK(hsmtls_config_set_dh_group(copy, "ffdhe2048") == 0 && hsmtls_config_dh_bits(copy) == 2048);
    CHECK(strcmp(hsmtls_config_dh_group(copy), "ffdhe2048") == 0);

    /* bad input: named, the old value kept */
    CHECK(hsmtls_config_set_dh_params(sc, check_path("nothing.pem")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(sc), "nothing.pem") &&
              check_contains(hsmtls_config_error(sc), "no such file"), hsmtls_config_error(sc));
    CHECK(hsmtls_config_set_dh_params(sc, check_path("certs/rsa2048.pem")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(sc), "no PEM DH PARAMETERS found"), hsmtls_config_error(sc));
    CHECK(hsmtls_config_set_dh_params_mem(sc, "garbage", 7) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_config_error(sc), "DH parameters in memory"));
    CHECK(hsmtls_config_set_dh_params_mem(sc, NULL, 0) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_dh_params(sc, NULL) == HSMTLS_ERROR);
    const char *ec = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    CHECK(hsmtls_config_set_dh_params_mem(sc, ec, strlen(ec)) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(sc), "EC parameters, not DH"), hsmtls_config_error(sc));
    CHECK(hsmtls_config_dh_bits(sc) == 4096);
    /* under 2048 bits: refused by size, though OpenSSL's security level takes 1024 */
    char *small = params_pem(NULL, 1024, &len);
    CHECK(hsmtls_config_set_dh_params_mem(sc, small, len) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(sc), "a 1024-bit prime is too small (2048 bits at least)"),
              hsmtls_config_error(sc));
    CHECK(hsmtls_config_dh_bits(sc) == 4096);
    free(small);

    free(custom);
    free(named);
    hsmtls_config_free(copy);
    hsmtls_config_free(sc);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = { { "binding", case_binding }, { "dh", case_dh } };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "TMPDIR", 1, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    tmpdir = argv[3];
    return check_run(c);
}
