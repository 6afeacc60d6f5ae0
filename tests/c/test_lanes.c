/* Lanes: the core's several connections to a module that serves one call at a time
 * (p11-kit's client), against the sandbox's server token exported by `p11-kit server`
 * (tests/test_lanes.py). HSMTLS_TEST_LANES says how many connections the case expects.
 * usage: test_lanes SANDBOX_DIR CASE   (the sandbox's env.sh and the remote's in effect) */
#include "check.h"
#include "hsmtls/p11_object.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define THREADS 4

static hsmtls_p11_object *key;
static EVP_PKEY *pub;

static int setup(void)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=server;object=ec-p256;type=private?pin-value=1234");
    key = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    hsmtls_p11_uri_free(uri);
    CHECK_MSG(key != NULL, hsmtls_p11_error_message());
    pub = key ? hsmtls_p11_object_public_key(key, NULL, NULL) : NULL;
    CHECK_MSG(pub != NULL, hsmtls_p11_error_message());
    return key && pub;
}

/* One ECDSA signature, checked with the public half (r||s to DER first). */
static int sign_right(void)
{
    unsigned char digest[32], sig[132], der[160], *p = der;
    size_t siglen = sizeof sig;
    SHA256((const unsigned char *)"lanes", 5, digest);
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    if (hsmtls_p11_sign(key, &mech, digest, sizeof digest, sig, &siglen) < 0) {
        fprintf(stderr, "signing: %s\n", hsmtls_p11_error_message());
        return 0;
    }
    ECDSA_SIG *s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(sig, (int)siglen / 2, NULL), BN_bin2bn(sig + siglen / 2, (int)siglen / 2, NULL));
    int der_len = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
    int ok = ctx && der_len > 0 && EVP_PKEY_verify_init(ctx) == 1 &&
             EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, sizeof digest) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

struct worker {
    int rounds, right;
};

static void *signer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++)
        w->right += sign_right();
    return NULL;
}

static int run_threads(int rounds)
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ rounds, 0 };
        pthread_create(&th[i], NULL, signer, &w[i]);
    }
    int right = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        right += w[i].right;
    }
    return right;
}

static size_t expected_lanes(void)
{
    const char *v = getenv("HSMTLS_TEST_LANES");
    return v ? (size_t)atoi(v) : 4;
}

/* Four threads sign at once: every signature right, each counted once on the token,
 * over as many connections as expected. */
static void case_spread(void)
{
    if (!setup())
        return;
    hsmtls_p11_token *t = hsmtls_p11_object_token(key);
    unsigned long before = hsmtls_p11_token_signatures(t);
    CHECK(run_threads(25) == THREADS * 25);
    CHECK(hsmtls_p11_token_signatures(t) - before == THREADS * 25);
    char detail[64];
    snprintf(detail, sizeof detail, "%zu connections", hsmtls_p11_module_lanes(hsmtls_p11_token_module(t)));
    CHECK_MSG(hsmtls_p11_module_lanes(hsmtls_p11_token_module(t)) == expected_lanes(), detail);
    /* One login per connection, no more. */
    CHECK(hsmtls_p11_calls("C_Login") == expected_lanes());
}

/* One thread signing: the module's own connection only, nothing more opened. */
static void case_single(void)
{
    if (!setup())
        return;
    for (int i = 0; i < 10; i++)
        CHECK(sign_right());
    CHECK(hsmtls_p11_module_lanes(hsmtls_p11_token_module(hsmtls_p11_object_token(key))) == 1);
    CHECK(hsmtls_p11_calls("C_Login") == 1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Behind a token whose every signature takes HSMTLS_TEST_DELAY_MS (hsmtls-fault under
 * p11-kit server): four threads' signatures take about one delay in all with four
 * connections, and four delays with one (they wait in line). */
static void case_overlap(void)
{
    if (!setup())
        return;
    double delay = atof(getenv("HSMTLS_TEST_DELAY_MS") ? getenv("HSMTLS_TEST_DELAY_MS") : "0") / 1000;
    CHECK(delay > 0);
    CHECK(run_threads(1) == THREADS); /* lanes opened, logged in, keys found */
    double start = now();
    CHECK(run_threads(1) == THREADS);
    double took = now() - start;
    char detail[96];
    snprintf(detail, sizeof detail, "%d signatures took %.0f ms over %zu connections", THREADS, took * 1000,
             expected_lanes());
    printf("# %s\n", detail);
    if (expected_lanes() >= THREADS)
        CHECK_MSG(took < 2.5 * delay, detail);
    else
        CHECK_MSG(took >= 0.9 * THREADS * delay, detail);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = { { "spread", case_spread }, { "single", case_single },
                                        { "overlap", case_overlap } };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
