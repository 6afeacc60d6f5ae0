/* libhsmtls and libp11's engine (OpenSSL's ENGINE API) in one process, on the same
 * SoftHSM2 module (issue 11): the engine loads the sandbox's client key
 * (pkcs11:token=client;object=client-p256) and signs with EVP_DigestSign, and the
 * signature verifies against the key's certificate, while libhsmtls makes mutual TLS 1.3
 * handshakes with the server key on token "server" and the same client key, one
 * signature on each token per handshake.
 *
 * libp11 0.4.12 calls C_Initialize when it first loads a key (taking
 * CKR_CRYPTOKI_ALREADY_INITIALIZED as success) and C_Finalize, whoever initialised the
 * module, when the engine's last functional reference goes (ENGINE_finish). A private key
 * it loaded keeps such a reference (EVP_PKEY_set1_engine) from libp11's own key cache, so
 * after a signature ENGINE_finish finalises nothing in this process's lifetime; after
 * loading only a public key it does finalise, under libhsmtls. There a handshake must
 * complete (the core starts the module again) or fail with a message naming the PKCS#11
 * reason, never crash: those steps print "tolerated" failures instead of failing a check,
 * and tests/test_coexist.py decides.
 *
 * usage: test_coexist_libp11 SANDBOX_DIR ORDER
 *   ORDER engine-first      engine signs; hsmtls; engine signs again; hsmtls;
 *                           ENGINE_finish + ENGINE_free; exit
 *         hsmtls-first      hsmtls; engine signs; hsmtls; engine signs again;
 *                           ENGINE_finish + ENGINE_free; exit
 *         finish-middle     hsmtls; engine signs; ENGINE_finish + ENGINE_free;
 *                           hsmtls again (kept and new configs)
 *         engine-first-finish-middle
 *                           engine signs; hsmtls; ENGINE_finish + ENGINE_free; hsmtls
 *                           again (kept and new configs)
 *         finalize-middle   hsmtls; engine reads the public key; ENGINE_finish +
 *                           ENGINE_free (libp11's C_Finalize); hsmtls again, tolerated
 *         engine-first-finalize-middle
 *                           engine reads the public key; hsmtls; ENGINE_finish +
 *                           ENGINE_free (C_Finalize); hsmtls again, tolerated
 * Each step prints "# STEP: ..." and the program ends with "# done ORDER" and the check
 * counts; it must exit 0 and leave nothing for the sanitizers to report. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "test_coexist_hsmtls.h"

#define LIBP11_ENGINE "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
#define COEXIST_CLIENT_PUB "pkcs11:token=client;object=client-p256;type=public"

static ENGINE *engine;
static EVP_PKEY *engine_key; /* loaded on first use, kept until the engine goes */
static EVP_PKEY *client_pub; /* from certs/client-p256.pem */

/* OpenSSL's error queue as one line (and emptied), for a failed check's detail. */
static const char *ossl_errors(const char *what)
{
    static char buf[1200];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", what);
    unsigned long e;
    while ((e = ERR_get_error()) != 0 && n < sizeof buf - 2) {
        buf[n++] = ':';
        buf[n++] = ' ';
        ERR_error_string_n(e, buf + n, sizeof buf - n);
        n += strlen(buf + n);
    }
    return buf;
}

static int ctrl(const char *cmd, const char *arg)
{
    int ok = ENGINE_ctrl_cmd_string(engine, cmd, arg, 0) == 1;
    CHECK_MSG(ok, ossl_errors(cmd));
    return ok;
}

static void engine_start(const char *step)
{
    /* Keeps libp11 mapped after ENGINE_free (which unloads the engine's DSO): what it
     * still holds then stays reachable, and a leak report can name it, instead of
     * frames in an unloaded "<unknown module>". */
    static void *pinned;
    if (!pinned)
        pinned = dlopen(LIBP11_ENGINE, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(pinned != NULL, dlerror());
    engine = ENGINE_by_id("dynamic");
    CHECK_MSG(engine != NULL, ossl_errors("ENGINE_by_id(\"dynamic\")"));
    int ok = engine && ctrl("SO_PATH", LIBP11_ENGINE) && ctrl("ID", "pkcs11") && ctrl("LOAD", NULL) &&
             ctrl("MODULE_PATH", coexist_module()) && ctrl("PIN", coexist_pin());
    if (ok) {
        ok = ENGINE_init(engine) == 1;
        CHECK_MSG(ok, ossl_errors("ENGINE_init"));
    }
    if (!ok && engine) {
        ENGINE_free(engine);
        engine = NULL;
    }
    FILE *f = fopen(check_path("certs/client-p256.pem"), "r");
    X509 *crt = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    CHECK_MSG(crt != NULL, check_path("certs/client-p256.pem"));
    if (f)
        fclose(f);
    client_pub = crt ? X509_get_pubkey(crt) : NULL;
    X509_free(crt);
    printf("# %s: libp11's engine initialised%s\n", step, engine ? "" : " FAILED");
    fflush(stdout);
}

/* One ECDSA P-256 signature by the engine's key that verifies against the certificate,
 * while the same signature over other data does not. */
static void engine_sign(const char *step)
{
    static const unsigned char msg[] = "hsmtls coexistence: signed by libp11 on token client";
    int ok = 0;
    if (engine && !engine_key) {
        engine_key = ENGINE_load_private_key(engine, COEXIST_CLIENT_KEY, NULL, NULL);
        CHECK_MSG(engine_key != NULL, ossl_errors("ENGINE_load_private_key " COEXIST_CLIENT_KEY));
    }
    if (engine_key && client_pub) {
        unsigned char sig[256];
        size_t siglen = sizeof sig;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int signed_ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, engine_key) == 1 &&
                        EVP_DigestSign(md, sig, &siglen, msg, sizeof msg - 1) == 1;
        CHECK_MSG(signed_ok, ossl_errors("EVP_DigestSign with the engine's key"));
        EVP_MD_CTX_free(md);
        if (signed_ok) {
            md = EVP_MD_CTX_new();
            ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, client_pub) == 1 &&
                 EVP_DigestVerify(md, sig, siglen, msg, sizeof msg - 1) == 1;
            CHECK_MSG(ok, ossl_errors("EVP_DigestVerify (the token's signature, the certificate's key)"));
            EVP_MD_CTX_free(md);
            md = EVP_MD_CTX_new();
            CHECK(md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, client_pub) == 1 &&
                  EVP_DigestVerify(md, sig, siglen, msg, sizeof msg - 2) != 1);
            EVP_MD_CTX_free(md);
            ERR_clear_error();
        }
    }
    printf("# %s: libp11 signature on token client %s\n", step, ok ? "verified" : "FAILED");
    fflush(stdout);
}

