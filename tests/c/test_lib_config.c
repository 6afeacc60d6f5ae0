/* libhsmtls config API tests: defaults, every setter with its getter, refusals with
 * clear messages, and the one loader for keys and certificates (files, memory,
 * encrypted keys and the PIN/passphrase callback, key/cert mismatch).
 * usage: test_lib_config SANDBOX_DIR CASE [TMPDIR]  (--list prints the cases) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"
#include "hsmtls/key.h"


static void case_defaults(void)
{
    hsmtls_config *c = hsmtls_config_new(HSMTLS_CLIENT), *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(c && s);
    CHECK(hsmtls_config_new((enum hsmtls_role)7) == NULL);
    CHECK(check_contains(hsmtls_error_message(), "role"));
    CHECK(hsmtls_config_role(c) == HSMTLS_CLIENT && hsmtls_config_role(s) == HSMTLS_SERVER);
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_2);
    CHECK(hsmtls_config_max_protocol(c) == 0);
    CHECK(hsmtls_config_verify_mode(c) == HSMTLS_VERIFY_AUTO);
    CHECK(hsmtls_config_verify_depth(c) == -1);
    CHECK(hsmtls_config_check_hostname(c) == 1 && hsmtls_config_check_hostname(s) == 0);
    CHECK(hsmtls_config_session_tickets(c) == 1);
    CHECK(hsmtls_config_peer_cert_required(s) == 1);
    CHECK(hsmtls_config_key_location(c) == HSMTLS_LOC_NONE && hsmtls_config_key_ref(c) == NULL);
    CHECK(hsmtls_config_alpn(c) == NULL && hsmtls_config_ciphers(c) == NULL);
    CHECK(hsmtls_config_provider_path(c) != NULL);
    CHECK(hsmtls_config_verify_flags(c) == 0 && hsmtls_config_session_timeout(s) == 0);
    CHECK(hsmtls_config_server_preference(s) == 1);
    CHECK(hsmtls_config_hostname_cn_fallback(c) == 0);
    /* null-ness: only the defaults; any change, even one undone by hand, is seen */
    CHECK(hsmtls_config_is_default(c) && hsmtls_config_is_default(s) && !hsmtls_config_is_default(NULL));
    CHECK(hsmtls_config_set_hostname_cn_fallback(c, 1) == 0 && hsmtls_config_hostname_cn_fallback(c) == 1);
    CHECK(!hsmtls_config_is_default(c));
    CHECK(hsmtls_config_set_hostname_cn_fallback(c, 0) == 0 && hsmtls_config_is_default(c));
    CHECK(hsmtls_config_set_session_timeout(s, -1) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_verify_flags(c, HSMTLS_VFLAG_STRICT) == 0);
    CHECK(!hsmtls_config_is_default(c));

    /* legacy protocols need an explicit yes */
    CHECK(hsmtls_config_set_protocols(c, HSMTLS_TLS1_0, 0) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_config_error(c), "TLS 1.0 and 1.1 are refused"));
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_2);
    CHECK(hsmtls_config_set_protocols(c, HSMTLS_TLS1_3, HSMTLS_TLS1_2) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_protocols(c, 0x0305, 0) == HSMTLS_ERROR);
    CHECK(hsmtls_config_allow_legacy_protocols(c, 1) == 0);
    CHECK(hsmtls_config_set_protocols(c, HSMTLS_TLS1_1, HSMTLS_TLS1_2) == 0);
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_1 && hsmtls_config_max_protocol(c) == HSMTLS_TLS1_2);
    CHECK(hsmtls_config_allow_legacy_protocols(c, 0) == 0);
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_2);
    CHECK(hsmtls_config_set_protocols(c, HSMTLS_TLS1_3, HSMTLS_TLS1_3) == 0);
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_3);

    CHECK(hsmtls_config_set_verify_mode(c, HSMTLS_VERIFY_QUERY) == 0);
    CHECK(hsmtls_config_verify_mode(c) == HSMTLS_VERIFY_QUERY);
    CHECK(hsmtls_config_set_verify_mode(c, (enum hsmtls_verify_mode)9) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_verify_depth(c, 3) == 0 && hsmtls_config_verify_depth(c) == 3);
    CHECK(hsmtls_config_set_verify_depth(c, -5) == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_check_hostname(c, 0) == 0 && hsmtls_config_check_hostname(c) == 0);
    CHECK(hsmtls_config_set_peer_cert_required(s, 0) == 0 && hsmtls_config_peer_cert_required(s) == 0);
    CHECK(hsmtls_config_set_session_tickets(s, 0) == 0 && hsmtls_config_session_tickets(s) == 0);

    /* lists are checked when set, with OpenSSL's reason */
    CHECK(hsmtls_config_set_ciphers(c, "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(strcmp(hsmtls_config_ciphers(c), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_set_ciphers(c, "NO-SUCH-CIPHER") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(c), "no cipher match"), hsmtls_config_error(c));
    CHECK(strcmp(hsmtls_config_ciphers(c), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256") == 0);
    CHECK(strcmp(hsmtls_config_ciphersuites(c), "TLS_AES_128_GCM_SHA256") == 0);
    CHECK(hsmtls_config_set_ciphersuites(c, "TLS_NOPE") == HSMTLS_ERROR);
    CHECK(hsmtls_config_set_groups(c, "X25519:P-256") == 0);
    CHECK(strcmp(hsmtls_config_groups(c), "X25519:P-256") == 0);
    CHECK(hsmtls_config_set_groups(c, "nosuchgroup") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(c), "groups \"nosuchgroup\" rejected"), hsmtls_config_error(c));
    CHECK(hsmtls_config_set_alpn(c, "h2,http/1.1") == 0);
    CHECK(strcmp(hsmtls_config_alpn(c), "h2,http/1.1") == 0);
    CHECK(hsmtls_config_set_alpn(c, "h2,,x") == HSMTLS_ERROR);
    CHECK(strcmp(hsmtls_config_alpn(c), "h2,http/1.1") == 0);
    CHECK(hsmtls_config_set_backend_option(c, "Options", "-SessionTicket") == 0);
    CHECK(hsmtls_config_backend_option_count(c) == 1);
    CHECK(hsmtls_config_set_backend_option(c, "NoSuchCommand", "x") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(c), "NoSuchCommand"), hsmtls_config_error(c));
    CHECK(hsmtls_config_backend_option_count(c) == 1);

    /* CA certificates */
    CHECK(hsmtls_config_add_ca(c, check_path("ca.pem")) == 0);
    CHECK(hsmtls_config_ca_count(c) == 1);
    CHECK(hsmtls_config_add_ca(c, check_path("nope.pem")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(c), "No such file"), hsmtls_config_error(c));
    CHECK(hsmtls_config_add_ca_dir(c, "/etc/ssl/certs") == 0);
    CHECK(hsmtls_config_use_default_ca(c, 1) == 0);

    /* copy: same values, independent object */
    hsmtls_config *d = hsmtls_config_copy(c);
    CHECK(d != NULL);
    CHECK(hsmtls_config_min_protocol(d) == HSMTLS_TLS1_3 && hsmtls_config_verify_mode(d) == HSMTLS_VERIFY_QUERY);
    CHECK(strcmp(hsmtls_config_alpn(d), "h2,http/1.1") == 0 && hsmtls_config_ca_count(d) == 1);
    CHECK(strcmp(hsmtls_config_groups(d), "X25519:P-256") == 0);
    CHECK(hsmtls_config_backend_option_count(d) == 1);
    CHECK(hsmtls_config_verify_flags(d) == HSMTLS_VFLAG_STRICT);
    CHECK(hsmtls_config_set_alpn(d, NULL) == 0 && hsmtls_config_alpn(d) == NULL);
    CHECK(strcmp(hsmtls_config_alpn(c), "h2,http/1.1") == 0);

    /* reference counting */
    CHECK(hsmtls_config_up_ref(d) == 0);
    hsmtls_config_free(d);
    CHECK(hsmtls_config_verify_depth(d) == 3); /* still alive */
    hsmtls_config_free(d);
    hsmtls_config_free(c);
    hsmtls_config_free(s);
    hsmtls_config_free(NULL);
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void case_loading(void)
{
    const char *labels[] = { "rsa2048", "ec-p256", "ed25519" };
    for (size_t i = 0; i < 3; i++) {
        hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
        char cert[64], key[64];
        snprintf(cert, sizeof cert, "certs/%s.chain.pem", labels[i]);
        snprintf(key, sizeof key, "soft/%s.key", labels[i]);
        CHECK_MSG(hsmtls_config_set_cert_key(s, check_path(cert), check_path(key)) == 0, hsmtls_config_error(s));
        CHECK(hsmtls_config_key_location(s) == HSMTLS_LOC_FILE);
        CHECK(hsmtls_config_cert_location(s) == HSMTLS_LOC_FILE);
        CHECK(strcmp(hsmtls_config_key_ref(s), check_path(key)) == 0);
        CHECK(hsmtls_config_cert_ref(s) && strcmp(hsmtls_config_cert_ref(s), check_path(cert)) == 0);
        CHECK(strcmp(hsmtls_location_name(hsmtls_config_key_location(s)), "file") == 0);
        CHECK(check_contains(hsmtls_config_cert_subject(s), "CN=localhost"));
        hsmtls_conn *conn = hsmtls_conn_new(s);
        CHECK_MSG(conn != NULL, hsmtls_error_message());
        hsmtls_conn_free(conn);
        hsmtls_config_free(s);
    }
    /* file: URIs go the same way */
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    char uri[1300];
    snprintf(uri, sizeof uri, "file:%s", check_path("soft/ec-p256.key"));
    CHECK_MSG(hsmtls_config_set_cert(s, check_path("certs/ec-p256.pem")) == 0, hsmtls_config_error(s));
    CHECK_MSG(hsmtls_config_set_key(s, uri) == 0, hsmtls_config_error(s));
    CHECK(hsmtls_config_key_location(s) == HSMTLS_LOC_FILE);

    /* a key that is not the certificate's: refused, the old one kept */
    CHECK(hsmtls_config_set_key(s, check_path("soft/ec-p384.key")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "does not match the certificate"), hsmtls_config_error(s));
    CHECK(strcmp(hsmtls_config_key_ref(s), uri) == 0);
    CHECK(hsmtls_config_set_cert_key(s, check_path("certs/rsa2048.pem"), check_path("soft/ed25519.key")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "soft/ed25519.key does not match the certificate"), hsmtls_config_error(s));
    CHECK(check_contains(hsmtls_config_cert_subject(s), "OU=ec-p256"));
    CHECK(hsmtls_config_set_cert_key(s, check_path("certs/rsa2048.pem"), check_path("soft/rsa2048.key")) == 0);
    CHECK(check_contains(hsmtls_config_cert_subject(s), "OU=rsa2048"));
    /* missing files and non-key files */
    CHECK(hsmtls_config_set_key(s, check_path("soft/nothing.key")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "No such file or directory"), hsmtls_config_error(s));
    CHECK(hsmtls_config_set_key(s, check_path("ca.pem")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "no key found"), hsmtls_config_error(s));
    CHECK(strcmp(hsmtls_error_message(), hsmtls_config_error(s)) == 0);

    /* CA certificates by glob: every certificate of every match (a chain file holds two) */
    hsmtls_config *g = hsmtls_config_new(HSMTLS_CLIENT);
    char pattern[1300];
    snprintf(pattern, sizeof pattern, "%s", check_path("certs/ec-p[23]*.pem"));
    CHECK_MSG(hsmtls_config_add_ca_glob(g, pattern) == 6, hsmtls_config_error(g)); /* 256, 384: leaf, chain */
    CHECK(hsmtls_config_ca_count(g) == 6);
    snprintf(pattern, sizeof pattern, "%s", check_path("certs/nothing*.pem"));
    CHECK(hsmtls_config_add_ca_glob(g, pattern) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(g), "matches no file"), hsmtls_config_error(g));
    snprintf(pattern, sizeof pattern, "%s", check_path("[cp]*.txt")); /* objects.txt, pin.txt: no certificates */
    CHECK(hsmtls_config_add_ca_glob(g, pattern) == HSMTLS_ERROR);
    CHECK(hsmtls_config_ca_count(g) == 6);
    CHECK(hsmtls_config_add_ca_glob(g, NULL) == HSMTLS_ERROR);
    hsmtls_config_free(g);

    /* memory */
    size_t clen = 0, klen = 0;
    char *cmem = slurp(check_path("certs/ec-p256.pem"), &clen), *kmem = slurp(check_path("soft/ec-p256.key"), &klen);
    CHECK(cmem && kmem);
    hsmtls_config *m = hsmtls_config_new(HSMTLS_SERVER);
    CHECK_MSG(hsmtls_config_set_cert_mem(m, cmem, clen) == 0, hsmtls_config_error(m));
    CHECK_MSG(hsmtls_config_set_key_mem(m, kmem, klen) == 0, hsmtls_config_error(m));
    CHECK(hsmtls_config_key_location(m) == HSMTLS_LOC_MEMORY && hsmtls_config_key_ref(m) == NULL);
    CHECK(hsmtls_config_cert_ref(m) == NULL);
    CHECK(strcmp(hsmtls_location_name(hsmtls_config_cert_location(m)), "memory") == 0);
    CHECK(strcmp(hsmtls_location_name(HSMTLS_LOC_TOKEN), "token") == 0);
    CHECK(strcmp(hsmtls_location_name(HSMTLS_LOC_NONE), "none") == 0);
    CHECK(strcmp(hsmtls_location_name((enum hsmtls_location)42), "none") == 0);
    CHECK(hsmtls_config_set_key_mem(m, "garbage", 7) == HSMTLS_ERROR);
    free(cmem);
    free(kmem);

    /* a server without a key cannot make connections, and says so */
    hsmtls_config *e = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(hsmtls_conn_new(e) == NULL);
    CHECK_MSG(check_contains(hsmtls_error_message(), "no certificate and key"), hsmtls_error_message());
    hsmtls_config_free(e);
    hsmtls_config_free(m);
    hsmtls_config_free(s);
}

struct answers {
    const char *list[4];
    int n, asked, retries, is_token;
    char last_ref[1200], last_token[64];
};

static int answer(const hsmtls_pin_request *req, char *buf, size_t size, void *arg)
{
    struct answers *a = arg;
    a->asked++;
    a->retries += req->retry;
    snprintf(a->last_ref, sizeof a->last_ref, "%s", req->ref);
    snprintf(a->last_token, sizeof a->last_token, "%s", req->token ? req->token : "(none)");
    a->is_token = req->is_token;
    CHECK(req->prompt && req->prompt[0]);
    if (a->n >= 4 || !a->list[a->n])
        return -1;
    snprintf(buf, size, "%s", a->list[a->n++]);
    return (int)strlen(buf);
}

static void case_passphrase(const char *tmpdir)
{
    /* An encrypted copy of a sandbox key, made here. */
    char enc[1200], pinfile[1200];
    snprintf(enc, sizeof enc, "%s/enc.key", tmpdir);
    snprintf(pinfile, sizeof pinfile, "%s/pass.txt", tmpdir);
    FILE *f = fopen(check_path("soft/ec-p256.key"), "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(k != NULL);
    f = fopen(enc, "w");
    CHECK(f && PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"s3cret"));
    if (f)
        fclose(f);
    EVP_PKEY_free(k);

    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(hsmtls_config_set_cert(s, check_path("certs/ec-p256.pem")) == 0);
    /* no callback: a clear refusal, never a terminal prompt */
    CHECK(hsmtls_config_set_key(s, enc) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "no PIN/passphrase callback"), hsmtls_config_error(s));
    /* wrong, then right: the second ask says the first was rejected */
    struct answers a = { .list = { "wrong", "s3cret" } };
    hsmtls_config_set_pin_cb(s, answer, &a);
    CHECK_MSG(hsmtls_config_set_key(s, enc) == 0, hsmtls_config_error(s));
    CHECK(a.asked == 2 && a.retries == 1);
    CHECK(strcmp(a.last_ref, enc) == 0);
    CHECK(a.is_token == 0 && strcmp(a.last_token, "(none)") == 0);
    /* always wrong: gives up after the callback does */
    struct answers b = { .list = { "x", "y", "z" } };
    hsmtls_config_set_pin_cb(s, answer, &b);
    CHECK(hsmtls_config_set_key(s, enc) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "wrong passphrase"), hsmtls_config_error(s));
    CHECK(b.asked == 3);
    struct answers none = { .list = { NULL } };
    hsmtls_config_set_pin_cb(s, answer, &none);
    CHECK(hsmtls_config_set_key(s, enc) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "no passphrase given"), hsmtls_config_error(s));
    CHECK(!check_contains(hsmtls_config_error(s), "s3cret"));
    /* a pin-source file */
    hsmtls_config_set_pin_cb(s, NULL, NULL);
    f = fopen(pinfile, "w");
    fputs("s3cret\n", f);
    fclose(f);
    CHECK(hsmtls_config_set_pin_source(s, pinfile) == 0);
    CHECK_MSG(hsmtls_config_set_key(s, enc) == 0, hsmtls_config_error(s));
    f = fopen(pinfile, "w");
    fputs("nope\n", f);
    fclose(f);
    CHECK(hsmtls_config_set_key(s, enc) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "wrong passphrase in the pin-source file"), hsmtls_config_error(s));
    hsmtls_config_free(s);
    unlink(enc);
    unlink(pinfile);
}

