/* libhsmtls and GnuTLS's PKCS#11 in one process, on the same SoftHSM2 module (issue 11):
 * GnuTLS signs with the sandbox's client key (pkcs11:token=client;object=client-p256) and
 * the signature verifies against the key's certificate, while libhsmtls makes mutual
 * TLS 1.3 handshakes with the server key on token "server" and the same client key, one
 * signature on each token per handshake. GnuTLS reaches the module through p11-kit,
 * which initialises it (C_Initialize) and finalises it at gnutls_pkcs11_deinit() when its
 * own C_Initialize was the one that succeeded.
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

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/pkcs11.h>
#include <gnutls/x509.h>

#include "check.h"
#include "test_coexist_hsmtls.h"

static int manual;
static gnutls_privkey_t kept_key; /* the key GnuTLS imported first, kept until deinit */
static gnutls_pubkey_t client_pub; /* from certs/client-p256.pem */

/* Offers the PIN once: a PIN the token refused is never tried again. */
static int pin_function(void *userdata, int attempt, const char *token_url, const char *token_label,
                        unsigned int flags, char *pin, size_t pin_max)
{
    (void)userdata, (void)token_url, (void)token_label;
    const char *p = coexist_pin();
    if (attempt > 0 || (flags & GNUTLS_PIN_WRONG) || strlen(p) >= pin_max)
        return -1;
    strcpy(pin, p);
    return 0;
}

static void gnutls_check(const char *what, int ret)
{
    char detail[300];
    snprintf(detail, sizeof detail, "%s: %s", what, gnutls_strerror(ret));
    CHECK_MSG(ret >= 0, detail);
}

/* The client key's public half from its certificate, not from the token. */
static void load_client_pub(void)
{
    gnutls_datum_t pem = { NULL, 0 };
    gnutls_x509_crt_t crt = NULL;
    gnutls_check("gnutls_load_file", gnutls_load_file(check_path("certs/client-p256.pem"), &pem));
    gnutls_check("gnutls_x509_crt_init", gnutls_x509_crt_init(&crt));
    gnutls_check("gnutls_x509_crt_import", gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM));
    gnutls_check("gnutls_pubkey_init", gnutls_pubkey_init(&client_pub));
    gnutls_check("gnutls_pubkey_import_x509", gnutls_pubkey_import_x509(client_pub, crt, 0));
    gnutls_x509_crt_deinit(crt);
    gnutls_free(pem.data);
}

static void gnutls_start(const char *step)
{
    gnutls_check("gnutls_global_init", gnutls_global_init());
    if (manual) {
        gnutls_check("gnutls_pkcs11_init(MANUAL)", gnutls_pkcs11_init(GNUTLS_PKCS11_FLAG_MANUAL, NULL));
        gnutls_check("gnutls_pkcs11_add_provider", gnutls_pkcs11_add_provider(coexist_module(), NULL));
    } else {
        gnutls_check("gnutls_pkcs11_init(AUTO)", gnutls_pkcs11_init(GNUTLS_PKCS11_FLAG_AUTO, NULL));
    }
    gnutls_pkcs11_set_pin_function(pin_function, NULL);
    load_client_pub();
    printf("# %s: GnuTLS PKCS#11 initialised (%s)\n", step, manual ? "manual, the sandbox's module" : "auto, p11-kit's registry");
    fflush(stdout);
}

static gnutls_privkey_t import_key(void)
{
    gnutls_privkey_t key = NULL;
    gnutls_check("gnutls_privkey_init", gnutls_privkey_init(&key));
    int ret = gnutls_privkey_import_url(key, COEXIST_CLIENT_KEY, 0);
    gnutls_check("gnutls_privkey_import_url " COEXIST_CLIENT_KEY, ret);
    if (ret < 0) {
        gnutls_privkey_deinit(key);
        return NULL;
    }
    return key;
}

/* One ECDSA P-256 signature by `key` that verifies against the certificate, while the
 * same signature over other data does not. */
