/* The core's operations against a token that fails on purpose: tests/test_reliability.py
 * runs these cases with hsmtls-fault in front of SoftHSM2 and a plan per failure class
 * (HSMTLS_FAULT). Every result must be right (checked against the software copy of the
 * key) or, where the plan makes a result impossible, a clear error that names the token,
 * the key and the PKCS#11 reason. */
#include "check.h"
#include "hsmtls/p11_object.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

static const unsigned char message[] = "hsmtls signs this while the token misbehaves";

static hsmtls_p11_object *find(const char *text)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    hsmtls_p11_object *o = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    CHECK_MSG(o != NULL, hsmtls_p11_error_message());
    hsmtls_p11_uri_free(uri);
    return o;
}

static EVP_PKEY *soft_key(const char *label)
{
    char rel[64];
    snprintf(rel, sizeof rel, "soft/%s.key", label);
    FILE *f = fopen(check_path(rel), "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK_MSG(k != NULL, rel);
    return k;
}

/* `sig` (raw r||s for ECDSA, PKCS#1 for RSA) over `message` verifies with `soft`. */
static int verifies(EVP_PKEY *soft, const unsigned char *sig, size_t len)
{
    unsigned char der[160];
    const unsigned char *check = sig;
    size_t check_len = len;
    if (EVP_PKEY_get_base_id(soft) == EVP_PKEY_EC) {
        ECDSA_SIG *s = ECDSA_SIG_new();
        ECDSA_SIG_set0(s, BN_bin2bn(sig, (int)len / 2, NULL), BN_bin2bn(sig + len / 2, (int)len / 2, NULL));
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(s, &p);
        ECDSA_SIG_free(s);
        if (n <= 0)
            return 0;
        check = der;
        check_len = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, soft) == 1 &&
             EVP_DigestVerify(ctx, check, check_len, message, sizeof message) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int ec_sign(hsmtls_p11_object *key, unsigned char *sig, size_t *len)
{
    unsigned char digest[32];
    SHA256(message, sizeof message, digest);
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    return hsmtls_p11_sign(key, &mech, digest, sizeof digest, sig, len);
}

static int rsa_sign(hsmtls_p11_object *key, unsigned char *sig, size_t *len)
{
    static const unsigned char prefix[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48,
        0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
    unsigned char info[sizeof prefix + 32];
    memcpy(info, prefix, sizeof prefix);
    SHA256(message, sizeof message, info + sizeof prefix);
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    return hsmtls_p11_sign(key, &mech, info, sizeof info, sig, len);
}

static int rsa_decrypt_right(hsmtls_p11_object *key, EVP_PKEY *soft)
{
    unsigned char ct[512], pt[512];
    size_t ct_len = sizeof ct, pt_len = sizeof pt;
    EVP_PKEY_CTX *ec = EVP_PKEY_CTX_new(soft, NULL);
    int ok = ec && EVP_PKEY_encrypt_init(ec) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ec, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_encrypt(ec, ct, &ct_len, message, sizeof message) == 1;
    EVP_PKEY_CTX_free(ec);
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    return ok && hsmtls_p11_decrypt(key, &mech, ct, ct_len, pt, &pt_len) == 0 &&
           pt_len == sizeof message && memcmp(pt, message, pt_len) == 0;
}

static int ecdh_right(hsmtls_p11_object *key, EVP_PKEY *soft)
{
    EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char point[100], ours[48], theirs[48];
    size_t point_len = 0, ours_len = sizeof ours, theirs_len = sizeof theirs;
    int ok = peer && EVP_PKEY_get_octet_string_param(peer, "encoded-pub-key", point, sizeof point,
                                                     &point_len) == 1 &&
             hsmtls_p11_derive(key, point, point_len, ours, &ours_len) == 0;
    EVP_PKEY_CTX *dc = ok ? EVP_PKEY_CTX_new(peer, NULL) : NULL;
    ok = ok && dc && EVP_PKEY_derive_init(dc) == 1 && EVP_PKEY_derive_set_peer(dc, soft) == 1 &&
         EVP_PKEY_derive(dc, theirs, &theirs_len) == 1 && ours_len == theirs_len &&
         memcmp(ours, theirs, ours_len) == 0;
    EVP_PKEY_CTX_free(dc);
    EVP_PKEY_free(peer);
    return ok;
}

/* Sign, decrypt, derive and a login, six rounds: each right, whatever the plan injects
 * once in a while (the core recovers and retries once). */
static void case_ops(void)
{
    hsmtls_p11_object *rsa = find("pkcs11:token=server;object=rsa2048;type=private?pin-value=1234");
    hsmtls_p11_object *ec = find("pkcs11:token=server;object=ec-p256;type=private");
    EVP_PKEY *rsa_soft = soft_key("rsa2048"), *ec_soft = soft_key("ec-p256");
    if (!rsa || !ec || !rsa_soft || !ec_soft)
        return;
    for (int round = 0; round < 6; round++) {
        unsigned char sig[512];
        size_t len = sizeof sig;
        CHECK_MSG(rsa_sign(rsa, sig, &len) == 0 && verifies(rsa_soft, sig, len), hsmtls_p11_error_message());
        len = sizeof sig;
        CHECK_MSG(ec_sign(ec, sig, &len) == 0 && verifies(ec_soft, sig, len), hsmtls_p11_error_message());
        CHECK_MSG(rsa_decrypt_right(rsa, rsa_soft), hsmtls_p11_error_message());
        CHECK_MSG(ecdh_right(ec, ec_soft), hsmtls_p11_error_message());
    }
    /* A login on the other token, under the same plan. */
    hsmtls_p11_object *client = find("pkcs11:token=client;object=client-p256;type=private?pin-value=1234");
    EVP_PKEY *client_soft = soft_key("client-p256");
    unsigned char sig[128];
    size_t len = sizeof sig;
    CHECK_MSG(client && client_soft && ec_sign(client, sig, &len) == 0 && verifies(client_soft, sig, len),
              hsmtls_p11_error_message());
    EVP_PKEY_free(client_soft);
    EVP_PKEY_free(rsa_soft);
    EVP_PKEY_free(ec_soft);
}

/* The plan makes every signature impossible: each attempt fails at once with a message
 * naming the operation, the key, the token and the reason the plan gives
 * (HSMTLS_EXPECT, e.g. CKR_FUNCTION_FAILED or "unreachable"). */
static void case_clear_errors(void)
{
    const char *expect = getenv("HSMTLS_EXPECT");
    const char *control = getenv("HSMTLS_FAULT_CONTROL"), *state = getenv("HSMTLS_STATE");
    hsmtls_p11_object *ec = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234");
    if (!ec || !expect)
        return;
    if (control && state) {
        /* Working first; then the plan's state, which hsmtls-fault reads within 50 ms. */
        unsigned char sig[128];
        size_t len = sizeof sig;
        CHECK_MSG(ec_sign(ec, sig, &len) == 0, hsmtls_p11_error_message());
        FILE *f = fopen(control, "w");
        CHECK(f && fputs(state, f) >= 0 && fclose(f) == 0);
        struct timespec ts = { 0, 120 * 1000000L };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 3; i++) {
        unsigned char sig[128];
        size_t len = sizeof sig;
        CHECK(ec_sign(ec, sig, &len) < 0);
        const char *msg = hsmtls_p11_error_message();
        CHECK_MSG(check_contains(msg, expect) && check_contains(msg, "server"), msg);
    }
}

struct worker {
    hsmtls_p11_object *key;
    EVP_PKEY *soft;
    int right, clear, wrong;
    char last[512];
};

static void *sign_loop(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 150; i++) {
        unsigned char sig[128];
        size_t len = sizeof sig;
        if (ec_sign(w->key, sig, &len) == 0) {
            if (verifies(w->soft, sig, len))
                w->right++;
            else
                w->wrong++;
        } else {
            const char *msg = hsmtls_p11_error_message();
            if (check_contains(msg, "CKR_") && check_contains(msg, "\"server\""))
                w->clear++;
            else
                w->wrong++;
            snprintf(w->last, sizeof w->last, "%s", msg);
        }
    }
    return NULL;
}

/* The sessions count in the last "sessions: ... open N" line of hsmtls-fault's log:
 * sessions alive in the real module. -1 when there is none. */
static long fault_log_open(void)
{
    const char *path = getenv("HSMTLS_FAULT_LOG");
    FILE *f = path ? fopen(path, "r") : NULL;
    long open = -1;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        const char *counts = strstr(line, "sessions: opened ");
        const char *p = counts ? strstr(counts, " open ") : NULL;
        if (p)
            open = strtol(p + 6, NULL, 10);
    }
    if (f)
        fclose(f);
    return open;
}

/* Eight threads sign on one key while the plan invalidates sessions under them: every
 * result right or a clear error, nearly all right, and no session leaked (every session
 * alive in the module is one the core's pool knows). */
static void case_threads(void)
{
    hsmtls_p11_object *ec = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234");
    EVP_PKEY *soft = soft_key("ec-p256");
    if (!ec || !soft)
        return;
    pthread_t th[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){ .key = ec, .soft = soft };
        pthread_create(&th[i], NULL, sign_loop, &w[i]);
    }
    int right = 0, clear = 0, wrong = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        right += w[i].right;
        clear += w[i].clear;
        wrong += w[i].wrong;
        if (w[i].clear || w[i].wrong)
            printf("# thread %d: %d right, %d clear errors, %d wrong; last: %s\n", i, w[i].right,
                   w[i].clear, w[i].wrong, w[i].last);
    }
    printf("# %d right, %d clear errors, %d wrong of %d\n", right, clear, wrong, 8 * 150);
    CHECK(wrong == 0);
    CHECK(right + clear == 8 * 150);
    CHECK(right >= 8 * 150 * 95 / 100);
    hsmtls_p11_token *t = hsmtls_p11_object_token(ec);
    char detail[128];
    snprintf(detail, sizeof detail, "%zu idle, %zu open", hsmtls_p11_token_idle_sessions(t),
             hsmtls_p11_token_open_sessions(t));
    CHECK_MSG(hsmtls_p11_token_idle_sessions(t) + (size_t)hsmtls_p11_token_holds_copies(t) ==
              hsmtls_p11_token_open_sessions(t), detail);
    long alive = fault_log_open();
    snprintf(detail, sizeof detail, "%ld sessions alive in the module, the core holds %zu", alive,
             hsmtls_p11_token_open_sessions(t));
    CHECK_MSG(alive >= 0 && (size_t)alive <= hsmtls_p11_token_open_sessions(t), detail);
    EVP_PKEY_free(soft);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "ops", case_ops }, { "clear_errors", case_clear_errors }, { "threads", case_threads },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
