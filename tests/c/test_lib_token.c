/* hsmtls_token_signatures: the per-token signature counts kept by the provider's PKCS#11
 * core, read through libhsmtls. Both ends run here in memory mode with the sandbox's
 * ECDSA P-256 keys on the "server" and "client" tokens, and each handshake must show
 * exactly the signatures its protocol makes: one CertificateVerify per side in TLS 1.3,
 * one ServerKeyExchange and one CertificateVerify in DTLS 1.2 ECDHE-ECDSA. File keys make
 * none on any token. And hsmtls_token_set_key_cache, looked at through the module's own
 * function list (the same SoftHSM2 instance the provider's core started).
 * usage: test_lib_token SANDBOX_DIR counts|key_cache */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <p11-kit/pkcs11.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"
#include "hsmtls/token.h"

#define SERVER_KEY "pkcs11:token=server;object=ec-p256;type=private"
#define CLIENT_KEY "pkcs11:token=client;object=client-p256;type=private"

struct counts { long server, client, all; };

static struct counts read_counts(void)
{
    struct counts c = { hsmtls_token_signatures("server"), hsmtls_token_signatures("client"),
                        hsmtls_token_signatures(NULL) };
    CHECK_MSG(c.server >= 0 && c.client >= 0 && c.all >= 0, hsmtls_error_message());
    return c;
}

/* Mutual authentication with token keys (server: required client certificate). */
static void token_configs(hsmtls_config **server, hsmtls_config **client)
{
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER), *c = check_client_config();
    CHECK(hsmtls_config_set_pin_source(s, check_path("pin.txt")) == 0);
    CHECK(hsmtls_config_set_pin_source(c, check_path("pin.txt")) == 0);
    CHECK_MSG(hsmtls_config_set_cert_key(s, check_path("certs/ec-p256.pem"), SERVER_KEY) == 0,
              hsmtls_config_error(s));
    CHECK_MSG(hsmtls_config_set_cert_key(c, check_path("certs/client-p256.pem"), CLIENT_KEY) == 0,
              hsmtls_config_error(c));
    CHECK(hsmtls_config_add_ca(s, check_path("ca.pem")) == 0);
    CHECK(hsmtls_config_set_verify_mode(s, HSMTLS_VERIFY_PEER) == 0);
    *server = s;
    *client = c;
}

/* A TLS handshake in memory; returns 1 when both ends finished. */
static int tls_handshake(hsmtls_config *scfg, hsmtls_config *ccfg, const char *want_version)
{
    hsmtls_conn *s = hsmtls_conn_new(scfg), *c = hsmtls_conn_new(ccfg);
    CHECK_MSG(s && c, hsmtls_error_message());
    if (!s || !c) {
        hsmtls_conn_free(s);
        hsmtls_conn_free(c);
        return 0;
    }
    CHECK(hsmtls_conn_use_memory(s) == 0 && hsmtls_conn_use_memory(c) == 0);
    CHECK(hsmtls_conn_set_hostname(c, "localhost") == 0);
    int sr, cr = check_handshake(c, s, &sr);
    CHECK_MSG(cr == 0, hsmtls_conn_error_message(c));
    CHECK_MSG(sr == 0, hsmtls_conn_error_message(s));
    int done = cr == 0 && sr == 0;
    if (done && want_version)
        CHECK_MSG(strcmp(hsmtls_conn_version(c), want_version) == 0, hsmtls_conn_version(c));
    hsmtls_conn_free(s);
    hsmtls_conn_free(c);
    return done;
}

static void test_before_any_token(void)
{
    /* Nothing has loaded the provider yet: no token has signed. */
    struct counts c = read_counts();
    CHECK(c.server == 0 && c.client == 0 && c.all == 0);
}

static void test_file_keys(void)
{
    hsmtls_config *s = check_server_config("ec-p256"), *c = check_client_config();
    struct counts before = read_counts();
    CHECK(tls_handshake(s, c, "TLSv1.3"));
    struct counts after = read_counts();
    CHECK(after.all == before.all);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
}

static void test_tls13_mutual(void)
{
    hsmtls_config *s, *c;
    token_configs(&s, &c);
    CHECK(hsmtls_config_set_protocols(s, HSMTLS_TLS1_3, HSMTLS_TLS1_3) == 0);
    /* Loading the keys and checking them against the certificates signs nothing. */
    struct counts before = read_counts();
    CHECK(tls_handshake(s, c, "TLSv1.3"));
    struct counts after = read_counts();
    CHECK_MSG(after.server - before.server == 1, "TLS 1.3: one CertificateVerify by the server token");
    CHECK_MSG(after.client - before.client == 1, "TLS 1.3: one CertificateVerify by the client token");
    CHECK(after.all - before.all == 2);
    CHECK(hsmtls_token_signatures("no-such-token") == 0);
    printf("# TLS 1.3: server %ld, client %ld\n", after.server - before.server, after.client - before.client);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
}

