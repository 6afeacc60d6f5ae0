/* API tests of the PKCS#11 core against a real SoftHSM2 sandbox.
 * usage: test_core SANDBOX_DIR CASE   (the sandbox's env.sh must be in effect) */
#include "check.h"
#include "hsmtls/p11_object.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

static const char *sandbox;

static hsmtls_p11_object *find(const char *text, CK_OBJECT_CLASS cls)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    CHECK_MSG(uri != NULL, hsmtls_p11_error_message());
    if (!uri)
        return NULL;
    hsmtls_p11_object *o = hsmtls_p11_object_find(uri, NULL, cls);
    CHECK_MSG(o != NULL, hsmtls_p11_error_message());
    hsmtls_p11_uri_free(uri);
    return o;
}

static EVP_PKEY *soft_key(const char *label)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/soft/%s.key", sandbox, label);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK_MSG(k != NULL, path);
    return k;
}

/* Verifies `sig` over `msg` with the software copy of the key: what the token made is
 * what the key says. `md` NULL for EdDSA; pss selects RSA-PSS with a digest-long salt. */
static int soft_verify(const char *label, const EVP_MD *md, int pss, const unsigned char *msg,
                       size_t len, const unsigned char *sig, size_t siglen)
{
    EVP_PKEY *k = soft_key(label);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = k && ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok;
}

/* PKCS#11 ECDSA gives r||s; OpenSSL verifies DER. */
static int ecdsa_raw_to_der(const unsigned char *raw, size_t len, unsigned char *der, size_t *der_len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)len / 2, NULL), *sv = BN_bin2bn(raw + len / 2, (int)len / 2, NULL);
    ECDSA_SIG_set0(s, r, sv);
    unsigned char *p = der;
    int n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    *der_len = n > 0 ? (size_t)n : 0;
    return n > 0;
}

static const unsigned char message[] = "hsmtls signs this inside the token";

static int sign_ecdsa_and_verify(hsmtls_p11_object *key, const char *label)
{
    unsigned char digest[32], sig[256], der[300];
    size_t siglen = sizeof sig, der_len;
    SHA256(message, sizeof message, digest);
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    if (hsmtls_p11_sign(key, &mech, digest, sizeof digest, sig, &siglen) < 0)
        return 0;
    return siglen == hsmtls_p11_object_signature_size(key) && ecdsa_raw_to_der(sig, siglen, der, &der_len) &&
           soft_verify(label, EVP_sha256(), 0, message, sizeof message, der, der_len);
}

