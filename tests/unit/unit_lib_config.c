/* libhsmtls configs, hermetic: the defaults of each role, and a copy of a config with
 * every group set away from its defaults: each group's values copied (the group's own
 * equal, and the getters), the copy independent of the original afterwards (changing
 * or freeing one leaves the other whole, and the copy still builds a connection), and
 * a config that differs in one group only is not equal. The certificate and key are
 * made here in memory; files only in a temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "lib_internal.h"

static char cert_pem[4096], key_pem[4096], cert_file[64] = "/tmp/unit_lib_config_XXXXXX";
static size_t cert_len, key_len;

/* A self-signed P-256 certificate "CN=unit" and its key, as PEM in memory and on file. */
static void make_identity(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
    X509_set_issuer_name(x, n);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    cert_len = (size_t)BIO_read(b, cert_pem, sizeof cert_pem);
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    key_len = (size_t)BIO_read(b, key_pem, sizeof key_pem);
    BIO_free(b);
    int fd = mkstemp(cert_file);
    CHECK(fd >= 0 && write(fd, cert_pem, cert_len) == (ssize_t)cert_len);
    close(fd);
    X509_free(x);
    EVP_PKEY_free(k);
}

static int pin_cb(const hsmtls_pin_request *req, char *buf, size_t size, void *arg) { return -1; }
static void keylog(const hsmtls_conn *c, const char *line, void *arg) {}
static int sni(hsmtls_conn *c, const char *name, hsmtls_config **use, void *arg) { return 0; }
static int psk_server(hsmtls_conn *c, const char *id, unsigned char *psk, size_t max, void *arg) { return 0; }
static uint64_t clock_ms(void *arg) { return 42; }

static int tag; /* the address the callbacks are handed */

/* A server config with every group away from its defaults. */
static hsmtls_config *full_server(void)
{
    hsmtls_config *c = hsmtls_config_new(HSMTLS_SERVER);
    /* protocol */
    CHECK(hsmtls_config_set_protocols(c, HSMTLS_TLS1_2, HSMTLS_TLS1_3) == 0);
    CHECK(hsmtls_config_set_server_preference(c, 0) == 0);
    CHECK(hsmtls_config_set_renegotiation(c, 1) == 0);
    /* credentials */
    CHECK_MSG(hsmtls_config_set_cert_mem(c, cert_pem, cert_len) == 0, hsmtls_config_error(c));
    CHECK_MSG(hsmtls_config_set_key_mem(c, key_pem, key_len) == 0, hsmtls_config_error(c));
    CHECK(hsmtls_config_set_pin_source(c, "/nonexistent/pin") == 0);
    CHECK(hsmtls_config_set_pin_cb(c, pin_cb, &tag) == 0);
    CHECK(hsmtls_config_set_provider_path(c, "/nonexistent/hsmtls.so") == 0);
    /* trust */
    hsmtls_cert *ca = hsmtls_cert_load_mem(cert_pem, cert_len);
    CHECK(hsmtls_config_add_ca_cert(c, ca) == 0);
    hsmtls_cert_free(ca);
    CHECK(hsmtls_config_add_ca_dir(c, "/nonexistent/ca") == 0);
    CHECK(hsmtls_config_use_default_ca(c, 0) == 0);
    CHECK_MSG(hsmtls_config_add_client_ca(c, cert_file) == 0, hsmtls_config_error(c));
    /* verification */
    CHECK(hsmtls_config_set_verify_mode(c, HSMTLS_VERIFY_PEER) == 0);
    CHECK(hsmtls_config_set_verify_depth(c, 3) == 0);
    CHECK(hsmtls_config_set_peer_cert_required(c, 0) == 0);
    CHECK(hsmtls_config_set_check_hostname(c, 1) == 0);
    CHECK(hsmtls_config_set_hostname_cn_fallback(c, 1) == 0);
    CHECK(hsmtls_config_set_verify_flags(c, HSMTLS_VFLAG_PARTIAL_CHAIN) == 0);
    CHECK(hsmtls_config_set_post_handshake_auth(c, 1) == 0);
    /* lists */
    CHECK(hsmtls_config_set_ciphers(c, "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(hsmtls_config_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256") == 0);
    CHECK(hsmtls_config_set_groups(c, "P-256:X25519") == 0);
    CHECK(hsmtls_config_set_backend_option(c, "Options", "-MiddleboxCompat") == 0);
    /* DH */
    CHECK(hsmtls_config_set_dh_group(c, "ffdhe3072") == 0);
    /* sessions */
    CHECK(hsmtls_config_set_session_cache_mode(c, HSMTLS_SESS_CACHE_BOTH) == 0);
    CHECK(hsmtls_config_set_session_cache_size(c, 7) == 0);
    CHECK(hsmtls_config_set_session_tickets(c, 0) == 0);
    CHECK(hsmtls_config_set_session_timeout(c, 77) == 0);
    /* callbacks */
    CHECK(hsmtls_config_set_keylog_cb(c, keylog, &tag) == 0);
    CHECK(hsmtls_config_set_sni_cb(c, sni, &tag) == 0);
    CHECK(hsmtls_config_set_psk_server_cb(c, psk_server, &tag) == 0);
    CHECK(hsmtls_config_set_psk_identity_hint(c, "hint") == 0);
    /* extensions */
    CHECK(hsmtls_config_set_alpn(c, "h2,http/1.1") == 0);
    CHECK(hsmtls_config_set_ocsp_response(c, "\x30\x03\x0a\x01\x00", 5) == 0);
    /* DTLS */
    CHECK(hsmtls_config_set_dtls_cookie_verification(c, 0) == 0);
    CHECK(hsmtls_config_set_dtls_clock(c, clock_ms, &tag) == 0);
    return c;
}

