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
/* A key file is at most 64 KiB of PEM text (readers refuse a larger one at once); the
 * longest URI whose file fits. */
#define HSMTLS_P11_KEYFILE_MAX_PEM 65536
#define HSMTLS_P11_KEYFILE_MAX_URI 48000

/* A key file names a key and nothing else: its URI may not hold module-path,
 * module-name, pin-source or pin-value (the program's own configuration chooses the
 * module and the PIN). Both calls refuse such a URI with CKR_ACTION_PROHIBITED and a
 * message naming the attribute, and a URI that does not parse with the parser's message.
 *
 * The PEM text for `uri`, malloc'd; NULL with a message on error. */
char *hsmtls_p11_keyfile_pem(const char *uri);
/* The URI inside the DER body of such a file, malloc'd; NULL with a message when the
 * DER is not that structure (CKR_ARGUMENTS_BAD) or its URI is refused as above. */
char *hsmtls_p11_keyfile_uri_from_der(const unsigned char *der, size_t len);

#ifdef __cplusplus
}
#endif
#endif