static void case_ops(void)
{
    static const unsigned char sha256_prefix[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48,
        0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
    unsigned char digest[32], info[sizeof sha256_prefix + 32], sig[1024];
    size_t siglen;
    SHA256(message, sizeof message, digest);
    memcpy(info, sha256_prefix, sizeof sha256_prefix);
    memcpy(info + sizeof sha256_prefix, digest, 32);

    for (int k = 0; k < 2; k++) {
        const char *label = k ? "rsa3072" : "rsa2048";
        char text[128];
        snprintf(text, sizeof text, "pkcs11:token=server;object=%s;type=private?pin-value=1234", label);
        hsmtls_p11_object *rsa = find(text, CKO_PRIVATE_KEY);
        if (!rsa)
            continue;
        CHECK(hsmtls_p11_object_bits(rsa) == (k ? 3072u : 2048u));
        CK_MECHANISM pkcs1 = { CKM_RSA_PKCS, NULL, 0 };
        siglen = sizeof sig;
        CHECK_MSG(hsmtls_p11_sign(rsa, &pkcs1, info, sizeof info, sig, &siglen) == 0, hsmtls_p11_error_message());
        CHECK(soft_verify(label, EVP_sha256(), 0, message, sizeof message, sig, siglen));
        CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
        CK_MECHANISM pss = { CKM_RSA_PKCS_PSS, &pp, sizeof pp };
        siglen = sizeof sig;
        CHECK_MSG(hsmtls_p11_sign(rsa, &pss, digest, sizeof digest, sig, &siglen) == 0, hsmtls_p11_error_message());
        CHECK(soft_verify(label, EVP_sha256(), 1, message, sizeof message, sig, siglen));

        /* Decrypt: encrypt in software with the token key's public half. */
        EVP_PKEY *pub = hsmtls_p11_object_public_key(rsa, NULL, NULL);
        EVP_PKEY *soft = soft_key(label);
        CHECK(pub && soft && EVP_PKEY_eq(pub, soft) == 1);
        for (int oaep = 0; oaep < 2 && pub; oaep++) {
            unsigned char ct[512], pt[512];
            size_t ct_len = sizeof ct, pt_len = sizeof pt;
            EVP_PKEY_CTX *ec = EVP_PKEY_CTX_new(pub, NULL);
            int ok = ec && EVP_PKEY_encrypt_init(ec) == 1 &&
                     EVP_PKEY_CTX_set_rsa_padding(ec, oaep ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING) == 1 &&
                     (!oaep || EVP_PKEY_CTX_set_rsa_oaep_md(ec, EVP_sha1()) == 1) &&
                     (!oaep || EVP_PKEY_CTX_set_rsa_mgf1_md(ec, EVP_sha1()) == 1) &&
                     EVP_PKEY_encrypt(ec, ct, &ct_len, message, sizeof message) == 1;
            EVP_PKEY_CTX_free(ec);
            CHECK(ok);
            /* SoftHSM2 2.6 takes OAEP with SHA-1 only (CKR_ARGUMENTS_BAD for others). */
            CK_RSA_PKCS_OAEP_PARAMS op = { CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0 };
            CK_MECHANISM mech = { oaep ? CKM_RSA_PKCS_OAEP : CKM_RSA_PKCS, oaep ? &op : NULL, oaep ? sizeof op : 0 };
            CHECK_MSG(hsmtls_p11_decrypt(rsa, &mech, ct, ct_len, pt, &pt_len) == 0, hsmtls_p11_error_message());
            CHECK(pt_len == sizeof message && memcmp(pt, message, pt_len) == 0);
        }
        EVP_PKEY_free(pub);
        EVP_PKEY_free(soft);
    }

    static const char *const ec_labels[] = { "ec-p256", "ec-p384", "ec-p521" };
    static const char *const curves[] = { "P-256", "P-384", "P-521" };
    for (int i = 0; i < 3; i++) {
        char text[128];
        snprintf(text, sizeof text, "pkcs11:token=server;object=%s;type=private?pin-value=1234", ec_labels[i]);
        hsmtls_p11_object *ec = find(text, CKO_PRIVATE_KEY);
        if (!ec)
            continue;
        CHECK(hsmtls_p11_object_curve(ec) && strcmp(hsmtls_p11_object_curve(ec), curves[i]) == 0);
        CHECK_MSG(sign_ecdsa_and_verify(ec, ec_labels[i]), hsmtls_p11_error_message());
        /* ECDH: the token's secret equals software ECDH with a fresh peer key. */
        EVP_PKEY *pub = hsmtls_p11_object_public_key(ec, NULL, NULL);
        CHECK_MSG(pub != NULL, hsmtls_p11_error_message());
        EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i]);
        unsigned char point[200], ours[80], theirs[80];
        size_t point_len = 0, ours_len = sizeof ours, theirs_len = sizeof theirs;
        EVP_PKEY_get_octet_string_param(peer, "encoded-pub-key", point, sizeof point, &point_len);
        CHECK_MSG(hsmtls_p11_derive(ec, point, point_len, ours, &ours_len) == 0, hsmtls_p11_error_message());
        EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(peer, NULL);
        CHECK(dc && EVP_PKEY_derive_init(dc) == 1 && EVP_PKEY_derive_set_peer(dc, pub) == 1 &&
              EVP_PKEY_derive(dc, theirs, &theirs_len) == 1);
        CHECK(ours_len == theirs_len && memcmp(ours, theirs, ours_len) == 0);
        EVP_PKEY_CTX_free(dc);
        EVP_PKEY_free(peer);
        EVP_PKEY_free(pub);
    }

    hsmtls_p11_object *ed = find("pkcs11:token=server;object=ed25519;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    if (ed) {
        CHECK(strcmp(hsmtls_p11_object_curve(ed), "ED25519") == 0);
        CK_MECHANISM eddsa = { CKM_EDDSA, NULL, 0 };
        siglen = sizeof sig;
        CHECK_MSG(hsmtls_p11_sign(ed, &eddsa, message, sizeof message, sig, &siglen) == 0, hsmtls_p11_error_message());
        CHECK(siglen == 64 && soft_verify("ed25519", NULL, 0, message, sizeof message, sig, siglen));
    }
}