static int sign_verify(gnutls_privkey_t key)
{
    static const char msg[] = "hsmtls coexistence: signed by GnuTLS on token client";
    gnutls_datum_t data = { (unsigned char *)msg, sizeof msg - 1 }, sig = { NULL, 0 };
    int ret = gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &data, &sig);
    gnutls_check("gnutls_privkey_sign_data", ret);
    if (ret < 0)
        return 0;
    ret = gnutls_pubkey_verify_data2(client_pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig);
    gnutls_check("gnutls_pubkey_verify_data2 (the token's signature, the certificate's key)", ret);
    gnutls_datum_t other = { (unsigned char *)msg, sizeof msg - 2 };
    CHECK(gnutls_pubkey_verify_data2(client_pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &other, &sig) < 0);
    gnutls_free(sig.data);
    return ret >= 0;
}

/* GnuTLS signs with the key it kept (imported on first use) and, with `fresh`, also
 * with a key it imports again. */
static void gnutls_sign(const char *step, int fresh)
{
    int ok = 1;
    if (!kept_key) {
        kept_key = import_key();
        fresh = 0;
    }
    ok &= kept_key && sign_verify(kept_key);
    if (fresh) {
        gnutls_privkey_t k = import_key();
        ok &= k && sign_verify(k);
        gnutls_privkey_deinit(k);
    }
    printf("# %s: GnuTLS signature on token client %s\n", step, ok ? "verified" : "FAILED");
    fflush(stdout);
}

static void gnutls_stop(const char *step)
{
    gnutls_privkey_deinit(kept_key);
    kept_key = NULL;
    gnutls_pubkey_deinit(client_pub);
    client_pub = NULL;
    gnutls_pkcs11_deinit();
    gnutls_global_deinit();
    printf("# %s: gnutls_pkcs11_deinit and gnutls_global_deinit done\n", step);
    fflush(stdout);
}

/* The configs the orders make, freed once the order has run. */
static hsmtls_config *s, *c;

static void order_gnutls_first(void)
{
    gnutls_start("1");
    gnutls_sign("1", 0);
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    gnutls_stop("3");
    coexist_hsmtls_round("4 after GnuTLS's deinit", s, c);
}

static void order_hsmtls_first(void)
{
    coexist_configs(&s, &c);
    coexist_handshake("1", s, c);
    gnutls_start("2");
    gnutls_sign("2", 0);
    gnutls_stop("3");
    coexist_hsmtls_round("4 after GnuTLS's deinit", s, c);
}

static void order_interleaved(void)
{
    gnutls_start("1");
    coexist_configs(&s, &c);
    coexist_handshake("2", s, c);
    gnutls_sign("3", 0);
    coexist_handshake("4", s, c);
    gnutls_sign("5 after an hsmtls handshake", 1);
    coexist_handshake("6", s, c);
    gnutls_stop("7");
    coexist_hsmtls_round("8 after GnuTLS's deinit", s, c);
}

int main(int argc, char **argv)
{
    static const check_case orders[] = {
        { "gnutls-first", order_gnutls_first },
        { "hsmtls-first", order_hsmtls_first },
        { "interleaved", order_interleaved },
    };
    if (check_list(argc, argv, orders, CHECK_NCASES(orders)))
        return 0;
    const check_case *order = argc >= 3 ? check_find(argv[0], argv[2], orders, CHECK_NCASES(orders)) : NULL;
    if (!order || argc != 4 || (strcmp(argv[3], "manual") != 0 && strcmp(argv[3], "auto") != 0)) {
        fprintf(stderr, "usage: test_coexist_gnutls SANDBOX_DIR ORDER manual|auto | test_coexist_gnutls --list\n");
        return 2;
    }
    check_set_dir(argv[1]);
    manual = strcmp(argv[3], "manual") == 0;
    int status = check_run(order);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
    printf("# done %s %s\n", argv[2], argv[3]);
    return status;
}
