/* Key files that hold a pkcs11: URI instead of key material, for programs that take
 * only a key *file* (nginx, stunnel, Python's ssl). The format is the one OpenSSL's
 * pkcs11-provider uses, so files work with either provider:
 *
 *   -----BEGIN PKCS#11 PROVIDER URI-----
 *   base64 of DER: SEQUENCE { desc VisibleString "PKCS#11 Provider URI v1.0",
 *                             uri  UTF8String }
 *   -----END PKCS#11 PROVIDER URI-----
 */
#ifndef HSMTLS_P11_KEYFILE_H
#define HSMTLS_P11_KEYFILE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HSMTLS_P11_KEYFILE_PEM_LABEL "PKCS#11 PROVIDER URI"
#define HSMTLS_P11_KEYFILE_DESC "PKCS#11 Provider URI v1.0"

/* The PEM text for `uri`, malloc'd; NULL with a message on error. */
char *hsmtls_p11_keyfile_pem(const char *uri);
/* The URI inside the DER body of such a file, malloc'd; NULL with a message when the
 * DER is not that structure. */
char *hsmtls_p11_keyfile_uri_from_der(const unsigned char *der, size_t len);

#ifdef __cplusplus
}
#endif
#endif