/* A warm key signs with C_SignInit and C_Sign alone; a key load costs at most 12 calls
 * after login; the same lookup twice calls C_FindObjects once. */
static void case_calls(void)
{
    hsmtls_p11_object *k = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    if (!k)
        return;
    CHECK(sign_ecdsa_and_verify(k, "ec-p256"));
    hsmtls_p11_calls_reset();
    CHECK(sign_ecdsa_and_verify(k, "ec-p256"));
    CHECK(hsmtls_p11_calls("C_SignInit") == 1 && hsmtls_p11_calls("C_Sign") == 1);
    CHECK_MSG(hsmtls_p11_calls_total() == 2, "a warm signature costs more than two PKCS#11 calls");

    hsmtls_p11_calls_reset();
    CHECK(find("pkcs11:token=server;object=rsa3072;type=private?pin-value=1234", CKO_PRIVATE_KEY) != NULL);
    unsigned long load = hsmtls_p11_calls_total();
    char detail[64];
    snprintf(detail, sizeof detail, "loading a key took %lu calls", load);
    CHECK_MSG(load <= 12, detail);
    unsigned long finds = hsmtls_p11_calls("C_FindObjects");
    CHECK(find("pkcs11:token=server;object=rsa3072;type=private?pin-value=1234", CKO_PRIVATE_KEY) != NULL);
    CHECK_MSG(hsmtls_p11_calls("C_FindObjects") == finds, "a cached lookup searched the token again");

    hsmtls_p11_calls_reset();
    CHECK(find("pkcs11:token=server;object=ec-p384;type=private?pin-value=1234", CKO_PRIVATE_KEY) != NULL);
    snprintf(detail, sizeof detail, "loading an EC key took %lu calls", hsmtls_p11_calls_total());
    CHECK_MSG(hsmtls_p11_calls_total() <= 12, detail);
}

static void case_login(void)
{
    hsmtls_p11_uri *wrong = hsmtls_p11_uri_parse("pkcs11:token=client;object=client-p256;type=private?pin-value=9999");
    hsmtls_p11_calls_reset();
    CHECK(hsmtls_p11_object_find(wrong, NULL, CKO_PRIVATE_KEY) == NULL);
    CHECK(hsmtls_p11_error_rv() == CKR_PIN_INCORRECT);
    const char *msg = hsmtls_p11_error_message();
    CHECK_MSG(strstr(msg, "CKR_PIN_INCORRECT") && strstr(msg, "client") && !strstr(msg, "9999"), msg);
    CHECK(hsmtls_p11_calls("C_Login") == 1);
    /* The same wrong PIN again: refused without spending a try on the token. */
    CHECK(hsmtls_p11_object_find(wrong, NULL, CKO_PRIVATE_KEY) == NULL);
    CHECK(hsmtls_p11_calls("C_Login") == 1);
    hsmtls_p11_uri_free(wrong);

    /* No PIN at all: an error that says how to give one, and no login attempt. */
    hsmtls_p11_uri *bare = hsmtls_p11_uri_parse("pkcs11:token=client;object=client-p256;type=private");
    CHECK(hsmtls_p11_object_find(bare, NULL, CKO_PRIVATE_KEY) == NULL);
    CHECK_MSG(strstr(hsmtls_p11_error_message(), "needs a PIN"), hsmtls_p11_error_message());
    CHECK(hsmtls_p11_calls("C_Login") == 1);

    /* pin-source from the URI, then the PIN kept: later lookups do not log in again. */
    char text[4200];
    snprintf(text, sizeof text, "pkcs11:token=client;object=client-p256;type=private?pin-source=file:%s/pin.txt", sandbox);
    hsmtls_p11_uri *src = hsmtls_p11_uri_parse(text);
    hsmtls_p11_object *k = hsmtls_p11_object_find(src, NULL, CKO_PRIVATE_KEY);
    CHECK_MSG(k != NULL, hsmtls_p11_error_message());
    CHECK(hsmtls_p11_calls("C_Login") == 2);
    CHECK(hsmtls_p11_object_find(bare, NULL, CKO_PRIVATE_KEY) == k);
    CHECK(hsmtls_p11_calls("C_Login") == 2);
    CHECK(k && hsmtls_p11_token_logged_in(hsmtls_p11_object_token(k)));
    hsmtls_p11_uri_free(src);
    hsmtls_p11_uri_free(bare);
}

