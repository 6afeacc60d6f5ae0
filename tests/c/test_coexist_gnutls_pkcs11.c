/* GnuTLS's side of the coexistence tests: see test_coexist_gnutls_pkcs11.h. */
#include "test_coexist_gnutls_pkcs11.h"

#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/pkcs11.h>
#include <gnutls/x509.h>

#include "check.h"
#include "test_coexist_hsmtls.h"

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
    COEXIST_EXPECT_MSG(ret >= 0, detail);
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

void coexist_gnutls_start(const char *step, int manual)
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

/* One ECDSA P-256 signature by `key` (`which`: "kept key", "new key") that verifies
 * against the certificate, while the same signature over other data does not. */
static int sign_verify(gnutls_privkey_t key, const char *which)
{
    static const char msg[] = "hsmtls coexistence: signed by GnuTLS on token client";
    gnutls_datum_t data = { (unsigned char *)msg, sizeof msg - 1 }, sig = { NULL, 0 };
    char what[200];
    int ret = gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &data, &sig);
    snprintf(what, sizeof what, "gnutls_privkey_sign_data (%s)", which);
    gnutls_check(what, ret);
    if (ret < 0)
        return 0;
    ret = gnutls_pubkey_verify_data2(client_pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig);
    snprintf(what, sizeof what, "gnutls_pubkey_verify_data2 (the %s's signature, the certificate's key)", which);
    gnutls_check(what, ret);
    gnutls_datum_t other = { (unsigned char *)msg, sizeof msg - 2 };
    CHECK(gnutls_pubkey_verify_data2(client_pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &other, &sig) < 0);
    gnutls_free(sig.data);
    return ret >= 0;
}

int coexist_gnutls_sign(const char *step, int fresh)
{
    int ok = 1;
    if (!kept_key) {
        kept_key = import_key();
        fresh = 0;
    }
    ok &= kept_key && sign_verify(kept_key, "kept key");
    if (fresh) {
        gnutls_privkey_t k = import_key();
        ok &= k && sign_verify(k, "new key");
        gnutls_privkey_deinit(k);
    }
    printf("# %s: GnuTLS signature on token client %s\n", step,
           ok ? "verified" : coexist_tolerate_failures ? "FAILED (tolerated)" : "FAILED");
    fflush(stdout);
    return ok;
}

void coexist_gnutls_stop(const char *step)
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
