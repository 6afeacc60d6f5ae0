/* GnuTLS's side of the coexistence tests (test_coexist_gnutls.c, test_coexist_both.c):
 * GnuTLS's PKCS#11 signs with the sandbox's client key (COEXIST_CLIENT_KEY) and the
 * signature verifies against the key's certificate. GnuTLS reaches the module through
 * p11-kit, which initialises it (C_Initialize) and finalises it at gnutls_pkcs11_deinit()
 * when its own C_Initialize was the one that succeeded. Its failures are checks, or
 * under coexist_tolerate_failures printed lines (test_coexist_hsmtls.h). */
#ifndef HSMTLS_TEST_COEXIST_GNUTLS_PKCS11_H
#define HSMTLS_TEST_COEXIST_GNUTLS_PKCS11_H

/* gnutls_global_init and gnutls_pkcs11_init: manual, gnutls_pkcs11_init(MANUAL) +
 * gnutls_pkcs11_add_provider(coexist_module()); else gnutls_pkcs11_init(AUTO), p11-kit's
 * registry. Prints "# STEP: GnuTLS PKCS#11 initialised (...)". */
void coexist_gnutls_start(const char *step, int manual);
/* GnuTLS signs with the key it kept (imported on first use) and, with `fresh`, also with
 * a key it imports again: 1 when every signature verified. Prints "# STEP: GnuTLS
 * signature on token client verified" or "FAILED". */
int coexist_gnutls_sign(const char *step, int fresh);
/* The kept key freed, gnutls_pkcs11_deinit and gnutls_global_deinit. */
void coexist_gnutls_stop(const char *step);

#endif
