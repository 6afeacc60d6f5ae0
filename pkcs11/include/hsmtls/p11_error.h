/* Errors of the PKCS#11 core: every failing call returns -1 and leaves a message
 * for the calling thread that says what failed, on which object or URI, and the
 * PKCS#11 reason by name (CKR_PIN_INCORRECT, not 160). A PIN never appears in one. */
#ifndef HSMTLS_P11_ERROR_H
#define HSMTLS_P11_ERROR_H

#include <p11-kit/pkcs11.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The calling thread's last message ("" when none). */
const char *hsmtls_p11_error_message(void);
/* The PKCS#11 return value behind the last error, CKR_OK when it was not a token error. */
CK_RV hsmtls_p11_error_rv(void);
void hsmtls_p11_error_clear(void);

/* "CKR_PIN_INCORRECT", or "CKR_0x%08lx" for a value it does not know (static or thread-local). */
const char *hsmtls_p11_rv_name(CK_RV rv);
/* "CKK_EC": names for listings. */
const char *hsmtls_p11_key_type_name(CK_KEY_TYPE k);

#ifdef __cplusplus
}
#endif
#endif
