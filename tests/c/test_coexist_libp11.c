/* libhsmtls and libp11's engine (OpenSSL's ENGINE API) in one process, on the same
 * SoftHSM2 module (issue 11): the engine loads the sandbox's client key
 * (pkcs11:token=client;object=client-p256) and signs with EVP_DigestSign, and the
 * signature verifies against the key's certificate, while libhsmtls makes mutual TLS 1.3
 * handshakes with the server key on token "server" and the same client key, one
 * signature on each token per handshake (the engine's steps:
 * test_coexist_libp11_engine.c).
 *
 * libp11 0.4.12 calls C_Finalize at ENGINE_finish when it loaded only a public key
 * (test_coexist_libp11_engine.h), under libhsmtls. There a handshake must complete (the
 * core starts the module again) or fail with a message naming the PKCS#11 reason, never
 * crash: those steps print "tolerated" failures instead of failing a check, and
 * tests/test_coexist.py decides.
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
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "test_coexist_hsmtls.h"
#include "test_coexist_libp11_engine.h"

/* The configs the orders make, freed once the order has run. */
static hsmtls_config *s, *c;

static void order_engine_first(void)
{
    coexist_engine_start("1");
    coexist_engine_sign("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_engine_sign("3 after an hsmtls handshake");
    coexist_handshake("4", s, c);
    coexist_engine_stop("5");
}

static void order_hsmtls_first(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    coexist_engine_start("2");
    coexist_engine_sign("2");
    coexist_handshake("3", s, c);
    coexist_engine_sign("4 after an hsmtls handshake");
    coexist_engine_stop("5");
}

static void order_finish_middle(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    coexist_engine_start("2");
    coexist_engine_sign("2");
    coexist_engine_stop("3");
    coexist_hsmtls_round("4 after ENGINE_finish", s, c);
}

static void order_engine_first_finish_middle(void)
{
    coexist_engine_start("1");
    coexist_engine_sign("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_engine_stop("3");
    coexist_hsmtls_round("4 after ENGINE_finish", s, c);
}

static void order_finalize_middle(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    coexist_engine_start("2");
    coexist_engine_public_key("2");
    coexist_engine_stop("3 (libp11's C_Finalize)");
    coexist_tolerate_failures = 1;
    coexist_hsmtls_round("4 after libp11's C_Finalize", s, c);
}

static void order_engine_first_finalize_middle(void)
{
    coexist_engine_start("1");
    coexist_engine_public_key("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    coexist_engine_stop("3 (libp11's C_Finalize)");
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