static int pin_from_callback(const hsmtls_p11_pin_request *req, char *pin, size_t size, void *arg)
{
    (*(int *)arg)++;
    CHECK(req->token_label && strcmp(req->token_label, "server") == 0);
    snprintf(pin, size, "1234");
    return 4;
}

static void case_callback(void)
{
    int asked = 0;
    hsmtls_p11_lookup opt = { .pin_cb = pin_from_callback, .pin_cb_arg = &asked };
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=server;object=ec-p256;type=private");
    hsmtls_p11_object *k = hsmtls_p11_object_find(uri, &opt, CKO_PRIVATE_KEY);
    CHECK_MSG(k != NULL, hsmtls_p11_error_message());
    CHECK(asked == 1);
    CHECK(hsmtls_p11_object_find(uri, &opt, CKO_PRIVATE_KEY) == k && asked == 1);
    hsmtls_p11_uri_free(uri);
}

struct worker { hsmtls_p11_object *key; int ok; };

static void *sign_many(void *arg)
{
    struct worker *w = arg;
    unsigned char digest[32], sig[128];
    SHA256(message, sizeof message, digest);
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    w->ok = 0;
    for (int i = 0; i < 500; i++) {
        size_t siglen = sizeof sig;
        if (hsmtls_p11_sign(w->key, &mech, digest, sizeof digest, sig, &siglen) == 0 && siglen == 64)
            w->ok++;
    }
    return NULL;
}