static struct sockaddr_in addr(const char *ip, unsigned short port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* Every datagram one side has queued, into the other's handshake. */
static void pass(hsmtls_dtls *from, hsmtls_dtls *to, int *to_status)
{
    unsigned char dg[HSMTLS_DTLS_MAX_DATAGRAM];
    int n;
    while ((n = hsmtls_dtls_take(from, dg, sizeof dg)) > 0)
        if (*to_status != 0)
            *to_status = hsmtls_dtls_handshake(to, dg, (size_t)n);
}

static void test_dtls12_mutual(void)
{
    hsmtls_config *s, *c;
    token_configs(&s, &c);
    CHECK(hsmtls_config_set_ciphers(s, "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in caddr = addr("127.0.0.1", 40001), saddr = addr("127.0.0.1", 4433);
    struct counts before = read_counts();

    hsmtls_dtls *cl = hsmtls_dtls_new(c), *sv = NULL;
    CHECK_MSG(cl != NULL, hsmtls_error_message());
    CHECK(hsmtls_dtls_set_peer(cl, (struct sockaddr *)&saddr, sizeof saddr, "localhost") == 0);
    /* The cookie exchange: a HelloVerifyRequest, then a ClientHello that verifies. */
    unsigned char hello[HSMTLS_DTLS_MAX_DATAGRAM], hvr[300];
    size_t hvr_len = 0;
    int cst = hsmtls_dtls_handshake(cl, NULL, 0), sst = HSMTLS_WANT_READ;
    int n = hsmtls_dtls_take(cl, hello, sizeof hello);
    CHECK(hsmtls_dtls_verifier_check(v, hello, (size_t)n, (struct sockaddr *)&caddr, sizeof caddr, hvr,
                                     sizeof hvr, &hvr_len) == 0 && hvr_len > 0);
    cst = hsmtls_dtls_handshake(cl, hvr, hvr_len);
    n = hsmtls_dtls_take(cl, hello, sizeof hello);
    CHECK(hsmtls_dtls_verifier_check(v, hello, (size_t)n, (struct sockaddr *)&caddr, sizeof caddr, hvr,
                                     sizeof hvr, &hvr_len) == 1);
    sv = hsmtls_dtls_new(s);
    CHECK_MSG(sv != NULL, hsmtls_error_message());
    if (cl && sv) {
        CHECK(hsmtls_dtls_set_peer(sv, (struct sockaddr *)&caddr, sizeof caddr, NULL) == 0);
        sst = hsmtls_dtls_handshake(sv, hello, (size_t)n);
        for (int round = 0; round < 20 && (cst != 0 || sst != 0); round++) {
            pass(sv, cl, &cst);
            pass(cl, sv, &sst);
        }
        CHECK_MSG(cst == 0, hsmtls_dtls_error_message(cl));
        CHECK_MSG(sst == 0, hsmtls_dtls_error_message(sv));
        CHECK(hsmtls_dtls_version(cl) && strcmp(hsmtls_dtls_version(cl), "DTLSv1.2") == 0);
        CHECK(hsmtls_dtls_cipher(cl) && strcmp(hsmtls_dtls_cipher(cl), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
        CHECK(hsmtls_conn_peer_subject(hsmtls_dtls_conn(sv)) != NULL);
    }
    struct counts after = read_counts();
    CHECK_MSG(after.server - before.server == 1, "DTLS 1.2: one ServerKeyExchange signed by the server token");
    CHECK_MSG(after.client - before.client == 1, "DTLS 1.2: one CertificateVerify by the client token");
    CHECK(after.all - before.all == 2);
    printf("# DTLS 1.2: server %ld, client %ld\n", after.server - before.server, after.client - before.client);
    hsmtls_dtls_free(cl);
    hsmtls_dtls_free(sv);
    hsmtls_dtls_verifier_free(v);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
}

/* Session objects labelled `label` on the token labelled `token`: the key cache's copies. */
static long session_copies(const char *token, const char *label)
{
    void *lib = dlopen(getenv("HSMTLS_PKCS11_MODULE"), RTLD_NOW);
    CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
    CK_FUNCTION_LIST *f = NULL;
    if (!get || get(&f) != CKR_OK)
        return -1;
    CK_SLOT_ID slots[16];
    CK_ULONG nslots = 16;
    long found = -1;
    if (f->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK)
        return -1;
    for (CK_ULONG i = 0; i < nslots && found < 0; i++) {
        CK_TOKEN_INFO ti;
        CK_SESSION_HANDLE s;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || strncmp((char *)ti.label, token, strlen(token)) != 0 ||
            ti.label[strlen(token)] != ' ' || f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
            continue;
        CK_BBOOL no = CK_FALSE;
        CK_ATTRIBUTE tmpl[] = { { CKA_TOKEN, &no, sizeof no }, { CKA_LABEL, (void *)label, strlen(label) } };
        CK_OBJECT_HANDLE h[8];
        CK_ULONG n = 0;
        if (f->C_FindObjectsInit(s, tmpl, 2) == CKR_OK && f->C_FindObjects(s, h, 8, &n) == CKR_OK)
            found = (long)n;
        f->C_FindObjectsFinal(s);
        f->C_CloseSession(s);
    }
    return found;
}

/* Off before the provider is loaded: it takes effect when it is, and a handshake signs
 * with the token objects themselves; on again: the next handshake makes the copies. */
static void key_cache(void)
{
    CHECK(hsmtls_token_set_key_cache(0) == 0);
    hsmtls_config *s, *c;
    token_configs(&s, &c);
    struct counts before = read_counts();
    CHECK(tls_handshake(s, c, "TLSv1.3"));
    CHECK(read_counts().all - before.all == 2);
    CHECK_MSG(session_copies("server", "ec-p256") == 0, "a copy was made with the cache off");
    CHECK(hsmtls_token_set_key_cache(1) == 0);
    CHECK(tls_handshake(s, c, "TLSv1.3"));
    CHECK_MSG(session_copies("server", "ec-p256") == 1, "no copy with the cache on again");
    CHECK(session_copies("client", "client-p256") == 1);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
}

static void all_counts(void)
{
    test_before_any_token();
    test_tls13_mutual();
    test_dtls12_mutual();
    test_file_keys();
}

int main(int argc, char **argv)
{
    /* counts: before any token, then after each kind of handshake. */
    static const check_case cases[] = { { "counts", all_counts }, { "key_cache", key_cache } };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