static void check_full_values(const hsmtls_config *c)
{
    CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_2 && hsmtls_config_max_protocol(c) == HSMTLS_TLS1_3);
    CHECK(!hsmtls_config_server_preference(c) && hsmtls_config_renegotiation(c));
    CHECK(hsmtls_config_cert_location(c) == HSMTLS_LOC_MEMORY && hsmtls_config_key_location(c) == HSMTLS_LOC_MEMORY);
    CHECK(hsmtls_config_cert_subject(c) && strcmp(hsmtls_config_cert_subject(c), "CN=unit") == 0);
    CHECK(strcmp(hsmtls_config_provider_path(c), "/nonexistent/hsmtls.so") == 0);
    CHECK(hsmtls_config_ca_count(c) == 1);
    CHECK(hsmtls_config_client_ca_count(c) == 1 && strcmp(hsmtls_config_client_ca_name(c, 0), "CN=unit") == 0);
    CHECK(hsmtls_config_verify_mode(c) == HSMTLS_VERIFY_PEER && hsmtls_config_verify_depth(c) == 3);
    CHECK(!hsmtls_config_peer_cert_required(c) && hsmtls_config_check_hostname(c));
    CHECK(hsmtls_config_hostname_cn_fallback(c) && hsmtls_config_post_handshake_auth(c));
    CHECK(hsmtls_config_verify_flags(c) == HSMTLS_VFLAG_PARTIAL_CHAIN);
    CHECK(strcmp(hsmtls_config_ciphers(c), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    CHECK(strcmp(hsmtls_config_ciphersuites(c), "TLS_AES_128_GCM_SHA256") == 0);
    CHECK(strcmp(hsmtls_config_groups(c), "P-256:X25519") == 0 && hsmtls_config_backend_option_count(c) == 1);
    CHECK(strcmp(hsmtls_config_dh_group(c), "ffdhe3072") == 0 && hsmtls_config_dh_bits(c) == 3072);
    CHECK(hsmtls_config_session_cache_mode(c) == HSMTLS_SESS_CACHE_BOTH && hsmtls_config_session_cache_size(c) == 7);
    CHECK(!hsmtls_config_session_tickets(c) && hsmtls_config_session_timeout(c) == 77);
    CHECK(strcmp(hsmtls_config_psk_identity_hint(c), "hint") == 0);
    CHECK(strcmp(hsmtls_config_alpn(c), "h2,http/1.1") == 0);
    CHECK(!hsmtls_config_dtls_cookie_verification(c));
    /* what has no public getter: the values themselves */
    CHECK(c->creds.pin.cb == pin_cb && c->creds.pin.arg == &tag && strcmp(c->creds.pin.source, "/nonexistent/pin") == 0);
    CHECK(c->trust.n_ca_dirs == 1 && strcmp(c->trust.ca_dirs[0], "/nonexistent/ca") == 0 && c->trust.ca_default == 0);
    CHECK(c->cb.keylog == keylog && c->cb.sni == sni && c->cb.psk_server == psk_server && c->cb.psk_arg == &tag);
    CHECK(c->ext.ocsp_len == 5 && memcmp(c->ext.ocsp, "\x30\x03\x0a\x01\x00", 5) == 0);
    CHECK(c->dtls.clock == clock_ms && c->dtls.clock_arg == &tag);
}

static void test_defaults(void)
{
    for (int role = HSMTLS_CLIENT; role <= HSMTLS_SERVER; role++) {
        hsmtls_config *c = hsmtls_config_new((enum hsmtls_role)role);
        CHECK(c && hsmtls_config_role(c) == (enum hsmtls_role)role);
        CHECK(hsmtls_config_min_protocol(c) == HSMTLS_TLS1_2 && hsmtls_config_max_protocol(c) == 0);
        CHECK(hsmtls_config_verify_mode(c) == HSMTLS_VERIFY_AUTO && hsmtls_config_verify_depth(c) == -1);
        CHECK(hsmtls_config_peer_cert_required(c) == 1);
        CHECK(hsmtls_config_check_hostname(c) == (role == HSMTLS_CLIENT));
        CHECK(hsmtls_config_session_tickets(c) == 1 && hsmtls_config_server_preference(c) == 1);
        CHECK(hsmtls_config_session_cache_mode(c) == HSMTLS_SESS_CACHE_SERVER);
        CHECK(hsmtls_config_session_cache_size(c) == SSL_SESSION_CACHE_MAX_SIZE_DEFAULT);
        CHECK(strcmp(hsmtls_config_dh_group(c), "ffdhe2048") == 0 && hsmtls_config_dh_bits(c) == 2048);
        CHECK(hsmtls_config_dtls_cookie_verification(c) == 1 && c->dtls.clock == NULL);
        CHECK(hsmtls_config_ca_count(c) == 0 && hsmtls_config_cert_location(c) == HSMTLS_LOC_NONE);
        CHECK(hsmtls_config_alpn(c) == NULL && hsmtls_config_ciphers(c) == NULL);
        CHECK(strcmp(hsmtls_config_error(c), "") == 0);
        CHECK(hsmtls_config_is_default(c));
        hsmtls_config *copy = hsmtls_config_copy(c);
        CHECK(copy && hsmtls_config_is_default(copy) && hsmtls_config_equal(c, copy));
        CHECK(hsmtls_config_set_session_timeout(copy, 5) == 0 && !hsmtls_config_is_default(copy));
        hsmtls_config_free(copy);
        hsmtls_config_free(c);
    }
}

static void test_copy(void)
{
    hsmtls_config *src = full_server();
    check_full_values(src);
    hsmtls_config *copy = hsmtls_config_copy(src);
    CHECK_MSG(copy != NULL, hsmtls_error_message());
    if (!copy)
        return;
    /* every group, by its own equal, and the whole */
    for (int i = 0; i < hsmtls__cfg_ngroups; i++)
        CHECK_MSG(hsmtls__cfg_groups[i]->equal(src, copy), hsmtls__cfg_groups[i]->name);
    CHECK(hsmtls_config_equal(src, copy) && !hsmtls_config_is_default(copy));
    check_full_values(copy);
    /* owned values are the copy's own */
    CHECK(copy->creds.pin_source != src->creds.pin_source && copy->creds.pin.source == copy->creds.pin_source);
    CHECK(copy->lists.ciphers != src->lists.ciphers && copy->ext.alpn_wire != src->ext.alpn_wire);
    CHECK(copy->trust.ca_dirs != src->trust.ca_dirs && copy->cb.psk_hint != src->cb.psk_hint);

    /* independent: a change to the copy leaves the original as it was */
    CHECK(hsmtls_config_set_alpn(copy, "h3") == 0 && strcmp(hsmtls_config_alpn(src), "h2,http/1.1") == 0);
    CHECK(!hsmtls_config_equal(src, copy) && !hsmtls__cfg_ext.equal(src, copy) && hsmtls__cfg_lists.equal(src, copy));
    CHECK(hsmtls_config_set_alpn(copy, "h2,http/1.1") == 0 && hsmtls_config_equal(src, copy));
    CHECK(hsmtls_config_add_ca_dir(src, "/nonexistent/ca2") == 0 && copy->trust.n_ca_dirs == 1);
    CHECK(!hsmtls_config_equal(src, copy) && !hsmtls__cfg_trust.equal(src, copy));

    /* freed original: the copy still holds every value and builds a server */
    hsmtls_config_free(src);
    check_full_values(copy);
    hsmtls_conn *conn = hsmtls_conn_new(copy);
    CHECK_MSG(conn != NULL, hsmtls_error_message());
    hsmtls_conn_free(conn);
    hsmtls_config_free(copy);
}

/* Each group is compared: a config differing in that group only is not equal. */
static void test_each_group_compared(void)
{
    hsmtls_config *a = hsmtls_config_new(HSMTLS_SERVER);
    struct { const struct hsmtls_cfg_group *g; int (*change)(hsmtls_config *); } changes[] = {
        { &hsmtls__cfg_protocol, NULL }, { &hsmtls__cfg_creds, NULL }, { &hsmtls__cfg_trust, NULL },
        { &hsmtls__cfg_verify, NULL }, { &hsmtls__cfg_lists, NULL }, { &hsmtls__cfg_dh, NULL },
        { &hsmtls__cfg_session, NULL }, { &hsmtls__cfg_callbacks, NULL }, { &hsmtls__cfg_ext, NULL },
        { &hsmtls__cfg_dtls, NULL },
    };
    CHECK((int)(sizeof changes / sizeof changes[0]) == hsmtls__cfg_ngroups);
    for (int i = 0; i < hsmtls__cfg_ngroups; i++) {
        hsmtls_config *b = hsmtls_config_copy(a);
        const struct hsmtls_cfg_group *g = changes[i].g;
        int ok = 0;
        if (g == &hsmtls__cfg_protocol) ok = hsmtls_config_set_renegotiation(b, 1) == 0;
        if (g == &hsmtls__cfg_creds) ok = hsmtls_config_set_pin_source(b, "/p") == 0;
        if (g == &hsmtls__cfg_trust) ok = hsmtls_config_use_default_ca(b, 1) == 0;
        if (g == &hsmtls__cfg_verify) ok = hsmtls_config_set_verify_depth(b, 2) == 0;
        if (g == &hsmtls__cfg_lists) ok = hsmtls_config_set_groups(b, "P-384") == 0;
        if (g == &hsmtls__cfg_dh) ok = hsmtls_config_set_dh_group(b, "ffdhe4096") == 0;
        if (g == &hsmtls__cfg_session) ok = hsmtls_config_set_session_tickets(b, 0) == 0;
        if (g == &hsmtls__cfg_callbacks) ok = hsmtls_config_set_psk_identity_hint(b, "h") == 0;
        if (g == &hsmtls__cfg_ext) ok = hsmtls_config_set_ocsp_response(b, "x", 1) == 0;
        if (g == &hsmtls__cfg_dtls) ok = hsmtls_config_set_dtls_cookie_verification(b, 0) == 0;
        CHECK_MSG(ok, g->name);
        CHECK_MSG(!hsmtls_config_equal(a, b) && !g->equal(a, b), g->name);
        for (int j = 0; j < hsmtls__cfg_ngroups; j++)
            if (hsmtls__cfg_groups[j] != g)
                CHECK_MSG(hsmtls__cfg_groups[j]->equal(a, b), hsmtls__cfg_groups[j]->name);
        hsmtls_config_free(b);
    }
    /* the table holds every group once */
    for (int i = 0; i < hsmtls__cfg_ngroups; i++)
        for (int j = 0; j < hsmtls__cfg_ngroups; j++)
            CHECK(i == j || hsmtls__cfg_groups[i] != hsmtls__cfg_groups[j]);
    hsmtls_config_free(a);
}

int main(void)
{
    make_identity();
    test_defaults();
    test_copy();
    test_each_group_compared();
    unlink(cert_file);
    return check_finish();
}
