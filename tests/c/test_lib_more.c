/* libhsmtls API tests for the second slice: sessions as bytes, config equality, the
 * supported lists, CRLs with the CRL-check flags, client CA names, post-handshake client
 * authentication and TLS 1.2 renegotiation. Both ends in this process, over memory.
 * usage: test_lib_more SANDBOX_DIR CASE [CRL_FILE]
 * (CASE: session, equal, lists, crl, clientca, pha, reneg) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static const char *crl_file;

static void both_free(hsmtls_conn *a, hsmtls_conn *b)
{
    hsmtls_conn_free(a);
    hsmtls_conn_free(b);
}

/* ---- sessions as bytes ---- */

static void case_session(void)
{
    int versions[] = { HSMTLS_TLS1_2, HSMTLS_TLS1_3 };
    for (int vi = 0; vi < 2; vi++) {
        hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
        CHECK(hsmtls_config_set_session_timeout(sc, 600) == 0);
        CHECK(hsmtls_config_set_protocols(cc, versions[vi], versions[vi]) == 0);
        hsmtls_conn *cli, *srv;
        int rs;
        check_pair(cc, sc, &cli, &srv);
        CHECK(hsmtls_conn_session(cli) == NULL); /* none before the handshake */
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        CHECK(check_exchange(srv, cli, "ticket, please") == 0);
        hsmtls_session *sess = hsmtls_conn_session(cli);
        CHECK(sess != NULL);
        CHECK(hsmtls_session_has_ticket(sess) == 1);
        CHECK(hsmtls_session_ticket_lifetime_hint(sess) == 600);
        CHECK(hsmtls_session_version(sess) == versions[vi]);
        int need = hsmtls_session_save(sess, NULL, 0);
        CHECK(need > 0);
        unsigned char *der = malloc((size_t)need);
        CHECK(hsmtls_session_save(sess, der, 10) == HSMTLS_ERROR);
        CHECK(hsmtls_session_save(sess, der, (size_t)need) == need);
        CHECK(hsmtls_session_up_ref(sess) == 0);
        hsmtls_session_free(sess);
        hsmtls_session_free(sess);
        CHECK(hsmtls_conn_shutdown(cli) == 0 && hsmtls_conn_shutdown(srv) == 0);
        both_free(cli, srv);

        /* a session from its bytes resumes */
        hsmtls_session *back = hsmtls_session_load(der, (size_t)need);
        CHECK(back != NULL);
        CHECK(hsmtls_session_load("junk", 4) == NULL && check_contains(hsmtls_error_message(), "not a TLS session"));
        CHECK(hsmtls_session_load(NULL, 0) == NULL);
        check_pair(cc, sc, &cli, &srv);
        CHECK(hsmtls_conn_set_session(cli, back) == 0);
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        CHECK(hsmtls_conn_session_reused(cli) && hsmtls_conn_session_reused(srv));
        both_free(cli, srv);
        /* tickets off: a new session each time, and no ticket in it */
        CHECK(hsmtls_config_set_session_tickets(sc, 0) == 0);
        check_pair(cc, sc, &cli, &srv);
        CHECK(hsmtls_conn_set_session(cli, back) == 0);
        CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
        CHECK(!hsmtls_conn_session_reused(cli));
        CHECK(check_exchange(srv, cli, "no ticket") == 0);
        hsmtls_session *plain = hsmtls_conn_session(cli);
        if (versions[vi] == HSMTLS_TLS1_2) /* a session ID is still resumable */
            CHECK(plain && !hsmtls_session_has_ticket(plain));
        else
            CHECK(plain == NULL);
        hsmtls_session_free(plain);
        both_free(cli, srv);
        hsmtls_session_free(back);
        free(der);
        hsmtls_config_free(sc);
        hsmtls_config_free(cc);
    }
}

/* ---- equality and copies ---- */

