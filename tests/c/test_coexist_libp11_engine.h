/* libp11's engine side of the coexistence tests (test_coexist_libp11.c,
 * test_coexist_both.c), through OpenSSL's ENGINE API (libp11 is loaded at run time by
 * ENGINE "dynamic"): the engine signs with the sandbox's client key (COEXIST_CLIENT_KEY)
 * by EVP_DigestSign, or reads its public key only, and both are compared with the key's
 * certificate.
 *
 * libp11 0.4.12 calls C_Initialize when it first loads a key (taking
 * CKR_CRYPTOKI_ALREADY_INITIALIZED as success) and C_Finalize, whoever initialised the
 * module, when the engine's last functional reference goes (ENGINE_finish). A private key
 * it loaded keeps such a reference (EVP_PKEY_set1_engine) from libp11's own key cache, so
 * after a signature ENGINE_finish finalises nothing in the process's lifetime; after
 * loading only a public key it does finalise. */
#ifndef HSMTLS_TEST_COEXIST_LIBP11_ENGINE_H
#define HSMTLS_TEST_COEXIST_LIBP11_ENGINE_H

#define COEXIST_LIBP11_ENGINE "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
#define COEXIST_CLIENT_PUB "pkcs11:token=client;object=client-p256;type=public"

/* ENGINE "dynamic" loading libp11 with coexist_module() and the sandbox's PIN;
 * ENGINE_init. Prints "# STEP: libp11's engine initialised". */
void coexist_engine_start(const char *step);
/* One signature by the client key through the engine (loaded on first use, kept until
 * coexist_engine_stop). Prints "# STEP: libp11 signature on token client verified" or
 * "FAILED". */
void coexist_engine_sign(const char *step);
/* The engine reads the client key's public half only (ENGINE_load_public_key), equal to
 * the certificate's. Prints "# STEP: libp11 read the public key on token client (the
 * certificate's)" or "FAILED". */
void coexist_engine_public_key(const char *step);
/* ENGINE_finish and ENGINE_free (libp11's C_Finalize when no private key was loaded).
 * Prints "# STEP: ENGINE_finish and ENGINE_free done". */
void coexist_engine_stop(const char *step);

#endif
