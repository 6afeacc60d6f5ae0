/* libhsmtls, GnuTLS's PKCS#11 and libp11's engine in one process, on the same SoftHSM2
 * module (issue 11): GnuTLS holds the module initialised through p11-kit while libp11
 * finalises it under both of them (the steps: test_coexist_gnutls_pkcs11.c,
 * test_coexist_libp11_engine.c, test_coexist_hsmtls.c).
 *
 * libp11 calls the module's own C_Finalize at ENGINE_finish after reading only a public
 * key. p11-kit still counts the module initialised for GnuTLS, so when the core starts
 * the module again, its C_Initialize through p11-kit reaches nothing; the core asks the
 * module itself (C_GetInfo) and initialises it directly
 * (hsmtls_p11_module_restart_if_lost). Every hsmtls handshake must complete. GnuTLS is
 * not ours: its signatures after the C_Finalize are printed, and a failure there is
 * tolerated ("FAILED (tolerated)"; tests/test_coexist.py decides).
 *
 * usage: test_coexist_both SANDBOX_DIR ORDER
 *   ORDER gnutls-holds-finalize-middle
 *                           GnuTLS init (manual, the sandbox's module) and signs; hsmtls;
 *                           engine reads the public key; ENGINE_finish + ENGINE_free
 *                           (libp11's C_Finalize); hsmtls again (kept and new configs);
 *                           GnuTLS signs again (kept and new key), tolerated; GnuTLS
 *                           deinit; hsmtls again
 * Each step prints "# STEP: ..." and the program ends with "# done ORDER" and the check
 * counts; it must exit 0 and leave nothing for the sanitizers to report. */
#include <stdio.h>

#include "check.h"
#include "test_coexist_gnutls_pkcs11.h"
#include "test_coexist_hsmtls.h"
#include "test_coexist_libp11_engine.h"

/* The configs the orders make, freed once the order has run. */
static hsmtls_config *s, *c;

static void order_gnutls_holds_finalize_middle(void)
{
    coexist_gnutls_start("1", 1);
    coexist_gnutls_sign("1", 0);
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_engine_start("3");
    coexist_engine_public_key("3");
    coexist_engine_stop("4 (libp11's C_Finalize)");
    coexist_hsmtls_round("5 after libp11's C_Finalize", s, c);
    coexist_tolerate_failures = 1;
    coexist_gnutls_sign("6 after libp11's C_Finalize", 1);
    coexist_tolerate_failures = 0;
    coexist_gnutls_stop("7");
    coexist_handshake("8 after GnuTLS's deinit", s, c);
}

int main(int argc, char **argv)
{
    static const check_case orders[] = {
        { "gnutls-holds-finalize-middle", order_gnutls_holds_finalize_middle },
    };
    const check_case *order;
    int start = check_start(argc, argv, orders, CHECK_NCASES(orders), "", 0, &order);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    int status = check_run(order);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
    printf("# done %s\n", argv[2]);
    return status;
}