static void case_equal(void)
{
    hsmtls_config *a = check_server_config("ec-p256"), *b = check_server_config("ec-p256");
    CHECK(hsmtls_config_equal(a, a) && hsmtls_config_equal(a, b));
    CHECK(!hsmtls_config_equal(a, NULL) && hsmtls_config_equal(NULL, NULL));
    hsmtls_config *c = hsmtls_config_copy(a);
    CHECK(hsmtls_config_equal(a, c));
    CHECK(hsmtls_config_set_alpn(c, "h2") == 0);
    CHECK(!hsmtls_config_equal(a, c));
    CHECK(hsmtls_config_set_alpn(a, "h2") == 0);
    CHECK(hsmtls_config_equal(a, c));
    /* the same key from another file of the same content: equal by content */
    CHECK(hsmtls_config_set_cert_key(b, check_path("certs/rsa2048.pem"), check_path("soft/rsa2048.key")) == 0);
    CHECK(hsmtls_config_set_alpn(b, "h2") == 0);
    CHECK(!hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_cert_key(b, check_path("certs/ec-p256.pem"), check_path("soft/ec-p256.key")) == 0);
    CHECK(hsmtls_config_equal(a, b));
    /* every new value takes part, and survives a copy */
    CHECK(hsmtls_config_set_renegotiation(b, 1) == 0 && !hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_renegotiation(a, 1) == 0 && hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_post_handshake_auth(b, 1) == 0 && !hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_post_handshake_auth(a, 1) == 0 && hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_add_client_ca(b, check_path("ca.pem")) == 0 && !hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_add_client_ca(a, check_path("ca.pem")) == 0 && hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_verify_flags(a, HSMTLS_VFLAG_STRICT) == 0 && !hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_verify_flags(b, HSMTLS_VFLAG_STRICT) == 0 && hsmtls_config_equal(a, b));
    CHECK(hsmtls_config_set_backend_option(a, "Options", "-SessionTicket") == 0 && !hsmtls_config_equal(a, b));
    hsmtls_config_free(c);
    c = hsmtls_config_copy(a);
    CHECK(hsmtls_config_equal(a, c));
    CHECK(hsmtls_config_client_ca_count(c) == 1 && hsmtls_config_renegotiation(c) == 1 &&
          hsmtls_config_post_handshake_auth(c) == 1);
    hsmtls_config *cl = hsmtls_config_new(HSMTLS_CLIENT), *cl2 = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK(!hsmtls_config_equal(a, cl) && hsmtls_config_equal(cl, cl2));
    CHECK(hsmtls_config_add_ca(cl, check_path("ca.pem")) == 0 && !hsmtls_config_equal(cl, cl2));
    hsmtls_config_free(cl);
    hsmtls_config_free(cl2);
    hsmtls_config_free(a);
    hsmtls_config_free(b);
    hsmtls_config_free(c);
}

/* ---- supported lists ---- */

static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ':') && (p[n] == ':' || p[n] == '\0'))
            return 1;
    return 0;
}

