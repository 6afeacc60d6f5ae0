/* The provider's key-file decoders (provider/keyfile.c) as programs reach them: the input
 * is a key file, decoded with OSSL_DECODER in a library context that has only the hsmtls
 * provider, built into this program (OSSL_PROVIDER_add_builtin), so the PEM decoder, the
 * DER decoders and the core's reader all see it, under ASan+UBSan.
 *
 * No token: the lookup the decoders end in (hsmtls_store_load_key, provider/store.c) is
 * replaced at link time (-Wl,--wrap) by a stub that parses the URI as the store does and
 * answers with a key type taken from the object's label ("rsa...", "ed25519...", "ed448...",
 * "missing..." for a key that is not there, else EC) but never a key. So a decoded key is
 * never expected: the rule checked is that decoding ends, cleanly, without one. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/core.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "fuzz.h"
#include "hsmtls/p11_uri.h"
#include "provider.h"

int __wrap_hsmtls_store_load_key(hsmtls_provctx *pc, const char *uri, int expect,
                                 const char *key_type, OSSL_CALLBACK *object_cb,
                                 void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                                 void *pw_cbarg);

int __wrap_hsmtls_store_load_key(hsmtls_provctx *pc, const char *uri, int expect,
                                 const char *key_type, OSSL_CALLBACK *object_cb,
                                 void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                                 void *pw_cbarg)
{
    FUZZ_CHECK(uri && strncmp(uri, "pkcs11:", 7) == 0, "the decoder looked up %s", uri ? uri : "NULL");
    hsmtls_p11_uri *parsed = hsmtls_p11_uri_parse(uri);
    if (!parsed) {
        HSMTLS_PROV_P11_ERR(pc, "stub lookup");
        return 0;
    }
    const char *label = hsmtls_p11_uri_object_label(parsed), *type = "EC";
    if (label && strncmp(label, "missing", 7) == 0) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_PKCS11, "no such key: %s", hsmtls_p11_uri_masked(parsed));
        hsmtls_p11_uri_free(parsed);
        return 0;
    }
    if (label && strncmp(label, "rsa", 3) == 0)
        type = "RSA";
    else if (label && strncmp(label, "ed25519", 7) == 0)
        type = "ED25519";
    else if (label && strncmp(label, "ed448", 5) == 0)
        type = "ED448";
    hsmtls_p11_uri_free(parsed);
    if (key_type)
        return 1; /* a DER decoder: "no key of that type here", quietly */
    /* the PEM decoder asks for the type only */
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)type, 0),
        OSSL_PARAM_END,
    };
    return object_cb(params, object_cbarg);
}

static OSSL_LIB_CTX *libctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    libctx = OSSL_LIB_CTX_new();
    if (!libctx || !OSSL_PROVIDER_add_builtin(libctx, "hsmtls", OSSL_provider_init) ||
        !OSSL_PROVIDER_load(libctx, "hsmtls")) {
        ERR_print_errors_fp(stderr);
        abort();
    }
    return 0;
}

static void decode(const uint8_t *data, size_t size, const char *input_type, int selection)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, input_type, NULL, NULL,
                                                           selection, libctx, NULL);
    FUZZ_CHECK(dctx != NULL, "no decoder context");
    const unsigned char *p = data;
    size_t len = size;
    (void)OSSL_DECODER_from_data(dctx, &p, &len);
    FUZZ_CHECK(pkey == NULL, "a key from the stub, which hands out none");
    OSSL_DECODER_CTX_free(dctx);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* as the file store and PEM_read_bio_PrivateKey ask: any input, a private key */
    decode(data, size, NULL, 0);
    /* the DER decoders on the input itself, for a public key (the other selection) */
    decode(data, size, "DER", OSSL_KEYMGMT_SELECT_PUBLIC_KEY);
    return 0;
}