/* Keys and certificates on the sandbox's server token, through the same calls. */
static void case_token(void)
{
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(hsmtls_config_set_cert(s, check_path("certs/ec-p256.pem")) == 0);
    const char *uri = "pkcs11:token=server;object=ec-p256;type=private";
    /* no PIN anywhere: refused, no prompt */
    CHECK(hsmtls_config_set_key(s, uri) == HSMTLS_ERROR);
    CHECK_MSG(hsmtls_config_error(s)[0] != '\0', "no message");
    /* the callback is asked, told the URI and the token */
    struct answers a = { .list = { "1234" } };
    hsmtls_config_set_pin_cb(s, answer, &a);
    CHECK_MSG(hsmtls_config_set_key(s, uri) == 0, hsmtls_config_error(s));
    CHECK(a.asked >= 1 && a.retries == 0);
    CHECK(strcmp(a.last_ref, uri) == 0);
    CHECK(a.is_token == 1 && strcmp(a.last_token, "server") == 0);
    CHECK(hsmtls_config_key_location(s) == HSMTLS_LOC_TOKEN);
    CHECK(strcmp(hsmtls_config_key_ref(s), uri) == 0);
    /* a wrong PIN: refused, and the PIN is in no message */
    struct answers w = { .list = { "9999" } };
    hsmtls_config_set_pin_cb(s, answer, &w);
    CHECK(hsmtls_config_set_key(s, "pkcs11:token=server;object=ec-p384;type=private") == HSMTLS_ERROR);
    CHECK_MSG(!check_contains(hsmtls_config_error(s), "9999"), hsmtls_config_error(s));
    CHECK(hsmtls_config_key_location(s) == HSMTLS_LOC_TOKEN);
    /* the PIN in the URI works too and never shows in the reference kept */
    hsmtls_config_set_pin_cb(s, NULL, NULL);
    CHECK_MSG(hsmtls_config_set_key(s, "pkcs11:token=server;object=ec-p256;type=private?pin-value=1234") == 0,
              hsmtls_config_error(s));
    CHECK(strcmp(hsmtls_config_key_ref(s), uri) == 0);
    /* a token key that is not the certificate's */
    CHECK(hsmtls_config_set_key(s, "pkcs11:token=server;object=rsa2048;type=private?pin-value=1234") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "does not match the certificate"), hsmtls_config_error(s));
    CHECK(!check_contains(hsmtls_config_error(s), "1234"));
    hsmtls_conn *conn = hsmtls_conn_new(s);
    CHECK_MSG(conn != NULL, hsmtls_error_message());
    hsmtls_conn_free(conn);
    /* the certificate from the token too */
    const char *cert_uri = "pkcs11:token=server;object=ec-p256;type=cert";
    CHECK_MSG(hsmtls_config_set_cert(s, cert_uri) == 0, hsmtls_config_error(s));
    CHECK(hsmtls_config_cert_location(s) == HSMTLS_LOC_TOKEN);
    CHECK(hsmtls_config_cert_ref(s) && strcmp(hsmtls_config_cert_ref(s), cert_uri) == 0);
    CHECK(strcmp(hsmtls_location_name(hsmtls_config_cert_location(s)), "token") == 0);
    hsmtls_cert *on_token = hsmtls_cert_load(cert_uri), *in_file = hsmtls_cert_load(check_path("certs/ec-p256.pem"));
    CHECK_MSG(on_token && in_file && hsmtls_cert_equal(on_token, in_file), hsmtls_error_message());
    /* a key object on the token: a handle, its public half readable */
    struct answers k = { .list = { "1234" } };
    hsmtls_key *tk = hsmtls_key_load("pkcs11:token=server;object=ec-p256;type=private", answer, &k);
    CHECK_MSG(tk != NULL, hsmtls_error_message());
    if (tk) {
        CHECK(hsmtls_key_location(tk) == HSMTLS_LOC_TOKEN);
        CHECK(strcmp(hsmtls_key_type(tk), "EC") == 0 && hsmtls_key_bits(tk) == 256);
        CHECK(hsmtls_key_matches(tk, in_file));
        CHECK(hsmtls_key_public_pem(tk, NULL, 0) > 0);
        CHECK(hsmtls_config_use_key(s, tk) == 0);
        CHECK(hsmtls_config_key_location(s) == HSMTLS_LOC_TOKEN);
        hsmtls_key_free(tk);
    }
    hsmtls_cert_free(on_token);
    hsmtls_cert_free(in_file);
    hsmtls_config_free(s);
}