static void case_lists(void)
{
    hsmtls_config *c = hsmtls_config_new(HSMTLS_CLIENT);
    char *ciphers = hsmtls_config_supported_ciphers(c);
    char *suites = hsmtls_config_supported_ciphersuites(c);
    char *groups = hsmtls_config_supported_groups(c);
    CHECK_MSG(in_list(ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256"), ciphers);
    CHECK(in_list(ciphers, "DHE-RSA-AES256-GCM-SHA384"));
    CHECK(!in_list(ciphers, "TLS_AES_128_GCM_SHA256"));
    CHECK_MSG(in_list(suites, "TLS_AES_128_GCM_SHA256") && in_list(suites, "TLS_CHACHA20_POLY1305_SHA256"), suites);
    CHECK(!in_list(suites, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    CHECK_MSG(in_list(groups, "X25519") && in_list(groups, "P-256") && in_list(groups, "ffdhe2048"), groups);
    /* every supported name is accepted by the setters */
    CHECK_MSG(hsmtls_config_set_ciphers(c, ciphers) == 0, hsmtls_config_error(c));
    CHECK_MSG(hsmtls_config_set_ciphersuites(c, suites) == 0, hsmtls_config_error(c));
    CHECK_MSG(hsmtls_config_set_groups(c, groups) == 0, hsmtls_config_error(c));
    free(ciphers);
    free(suites);
    free(groups);
    hsmtls_config_free(c);
}

/* ---- CRLs ---- */

static int has_error(hsmtls_conn *c, long code)
{
    for (int i = 0; i < hsmtls_conn_verify_error_count(c); i++) {
        long got;
        hsmtls_conn_verify_error(c, i, &got, NULL);
        if (got == code)
            return 1;
    }
    return 0;
}

static void case_crl(void)
{
    CHECK_MSG(crl_file != NULL, "usage: test_lib_more SANDBOX crl CRL_FILE");
    if (!crl_file)
        return;
    hsmtls_config *revoked = check_server_config("rsa2048"), *good = check_server_config("ec-p256");
    hsmtls_config *cc = check_client_config();
    hsmtls_conn *cli, *srv;
    int rs;
    CHECK(hsmtls_config_add_crl(cc, check_path("ca.pem")) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_config_error(cc), "holds no CRL"), hsmtls_config_error(cc));
    CHECK(hsmtls_config_add_crl(cc, check_path("nothing.crl")) == HSMTLS_ERROR);
    CHECK(hsmtls_config_crl_count(cc) == 0);
    /* the check asked for without a CRL: "unable to get certificate CRL" */
    CHECK(hsmtls_config_set_verify_flags(cc, HSMTLS_VFLAG_CRL_CHECK) == 0);
    check_pair(cc, good, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    CHECK_MSG(has_error(cli, X509_V_ERR_UNABLE_TO_GET_CRL), hsmtls_conn_error_message(cli));
    both_free(cli, srv);
    /* with the CRL: the revoked certificate fails, the others pass */
    CHECK_MSG(hsmtls_config_add_crl(cc, crl_file) == 0, hsmtls_config_error(cc));
    CHECK(hsmtls_config_crl_count(cc) == 1);
    check_pair(cc, good, &cli, &srv);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_peer_verified(cli));
    both_free(cli, srv);
    check_pair(cc, revoked, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR);
    CHECK(has_error(cli, X509_V_ERR_CERT_REVOKED));
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "certificate revoked"), hsmtls_conn_error_message(cli));
    both_free(cli, srv);
    /* the whole chain: the CA's own CRL would be needed from its issuer, but the root
     * is trusted, so CHECK_ALL passes for the good certificate too */
    CHECK(hsmtls_config_set_verify_flags(cc, HSMTLS_VFLAG_CRL_CHECK_ALL) == 0);
    check_pair(cc, good, &cli, &srv);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    both_free(cli, srv);
    /* without the flags the CRL is not consulted */
    CHECK(hsmtls_config_set_verify_flags(cc, 0) == 0);
    check_pair(cc, revoked, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    both_free(cli, srv);
    /* the copy has it too */
    CHECK(hsmtls_config_set_verify_flags(cc, HSMTLS_VFLAG_CRL_CHECK) == 0);
    hsmtls_config *copy = hsmtls_config_copy(cc);
    CHECK(hsmtls_config_crl_count(copy) == 1 && hsmtls_config_equal(cc, copy));
    check_pair(copy, revoked, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == HSMTLS_ERROR && has_error(cli, X509_V_ERR_CERT_REVOKED));
    both_free(cli, srv);
    hsmtls_config_free(copy);
    hsmtls_config_free(cc);
    hsmtls_config_free(good);
    hsmtls_config_free(revoked);
}

/* ---- client CA names ---- */

static void case_clientca(void)
{
    hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
    CHECK(hsmtls_config_add_client_ca(cc, check_path("ca.pem")) == HSMTLS_ERROR); /* servers only */
    CHECK(hsmtls_config_add_ca(sc, check_path("ca.pem")) == 0);
    CHECK(hsmtls_config_set_verify_mode(sc, HSMTLS_VERIFY_PEER) == 0);
    CHECK(hsmtls_config_set_peer_cert_required(sc, 0) == 0);
    CHECK(hsmtls_config_client_ca_count(sc) == 0 && hsmtls_config_client_ca_name(sc, 0) == NULL);
    hsmtls_conn *cli, *srv;
    int rs;
    /* by default: the trusted CAs' names */
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_peer_ca_count(cli) == 1);
    CHECK_MSG(check_contains(hsmtls_conn_peer_ca_name(cli, 0), "CN=hsmtls sandbox CA"), hsmtls_conn_peer_ca_name(cli, 0));
    CHECK(hsmtls_conn_peer_ca_count(srv) == 0);
    both_free(cli, srv);
    /* an explicit list replaces them */
    CHECK(hsmtls_config_add_client_ca(sc, check_path("certs/client-p256.pem")) == 0);
    CHECK(hsmtls_config_add_client_ca(sc, check_path("certs/ed25519.pem")) == 0);
    CHECK(hsmtls_config_add_client_ca(sc, check_path("nothing.pem")) == HSMTLS_ERROR);
    CHECK(hsmtls_config_client_ca_count(sc) == 2);
    CHECK(check_contains(hsmtls_config_client_ca_name(sc, 0), "CN=client-p256"));
    CHECK(check_contains(hsmtls_config_client_ca_name(sc, 1), "OU=ed25519"));
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_peer_ca_count(cli) == 2);
    CHECK(check_contains(hsmtls_conn_peer_ca_name(cli, 0), "CN=client-p256"));
    CHECK(check_contains(hsmtls_conn_peer_ca_name(cli, 1), "OU=ed25519"));
    CHECK(hsmtls_conn_peer_ca_name(cli, 2) == NULL);
    both_free(cli, srv);
    /* a server that asks for no certificate names none */
    CHECK(hsmtls_config_set_verify_mode(sc, HSMTLS_VERIFY_NONE) == 0);
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_peer_ca_count(cli) == 0);
    both_free(cli, srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

/* ---- post-handshake client authentication ---- */

static void case_pha(void)
{
    hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();
    CHECK(hsmtls_config_post_handshake_auth(sc) == 0);
    CHECK(hsmtls_config_add_ca(sc, check_path("ca.pem")) == 0);
    CHECK(hsmtls_config_set_verify_mode(sc, HSMTLS_VERIFY_PEER) == 0);
    CHECK(hsmtls_config_set_post_handshake_auth(sc, 1) == 0 && hsmtls_config_post_handshake_auth(sc) == 1);
    CHECK(hsmtls_config_set_cert_key(cc, check_path("certs/client-p256.pem"), check_path("soft/client-p256.key")) == 0);
    hsmtls_conn *cli, *srv;
    int rs;

    /* a client that does not offer it cannot be asked */
    check_pair(cc, sc, &cli, &srv);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(srv));
    CHECK(hsmtls_conn_peer_subject(srv) == NULL);
    CHECK(hsmtls_conn_request_client_cert(srv) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(srv), "client must offer it"), hsmtls_conn_error_message(srv));
    CHECK(hsmtls_conn_request_client_cert(cli) == HSMTLS_ERROR);
    both_free(cli, srv);

    /* offered: no certificate in the handshake, one after the request */
    CHECK(hsmtls_config_set_post_handshake_auth(cc, 1) == 0);
    check_pair(cc, sc, &cli, &srv);
    CHECK(hsmtls_conn_request_client_cert(srv) == HSMTLS_ERROR); /* not before the handshake */
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(srv));
    CHECK(check_exchange(cli, srv, "before") == 0);
    CHECK(hsmtls_conn_peer_subject(srv) == NULL && !hsmtls_conn_peer_verified(srv));
    CHECK_MSG(hsmtls_conn_request_client_cert(srv) == 0, hsmtls_conn_error_message(srv));
    CHECK(check_exchange(srv, cli, "your certificate, please") == 0);
    CHECK(check_exchange(cli, srv, "here it is") == 0);
    CHECK_MSG(check_contains(hsmtls_conn_peer_subject(srv), "CN=client-p256"), hsmtls_conn_peer_subject(srv));
    CHECK(hsmtls_conn_peer_verified(srv));
    CHECK(hsmtls_conn_peer_chain_count(srv) >= 1);
    both_free(cli, srv);

    /* TLS 1.2 has no post-handshake authentication */
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_request_client_cert(srv) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_conn_error_message(srv), "TLS 1.3"));
    both_free(cli, srv);

    /* a client that offers it but has no certificate: the server that requires one fails */
    hsmtls_config *anon = check_client_config();
    CHECK(hsmtls_config_set_post_handshake_auth(anon, 1) == 0);
    check_pair(anon, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_request_client_cert(srv) == 0);
    CHECK(check_exchange(srv, cli, "certificate?") == 0);
    CHECK(check_exchange(cli, srv, "none") == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(srv), "certificate"), hsmtls_conn_error_message(srv));
    both_free(cli, srv);
    hsmtls_config_free(anon);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

