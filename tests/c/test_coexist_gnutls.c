/* libhsmtls and GnuTLS's PKCS#11 in one process, on the same SoftHSM2 module (issue 11):
 * GnuTLS signs with the sandbox's client key (pkcs11:token=client;object=client-p256) and
 * the signature verifies against the key's certificate, while libhsmtls makes mutual
 * TLS 1.3 handshakes with the server key on token "server" and the same client key, one
 * signature on each token per handshake. GnuTLS reaches the module through p11-kit,
 * which initialises it (C_Initialize) and finalises it at gnutls_pkcs11_deinit() when its
 * own C_Initialize was the one that succeeded (GnuTLS's steps:
 * test_coexist_gnutls_pkcs11.c).
 *
 * usage: test_coexist_gnutls SANDBOX_DIR ORDER MODE
 *   ORDER gnutls-first  GnuTLS signs; hsmtls; GnuTLS deinit; hsmtls again
 *         hsmtls-first  hsmtls; GnuTLS init, sign, deinit; hsmtls again
 *         interleaved   GnuTLS init; hsmtls; GnuTLS signs; hsmtls; GnuTLS signs again with
 *                       the key it kept and a new one; GnuTLS deinit; hsmtls again
 *   MODE  manual        gnutls_pkcs11_init(MANUAL) + gnutls_pkcs11_add_provider(module)
 *         auto          gnutls_pkcs11_init(AUTO): p11-kit's registry, where Debian
 *                       registers SoftHSM2 (the same library, under another path)
 * Each step prints "# STEP: ..." and the program ends with "# done ORDER MODE" and the
 * check counts; it must exit 0 and leave nothing for the sanitizers to report. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "test_coexist_gnutls_pkcs11.h"
#include "test_coexist_hsmtls.h"

static int manual;

/* The configs the orders make, freed once the order has run. */
static hsmtls_config *s, *c;

static void order_gnutls_first(void)
{
    coexist_gnutls_start("1", manual);
    coexist_gnutls_sign("1", 0);
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_gnutls_stop("3");
    coexist_hsmtls_round("4 after GnuTLS's deinit", s, c);
}

static void order_hsmtls_first(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    coexist_gnutls_start("2", manual);
    coexist_gnutls_sign("2", 0);
    coexist_gnutls_stop("3");
    coexist_hsmtls_round("4 after GnuTLS's deinit", s, c);
}

static void order_interleaved(void)
{
    coexist_gnutls_start("1", manual);
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_gnutls_sign("3", 0);
    coexist_handshake("4", s, c);
    coexist_gnutls_sign("5 after an hsmtls handshake", 1);
    coexist_handshake("6", s, c);
    coexist_gnutls_stop("7");
    coexist_hsmtls_round("8 after GnuTLS's deinit", s, c);
}

int main(int argc, char **argv)
{
    static const check_case orders[] = {
        { "gnutls-first", order_gnutls_first },
        { "hsmtls-first", order_hsmtls_first },
        { "interleaved", order_interleaved },
    };
    const check_case *order;
    int start = check_start(argc, argv, orders, CHECK_NCASES(orders), "manual|auto", 1, &order);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    if (strcmp(argv[3], "manual") != 0 && strcmp(argv[3], "auto") != 0) {
        fprintf(stderr, "%s: the mode is manual or auto, not \"%s\"\n", argv[0], argv[3]);
        return 2;
    }
    manual = strcmp(argv[3], "manual") == 0;
    int status = check_run(order);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
    printf("# done %s %s\n", argv[2], argv[3]);
    return status;
}