static void case_pool(void)
{
    hsmtls_p11_object *k = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    if (!k)
        return;
    hsmtls_p11_calls_reset();
    pthread_t th[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i].key = k;
        pthread_create(&th[i], NULL, sign_many, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    CHECK(total == 8 * 500);
    CHECK(hsmtls_p11_calls("C_Sign") == 4000);
    char detail[64];
    snprintf(detail, sizeof detail, "%lu sessions opened", hsmtls_p11_calls("C_OpenSession"));
    CHECK_MSG(hsmtls_p11_calls("C_OpenSession") <= 8, detail);
    hsmtls_p11_token *t = hsmtls_p11_object_token(k);
    CHECK(hsmtls_p11_token_idle_sessions(t) + (size_t)hsmtls_p11_token_holds_copies(t) ==
          hsmtls_p11_token_open_sessions(t));
    CHECK(sign_ecdsa_and_verify(k, "ec-p256"));
}

static void case_invalidate(void)
{
    hsmtls_p11_object *k = find("pkcs11:token=server;object=rsa2048;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    hsmtls_p11_object *e = find("pkcs11:token=server;object=ec-p256;type=private", CKO_PRIVATE_KEY);
    if (!k || !e)
        return;
    CHECK(sign_ecdsa_and_verify(e, "ec-p256"));
    /* Every session closed behind the pool's back, and with them the login. */
    CHECK(hsmtls_p11_token_close_all_sessions(hsmtls_p11_object_token(e)) == 0);
    hsmtls_p11_calls_reset();
    CHECK_MSG(sign_ecdsa_and_verify(e, "ec-p256"), hsmtls_p11_error_message());
    CHECK(hsmtls_p11_calls("C_Login") == 1);
    CHECK(hsmtls_p11_calls("C_Sign") == 1);
    /* The next operation makes the key's copy inside the token again (the key cache,
     * test_key_cache.c); the one after is warm. */
    CHECK(sign_ecdsa_and_verify(e, "ec-p256"));
    hsmtls_p11_calls_reset();
    CHECK(sign_ecdsa_and_verify(e, "ec-p256"));
    CHECK(hsmtls_p11_calls_total() == 2);
}

static void case_fork(void)
{
    hsmtls_p11_object *k = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    if (!k)
        return;
    CHECK(sign_ecdsa_and_verify(k, "ec-p256"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = sign_ecdsa_and_verify(k, "ec-p256") && sign_ecdsa_and_verify(k, "ec-p256");
        if (!ok)
            fprintf(stderr, "child: %s\n", hsmtls_p11_error_message());
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child could not sign");
    CHECK(sign_ecdsa_and_verify(k, "ec-p256"));
}

/* An object added to the token by another program after a lookup is found: a miss
 * searches again. Objects of types the core does not know are skipped. */
static void case_added(void)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=scratch;object=later?pin-value=1234");
    hsmtls_p11_object **objs;
    size_t n = 99;
    CHECK_MSG(hsmtls_p11_objects_list(uri, NULL, HSMTLS_P11_ANY_CLASS, &objs, &n) == 0, hsmtls_p11_error_message());
    CHECK(n == 0);
    free(objs);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "env -u OPENSSL_CONF -u LD_PRELOAD pkcs11-tool --module \"$HSMTLS_PKCS11_MODULE\" --token-label scratch --login --pin 1234 "
             "--keygen --key-type AES:16 --label later --id 42 >/dev/null 2>&1 && "
             "env -u OPENSSL_CONF -u LD_PRELOAD pkcs11-tool --module \"$HSMTLS_PKCS11_MODULE\" --token-label scratch --login --pin 1234 "
             "--write-object %s/certs/ec-p256.pem --type cert --label later --id 43 >/dev/null 2>&1",
             sandbox);
    CHECK_MSG(system(cmd) == 0, "pkcs11-tool could not add objects to the scratch token");
    CHECK(hsmtls_p11_objects_list(uri, NULL, HSMTLS_P11_ANY_CLASS, &objs, &n) == 0);
    CHECK_MSG(n == 1, "the added certificate was not found, or the AES key was not skipped");
    if (n == 1)
        CHECK(hsmtls_p11_object_class(objs[0]) == CKO_CERTIFICATE && hsmtls_p11_object_key_type(objs[0]) == CKK_EC);
    free(objs);
    hsmtls_p11_uri_free(uri);
}

static void case_errors(void)
{
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse("pkcs11:token=nosuch;object=x");
    CHECK(hsmtls_p11_object_find(u, NULL, CKO_CERTIFICATE) == NULL);
    const char *m = hsmtls_p11_error_message();
    CHECK_MSG(strstr(m, "nosuch") && strstr(m, "\"server\"") && strstr(m, "\"client\""), m);
    hsmtls_p11_uri_free(u);

    u = hsmtls_p11_uri_parse("pkcs11:token=server;object=nosuch;type=cert");
    CHECK(hsmtls_p11_object_find(u, NULL, CKO_CERTIFICATE) == NULL);
    m = hsmtls_p11_error_message();
    CHECK_MSG(strstr(m, "object=nosuch") && strstr(m, "rsa2048"), m);
    hsmtls_p11_uri_free(u);

    /* HSMTLS_PKCS11_MODULE would override the URI's module-path. */
    char *env_module = strdup(getenv("HSMTLS_PKCS11_MODULE") ? getenv("HSMTLS_PKCS11_MODULE") : "");
    unsetenv("HSMTLS_PKCS11_MODULE");
    u = hsmtls_p11_uri_parse("pkcs11:token=server?module-path=/nonexistent/module.so");
    CHECK(hsmtls_p11_object_find(u, NULL, CKO_CERTIFICATE) == NULL);
    m = hsmtls_p11_error_message();
    CHECK_MSG(strstr(m, "/nonexistent/module.so"), m);
    hsmtls_p11_uri_free(u);
    setenv("HSMTLS_PKCS11_MODULE", env_module, 1);
    free(env_module);

    hsmtls_p11_object *cert = find("pkcs11:token=server;object=rsa2048;type=cert", CKO_CERTIFICATE);
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    CHECK(cert && hsmtls_p11_sign(cert, &mech, message, 10, sig, &siglen) < 0);
}

/* Through p11-kit's remoting (p11-kit-client.so): RSA and ECDSA work; what the RPC of
 * p11-kit 0.24 cannot forward (CKM_EDDSA) fails with an error that names it. */
static void case_remote(void)
{
    hsmtls_p11_object *ec = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234", CKO_PRIVATE_KEY);
    CHECK(ec && sign_ecdsa_and_verify(ec, "ec-p256"));
    hsmtls_p11_object *rsa = find("pkcs11:token=server;object=rsa2048;type=private", CKO_PRIVATE_KEY);
    unsigned char digest[32], sig[512];
    size_t siglen = sizeof sig;
    SHA256(message, sizeof message, digest);
    CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
    CK_MECHANISM pss = { CKM_RSA_PKCS_PSS, &pp, sizeof pp };
    CHECK_MSG(rsa && hsmtls_p11_sign(rsa, &pss, digest, sizeof digest, sig, &siglen) == 0, hsmtls_p11_error_message());
    CHECK(soft_verify("rsa2048", EVP_sha256(), 1, message, sizeof message, sig, siglen));
    hsmtls_p11_object *ed = find("pkcs11:token=server;object=ed25519;type=private", CKO_PRIVATE_KEY);
    CK_MECHANISM eddsa = { CKM_EDDSA, NULL, 0 };
    siglen = sizeof sig;
    int rc = ed ? hsmtls_p11_sign(ed, &eddsa, message, sizeof message, sig, &siglen) : 0;
    if (rc == 0) /* a p11-kit that forwards EdDSA: then the signature must be right */
        CHECK(ed && soft_verify("ed25519", NULL, 0, message, sizeof message, sig, siglen));
    else
        CHECK_MSG(strstr(hsmtls_p11_error_message(), "CKM_EDDSA") &&
                  strstr(hsmtls_p11_error_message(), "CKR_MECHANISM_INVALID") &&
                  strstr(hsmtls_p11_error_message(), "mechanism"), hsmtls_p11_error_message());
}

static int verify_with_public(hsmtls_p11_object *key, const EVP_MD *md, const unsigned char *sig, size_t siglen)
{
    EVP_PKEY *pub = hsmtls_p11_object_public_key(key, NULL, NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = pub && ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, message, sizeof message) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return ok;
}

/* Key pairs generated on the scratch token sign, and their public half verifies. */
static void case_keygen(void)
{
    char label[64];
    unsigned char id[4] = { 0x70, (unsigned char)(getpid() >> 16), (unsigned char)(getpid() >> 8), (unsigned char)getpid() };
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=scratch?pin-value=1234");
    static const struct { CK_KEY_TYPE type; const char *curve; unsigned bits; } kinds[] = {
        { CKK_EC, "P-256", 0 }, { CKK_RSA, NULL, 2048 }, { CKK_EC_EDWARDS, "ED25519", 0 },
    };
    for (int i = 0; i < 3; i++) {
        snprintf(label, sizeof label, "gen-%d-%ld", i, (long)getpid());
        id[0] = (unsigned char)(0x70 + i);
        hsmtls_p11_keygen spec = { kinds[i].type, kinds[i].bits, kinds[i].curve, label, id, sizeof id };
        hsmtls_p11_object *k = hsmtls_p11_generate_key_pair(uri, NULL, &spec);
        CHECK_MSG(k != NULL, hsmtls_p11_error_message());
        if (!k)
            continue;
        CHECK(hsmtls_p11_object_class(k) == CKO_PRIVATE_KEY && hsmtls_p11_object_key_type(k) == kinds[i].type);
        unsigned char digest[32], sig[512], der[300];
        size_t siglen = sizeof sig, der_len;
        SHA256(message, sizeof message, digest);
        if (kinds[i].type == CKK_EC) {
            CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
            CHECK(hsmtls_p11_sign(k, &m, digest, sizeof digest, sig, &siglen) == 0);
            CHECK(ecdsa_raw_to_der(sig, siglen, der, &der_len) && verify_with_public(k, EVP_sha256(), der, der_len));
        } else if (kinds[i].type == CKK_RSA) {
            CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
            CK_MECHANISM m = { CKM_RSA_PKCS_PSS, &pp, sizeof pp };
            CHECK(hsmtls_p11_sign(k, &m, digest, sizeof digest, sig, &siglen) == 0);
            EVP_PKEY *pub = hsmtls_p11_object_public_key(k, NULL, NULL);
            EVP_PKEY_CTX *pc = pub ? EVP_PKEY_CTX_new(pub, NULL) : NULL;
            CHECK(pc && EVP_PKEY_verify_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
                  EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
                  EVP_PKEY_verify(pc, sig, siglen, digest, sizeof digest) == 1);
            EVP_PKEY_CTX_free(pc);
            EVP_PKEY_free(pub);
        } else {
            CK_MECHANISM m = { CKM_EDDSA, NULL, 0 };
            CHECK(hsmtls_p11_sign(k, &m, message, sizeof message, sig, &siglen) == 0);
            CHECK(verify_with_public(k, NULL, sig, siglen));
        }
        /* Found again by URI, as any other key. */
        char *text = hsmtls_p11_object_uri(k);
        hsmtls_p11_uri *again = text ? hsmtls_p11_uri_parse(text) : NULL;
        CHECK(again && hsmtls_p11_object_find(again, NULL, CKO_PRIVATE_KEY) == k);
        hsmtls_p11_uri_free(again);
        free(text);
        /* The same label and id again: refused, never generated over. */
        CHECK(hsmtls_p11_generate_key_pair(uri, NULL, &spec) == NULL);
        CHECK_MSG(strstr(hsmtls_p11_error_message(), "already holds"), hsmtls_p11_error_message());
    }
    hsmtls_p11_keygen bad = { CKK_EC, 0, "P-192", "bad-curve", NULL, 0 };
    CHECK(hsmtls_p11_generate_key_pair(uri, NULL, &bad) == NULL);
    CHECK_MSG(strstr(hsmtls_p11_error_message(), "curve"), hsmtls_p11_error_message());
    hsmtls_p11_uri_free(uri);
}

/* CKA_EC_PARAMS as tokens write it: an OID, or for EdDSA a PrintableString name. */
static void case_curves(void)
{
    static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
    static const unsigned char ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
    static const unsigned char ed448_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x71 };
    static const unsigned char ed25519_name[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9' };
    static const unsigned char ed448_name[] = { 0x13, 0x0a, 'e', 'd', 'w', 'a', 'r', 'd', 's', '4', '4', '8' };
    static const unsigned char secp256k1[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a };
    static const unsigned char truncated[] = { 0x13, 0x0c, 'e', 'd', 'w' };
    unsigned bits = 0;
    const char *c = hsmtls_p11_curve_from_params(p256, sizeof p256, &bits);
    CHECK(c && strcmp(c, "P-256") == 0 && bits == 256);
    c = hsmtls_p11_curve_from_params(ed25519_oid, sizeof ed25519_oid, &bits);
    CHECK(c && strcmp(c, "ED25519") == 0);
    c = hsmtls_p11_curve_from_params(ed25519_name, sizeof ed25519_name, &bits);
    CHECK(c && strcmp(c, "ED25519") == 0);
    c = hsmtls_p11_curve_from_params(ed448_oid, sizeof ed448_oid, &bits);
    CHECK(c && strcmp(c, "ED448") == 0 && bits == 456);
    c = hsmtls_p11_curve_from_params(ed448_name, sizeof ed448_name, &bits);
    CHECK(c && strcmp(c, "ED448") == 0);
    CHECK(hsmtls_p11_curve_from_params(secp256k1, sizeof secp256k1, &bits) == NULL);
    CHECK(hsmtls_p11_curve_from_params(truncated, sizeof truncated, &bits) == NULL);
    CHECK(hsmtls_p11_curve_from_params(NULL, 0, &bits) == NULL);
}

static void count_token(const hsmtls_p11_token *t, void *arg)
{
    (void)t;
    (*(size_t *)arg)++;
}

/* What the CLI and the provider read of tokens, modules and objects: each answer checked
 * against what the sandbox made. */
static void case_inventory(void)
{
    CHECK(strcmp(hsmtls_p11_rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT") == 0);
    CHECK(strcmp(hsmtls_p11_key_type_name(CKK_EC), "CKK_EC") == 0);

    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=server");
    hsmtls_p11_module **mods = NULL;
    size_t nmods = 0;
    CHECK_MSG(hsmtls_p11_modules_resolve(uri, NULL, &mods, &nmods) == 0, hsmtls_p11_error_message());
    CHECK(nmods == 1);
    const char *env = getenv("HSMTLS_PKCS11_MODULE");
    if (nmods == 1 && env) {
        CHECK(strcmp(hsmtls_p11_module_path(mods[0]), env) == 0);
        CHECK(strcmp(hsmtls_p11_module_name(mods[0]), strrchr(env, '/') + 1) == 0);
        CHECK(hsmtls_p11_module_info(mods[0])->cryptokiVersion.major == 2);
    }

    hsmtls_p11_token **tokens = NULL;
    size_t ntokens = 0;
    CHECK_MSG(hsmtls_p11_tokens_list(uri, NULL, &tokens, &ntokens) == 0, hsmtls_p11_error_message());
    CHECK(ntokens == 1);
    if (ntokens == 1 && nmods == 1) {
        hsmtls_p11_token *t = tokens[0];
        CHECK(strcmp(hsmtls_p11_token_label(t), "server") == 0);
        CHECK(memcmp(hsmtls_p11_token_info(t)->label, "server ", 7) == 0);
        CHECK(hsmtls_p11_token_module(t) == mods[0]);
        CHECK(hsmtls_p11_token_slot(t) != (CK_SLOT_ID)-1);
        size_t seen = 0;
        hsmtls_p11_tokens_each(count_token, &seen);
        CHECK(seen >= 1);

        hsmtls_p11_object *key = find("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234",
                                      CKO_PRIVATE_KEY);
        if (key) {
            size_t id_len = 0;
            CHECK(strcmp(hsmtls_p11_object_label(key), "ec-p256") == 0);
            CHECK(hsmtls_p11_object_id(key, &id_len) != NULL && id_len > 0);
            CHECK(!hsmtls_p11_object_always_authenticate(key));
            unsigned long before = hsmtls_p11_token_signatures(t);
            CHECK(sign_ecdsa_and_verify(key, "ec-p256"));
            CHECK(hsmtls_p11_token_signatures(t) == before + 1);
        }
        hsmtls_p11_object *cert = find("pkcs11:token=server;object=ec-p256;type=cert", CKO_CERTIFICATE);
        size_t der_len = 0;
        const unsigned char *der = cert ? hsmtls_p11_object_cert_der(cert, &der_len) : NULL;
        X509 *x = der ? d2i_X509(NULL, &der, (long)der_len) : NULL;
        CHECK(x != NULL);
        X509_free(x);
    }
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *mem = open_memstream(&printed, &printed_len);
    hsmtls_p11_calls_print(mem);
    fclose(mem);
    CHECK(check_contains(printed, "C_Sign "));
    free(printed);
    free(tokens);
    free(mods);
    hsmtls_p11_uri_free(uri);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "ops", case_ops }, { "calls", case_calls }, { "login", case_login },
        { "callback", case_callback }, { "pool", case_pool }, { "invalidate", case_invalidate },
        { "fork", case_fork }, { "added", case_added }, { "errors", case_errors },
        { "curves", case_curves }, { "remote", case_remote },
        { "keygen", case_keygen }, { "inventory", case_inventory },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    sandbox = argv[1];
    return check_run(c);
}
