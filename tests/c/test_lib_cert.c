/* libhsmtls certificate and key objects: loading from files and memory, the getters,
 * PEM and DER round trips, using them in a config, and clear failures.
 * usage: test_lib_cert SANDBOX_DIR certs_and_keys */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "check.h"
#include "hsmtls/cert.h"
#include "hsmtls/conn.h"
#include "hsmtls/key.h"


static void case_certs_and_keys(void)
{
    hsmtls_cert *ca = hsmtls_cert_load(check_path("ca.pem"));
    hsmtls_cert *leaf = hsmtls_cert_load(check_path("certs/rsa2048.chain.pem")); /* the first one */
    CHECK_MSG(ca && leaf, hsmtls_error_message());
    if (!ca || !leaf)
        return;
    CHECK(check_contains(hsmtls_cert_subject(ca), "CN=hsmtls sandbox CA"));
    CHECK(strcmp(hsmtls_cert_subject(ca), hsmtls_cert_issuer(ca)) == 0);
    CHECK(hsmtls_cert_is_self_signed(ca) && !hsmtls_cert_is_self_signed(leaf));
    CHECK(strcmp(hsmtls_cert_subject(leaf), "CN=localhost,OU=rsa2048,O=hsmtls sandbox") == 0);
    CHECK(strcmp(hsmtls_cert_issuer(leaf), hsmtls_cert_subject(ca)) == 0);
    CHECK(hsmtls_cert_serial(leaf)[0] != '\0');
    time_t now = time(NULL);
    CHECK(hsmtls_cert_not_before(leaf) <= now && now < hsmtls_cert_not_after(leaf));

    /* PEM and DER round trips; the same certificate compares equal */
    int n = hsmtls_cert_pem(leaf, NULL, 0);
    CHECK(n > 100);
    char *pem = malloc((size_t)n + 1);
    CHECK(hsmtls_cert_pem(leaf, pem, (size_t)n + 1) == n);
    CHECK(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0 && strlen(pem) == (size_t)n);
    hsmtls_cert *again = hsmtls_cert_load_mem(pem, (size_t)n);
    CHECK(again && hsmtls_cert_equal(leaf, again) && !hsmtls_cert_equal(leaf, ca));
    int dn = hsmtls_cert_der(leaf, NULL, 0);
    unsigned char *der = malloc((size_t)dn);
    CHECK(dn > 100 && hsmtls_cert_der(leaf, der, (size_t)dn) == dn && der[0] == 0x30);
    hsmtls_cert *from_der = hsmtls_cert_load_mem(der, (size_t)dn);
    CHECK_MSG(from_der && hsmtls_cert_equal(from_der, leaf), hsmtls_error_message());
    unsigned char fp[32], want[32];
    unsigned int wl = 0;
    CHECK(hsmtls_cert_sha256(leaf, fp) == 0);
    CHECK(EVP_Digest(der, (size_t)dn, want, &wl, EVP_sha256(), NULL) && wl == 32 && memcmp(fp, want, 32) == 0);
    free(pem);
    free(der);

    /* reference counting */
    CHECK(hsmtls_cert_up_ref(again) == 0);
    hsmtls_cert_free(again);
    CHECK(hsmtls_cert_subject(again) != NULL);
    hsmtls_cert_free(again);
    hsmtls_cert_free(from_der);
    hsmtls_cert_free(NULL);

    /* failures say what and why */
    CHECK(hsmtls_cert_load(check_path("certs/none.pem")) == NULL);
    CHECK_MSG(check_contains(hsmtls_error_message(), "No such file or directory"), hsmtls_error_message());
    CHECK(hsmtls_cert_load(check_path("soft/rsa2048.key")) == NULL);
    CHECK_MSG(check_contains(hsmtls_error_message(), "no certificate found"), hsmtls_error_message());
    CHECK(hsmtls_cert_load_mem("not a certificate", 17) == NULL);

    /* keys */
    const struct { const char *label, *type; int bits; } keys[] = {
        { "rsa2048", "RSA", 2048 }, { "ec-p384", "EC", 384 }, { "ed25519", "ED25519", 256 },
    };
    for (int i = 0; i < 3; i++) {
        char kp[64], cp[64];
        snprintf(kp, sizeof kp, "soft/%s.key", keys[i].label);
        snprintf(cp, sizeof cp, "certs/%s.pem", keys[i].label);
        hsmtls_key *k = hsmtls_key_load(check_path(kp), NULL, NULL);
        hsmtls_cert *c = hsmtls_cert_load(check_path(cp));
        CHECK_MSG(k && c, hsmtls_error_message());
        if (!k || !c)
            continue;
        CHECK_MSG(strcmp(hsmtls_key_type(k), keys[i].type) == 0, hsmtls_key_type(k));
        CHECK(hsmtls_key_bits(k) == keys[i].bits);
        CHECK(hsmtls_key_location(k) == HSMTLS_LOC_FILE && strcmp(hsmtls_key_ref(k), check_path(kp)) == 0);
        CHECK(hsmtls_key_matches(k, c) && !hsmtls_key_matches(k, leaf) == (i != 0));
        char pub[2048];
        int pn = hsmtls_key_public_pem(k, pub, sizeof pub);
        CHECK(pn > 0 && pn < (int)sizeof pub && strncmp(pub, "-----BEGIN PUBLIC KEY-----", 26) == 0);
        CHECK(!check_contains(pub, "PRIVATE"));
        /* objects in a config, with the same match check */
        hsmtls_config *cfg = hsmtls_config_new(HSMTLS_SERVER);
        CHECK(hsmtls_config_use_cert(cfg, c) == 0);
        CHECK(hsmtls_config_use_key(cfg, k) == 0);
        CHECK(hsmtls_config_key_location(cfg) == HSMTLS_LOC_FILE);
        hsmtls_key *other = hsmtls_key_load(check_path(i == 0 ? "soft/ec-p256.key" : "soft/rsa2048.key"), NULL, NULL);
        CHECK(hsmtls_config_use_key(cfg, other) == HSMTLS_ERROR);
        CHECK_MSG(check_contains(hsmtls_config_error(cfg), "does not match the certificate"), hsmtls_config_error(cfg));
        hsmtls_key_free(other);
        hsmtls_conn *conn = hsmtls_conn_new(cfg);
        CHECK_MSG(conn != NULL, hsmtls_error_message());
        hsmtls_conn_free(conn);
        hsmtls_config_free(cfg);
        CHECK(hsmtls_key_up_ref(k) == 0);
        hsmtls_key_free(k);
        hsmtls_key_free(k);
        hsmtls_cert_free(c);
    }
    CHECK(hsmtls_key_load(check_path("certs/rsa2048.pem"), NULL, NULL) == NULL);
    CHECK_MSG(check_contains(hsmtls_error_message(), "no key found"), hsmtls_error_message());
    CHECK(hsmtls_key_load_mem("junk", 4, NULL, NULL) == NULL);

    hsmtls_cert_free(ca);
    hsmtls_cert_free(leaf);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = { { "certs_and_keys", case_certs_and_keys } };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