/* The engine's view of the client key's public half (a public key object: no private
 * key loaded, so nothing keeps the engine initialised after ENGINE_finish), equal to the
 * certificate's key. */
static void engine_public_key(const char *step)
{
    EVP_PKEY *pub = NULL;
    if (engine) {
        pub = ENGINE_load_public_key(engine, COEXIST_CLIENT_PUB, NULL, NULL);
        CHECK_MSG(pub != NULL, ossl_errors("ENGINE_load_public_key " COEXIST_CLIENT_PUB));
    }
    int ok = pub && client_pub && EVP_PKEY_eq(pub, client_pub) == 1;
    CHECK_MSG(ok, "the token's public key is the certificate's");
    EVP_PKEY_free(pub);
    printf("# %s: libp11 read the public key on token client %s\n", step, ok ? "(the certificate's)" : "FAILED");
    fflush(stdout);
}

static void engine_stop(const char *step)
{
    EVP_PKEY_free(engine_key);
    engine_key = NULL;
    EVP_PKEY_free(client_pub);
    client_pub = NULL;
    if (engine) {
        CHECK_MSG(ENGINE_finish(engine) == 1, ossl_errors("ENGINE_finish"));
        CHECK(ENGINE_free(engine) == 1);
        engine = NULL;
    }
    printf("# %s: ENGINE_finish and ENGINE_free done\n", step);
    fflush(stdout);
}

/* The configs the orders make, freed once the order has run. */
static hsmtls_config *s, *c;

static void order_engine_first(void)
{
    engine_start("1");
    engine_sign("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    engine_sign("3 after an hsmtls handshake");
    coexist_handshake("4", s, c);
    engine_stop("5");
}

static void order_hsmtls_first(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    engine_start("2");
    engine_sign("2");
    coexist_handshake("3", s, c);
    engine_sign("4 after an hsmtls handshake");
    engine_stop("5");
}

static void order_finish_middle(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    engine_start("2");
    engine_sign("2");
    engine_stop("3");
    coexist_hsmtls_round("4 after ENGINE_finish", s, c);
}

static void order_engine_first_finish_middle(void)
{
    engine_start("1");
    engine_sign("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    engine_stop("3");
    coexist_hsmtls_round("4 after ENGINE_finish", s, c);
}

static void order_finalize_middle(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    engine_start("2");
    engine_public_key("2");
    engine_stop("3 (libp11's C_Finalize)");
    coexist_tolerate_failures = 1;
    coexist_hsmtls_round("4 after libp11's C_Finalize", s, c);
}

static void order_engine_first_finalize_middle(void)
{
    engine_start("1");
    engine_public_key("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    engine_stop("3 (libp11's C_Finalize)");
    coexist_tolerate_failures = 1;
    coexist_hsmtls_round("4 after libp11's C_Finalize", s, c);
}

int main(int argc, char **argv)
{
    static const check_case orders[] = {
        { "engine-first", order_engine_first },
        { "hsmtls-first", order_hsmtls_first },
        { "finish-middle", order_finish_middle },
        { "engine-first-finish-middle", order_engine_first_finish_middle },
        { "finalize-middle", order_finalize_middle },
        { "engine-first-finalize-middle", order_engine_first_finalize_middle },
    };
    if (check_list(argc, argv, orders, CHECK_NCASES(orders)))
        return 0;
    const check_case *order = argc >= 3 ? check_find(argv[0], argv[2], orders, CHECK_NCASES(orders)) : NULL;
    if (!order || argc != 3) {
        fprintf(stderr, "usage: test_coexist_libp11 SANDBOX_DIR ORDER | test_coexist_libp11 --list\n");
        return 2;
    }
    check_set_dir(argv[1]);
    int status = check_run(order);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
    printf("# done %s\n", argv[2]);
    return status;
}
