/* libp11's engine side of the coexistence tests: see test_coexist_libp11_engine.h. */
#include "test_coexist_libp11_engine.h"

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

void coexist_engine_start(const char *step)
{
    /* Keeps libp11 mapped after ENGINE_free (which unloads the engine's DSO): what it
     * still holds then stays reachable, and a leak report can name it, instead of
     * frames in an unloaded "<unknown module>". */
    static void *pinned;
    if (!pinned)
        pinned = dlopen(COEXIST_LIBP11_ENGINE, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(pinned != NULL, dlerror());
    engine = ENGINE_by_id("dynamic");
    CHECK_MSG(engine != NULL, ossl_errors("ENGINE_by_id(\"dynamic\")"));
    int ok = engine && ctrl("SO_PATH", COEXIST_LIBP11_ENGINE) && ctrl("ID", "pkcs11") && ctrl("LOAD", NULL) &&
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
void coexist_engine_sign(const char *step)
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
void coexist_engine_public_key(const char *step)
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

void coexist_engine_stop(const char *step)
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
