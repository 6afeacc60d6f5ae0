/* The core's key-file reader (pkcs11/keyfile.c, hsmtls_p11_keyfile_uri_from_der): the
 * input is the DER body of a "PKCS#11 PROVIDER URI" PEM block. A URI it returns is a
 * NUL-free string that starts with "pkcs11:"; it is parsed as the provider would, and
 * written as a key file again (hsmtls_p11_keyfile_pem), whose body reads back as the
 * same URI. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "fuzz.h"
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_keyfile.h"
#include "hsmtls/p11_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hsmtls_p11_error_clear();
    char *uri = hsmtls_p11_keyfile_uri_from_der(data, size);
    if (!uri) {
        const char *msg = hsmtls_p11_error_message();
        FUZZ_CHECK(msg && *msg, "refused without a message");
        return 0;
    }
    size_t len = strlen(uri);
    FUZZ_CHECK(len >= 7 && strncmp(uri, "pkcs11:", 7) == 0, "not a pkcs11: URI: %s", uri);
    FUZZ_CHECK(len < size, "a URI longer than its file");
    hsmtls_p11_uri_free(hsmtls_p11_uri_parse(uri));

    /* written again and read back */
    char *pem = hsmtls_p11_keyfile_pem(uri);
    if (pem) {
        BIO *mem = BIO_new_mem_buf(pem, -1);
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long der_len = 0;
        FUZZ_CHECK(mem && PEM_read_bio(mem, &name, &header, &der, &der_len) > 0,
                   "a written key file is not PEM");
        FUZZ_CHECK(strcmp(name, HSMTLS_P11_KEYFILE_PEM_LABEL) == 0, "label %s", name);
        char *back = hsmtls_p11_keyfile_uri_from_der(der, (size_t)der_len);
        FUZZ_CHECK(back && strcmp(back, uri) == 0, "a written key file reads back as %s, not %s",
                   back ? back : hsmtls_p11_error_message(), uri);
        free(back);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        BIO_free(mem);
        free(pem);
    }
    free(uri);
    return 0;
}