/* ---- renegotiation ---- */

static void case_reneg(void)
{
    hsmtls_config *sc = check_server_config("rsa2048"), *cc = check_client_config();
    CHECK(hsmtls_config_renegotiation(sc) == 0 && hsmtls_config_renegotiation(cc) == 0);
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);
    hsmtls_conn *cli, *srv;
    int rs;

    /* off (the default): our side will not start one */
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_renegotiate(cli) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_conn_error_message(cli), "renegotiation is off"));
    both_free(cli, srv);

    /* the client may, the server refuses: the client's renegotiation fails */
    CHECK(hsmtls_config_set_renegotiation(cc, 1) == 0 && hsmtls_config_renegotiation(cc) == 1);
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK_MSG(hsmtls_conn_renegotiate(cli) == 0, hsmtls_conn_error_message(cli));
    CHECK(hsmtls_conn_renegotiate_pending(cli));
    char buf[64];
    check_move(cli, srv);
    CHECK(hsmtls_conn_read(srv, buf, sizeof buf) == HSMTLS_WANT_READ); /* refuses, goes on */
    check_move(srv, cli);
    int r = hsmtls_conn_read(cli, buf, sizeof buf);
    CHECK(r == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_conn_error_message(cli), "renegotiation"), hsmtls_conn_error_message(cli));
    both_free(cli, srv);

    /* both allow it: a new handshake in the middle, data before and after, either side */
    CHECK(hsmtls_config_set_renegotiation(sc, 1) == 0);
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(check_exchange(cli, srv, "before") == 0);
    CHECK(hsmtls_conn_renegotiate(cli) == 0 && hsmtls_conn_renegotiate_pending(cli));
    CHECK(check_exchange(srv, cli, "during") == 0);
    CHECK(check_exchange(cli, srv, "after") == 0);
    CHECK(check_exchange(srv, cli, "and back") == 0);
    CHECK(!hsmtls_conn_renegotiate_pending(cli));
    CHECK(check_contains(hsmtls_conn_peer_subject(cli), "OU=rsa2048") && hsmtls_conn_peer_verified(cli));
    CHECK_MSG(hsmtls_conn_renegotiate(srv) == 0, hsmtls_conn_error_message(srv));
    CHECK(check_exchange(srv, cli, "server asks") == 0);
    CHECK(check_exchange(cli, srv, "client answers") == 0);
    CHECK(check_exchange(srv, cli, "done") == 0);
    CHECK(!hsmtls_conn_renegotiate_pending(srv));
    both_free(cli, srv);

    /* TLS 1.3 has none */
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_3, HSMTLS_TLS1_3) == 0);
    check_pair(cc, sc, &cli, &srv);
    CHECK(check_handshake(cli, srv, &rs) == 0 && rs == 0);
    CHECK(hsmtls_conn_renegotiate(cli) == HSMTLS_ERROR && check_contains(hsmtls_conn_error_message(cli), "TLS 1.2"));
    both_free(cli, srv);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "session", case_session }, { "equal", case_equal }, { "lists", case_lists },
        { "crl", case_crl }, { "clientca", case_clientca }, { "pha", case_pha }, { "reneg", case_reneg },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "[CRL_FILE]", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    crl_file = argc > 3 ? argv[3] : NULL;
    return check_run(c);
}