/* Run with HSMTLS_PROVIDER naming no module: pkcs11: URIs fail clearly, files still work. */
static void case_noprovider(void)
{
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK(hsmtls_config_set_key(s, "pkcs11:token=server;object=ec-p256;type=private?pin-value=1234") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "the hsmtls provider is not available"), hsmtls_config_error(s));
    CHECK_MSG(!check_contains(hsmtls_config_error(s), "1234"), hsmtls_config_error(s));
    CHECK(check_contains(hsmtls_config_error(s), "pkcs11:token=server;object=ec-p256;type=private"));
    CHECK(hsmtls_config_set_cert_key(s, check_path("certs/ec-p256.pem"), check_path("soft/ec-p256.key")) == 0);
    CHECK(hsmtls_config_set_provider_path(s, "/nonexistent/dir") == 0);
    CHECK(strcmp(hsmtls_config_provider_path(s), "/nonexistent/dir") == 0);
    CHECK(hsmtls_config_add_ca(s, "pkcs11:token=server;object=ca") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(s), "/nonexistent/dir"), hsmtls_config_error(s));
    hsmtls_config_free(s);
}

static const char *tmpdir;
static void run_passphrase(void) { case_passphrase(tmpdir); }

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "defaults", case_defaults }, { "loading", case_loading }, { "passphrase", run_passphrase },
        { "token", case_token }, { "noprovider", case_noprovider },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "[TMPDIR]", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    tmpdir = argc > 3 ? argv[3] : "/tmp";
    return check_run(c);
}
