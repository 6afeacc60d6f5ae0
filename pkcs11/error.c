/* Thread-local last error of the PKCS#11 core, and names for PKCS#11 numbers. */
#include "p11_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[1024];
static _Thread_local CK_RV last_rv;

const char *hsmtls_p11_error_message(void) { return last_message; }
CK_RV hsmtls_p11_error_rv(void) { return last_rv; }

void hsmtls_p11_error_clear(void)
{
    last_message[0] = '\0';
    last_rv = CKR_OK;
}

int hsmtls_p11_error_set(CK_RV rv, const char *fmt, ...)
{
    char buf[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap); /* buf first: fmt's arguments may point at last_message */
    va_end(ap);
    memcpy(last_message, buf, sizeof buf);
    last_rv = rv;
    return -1;
}

struct name { unsigned long value; const char *name; };
#define N(x) { x, #x }

static const struct name rv_names[] = {
    N(CKR_OK), N(CKR_CANCEL), N(CKR_HOST_MEMORY), N(CKR_SLOT_ID_INVALID),
    N(CKR_GENERAL_ERROR), N(CKR_FUNCTION_FAILED), N(CKR_ARGUMENTS_BAD),
    N(CKR_NO_EVENT), N(CKR_NEED_TO_CREATE_THREADS), N(CKR_CANT_LOCK),
    N(CKR_ATTRIBUTE_READ_ONLY), N(CKR_ATTRIBUTE_SENSITIVE), N(CKR_ATTRIBUTE_TYPE_INVALID),
    N(CKR_ATTRIBUTE_VALUE_INVALID), N(CKR_DATA_INVALID), N(CKR_DATA_LEN_RANGE),
    N(CKR_DEVICE_ERROR), N(CKR_DEVICE_MEMORY), N(CKR_DEVICE_REMOVED),
    N(CKR_ENCRYPTED_DATA_INVALID), N(CKR_ENCRYPTED_DATA_LEN_RANGE),
    N(CKR_FUNCTION_CANCELED), N(CKR_FUNCTION_NOT_PARALLEL), N(CKR_FUNCTION_NOT_SUPPORTED),
    N(CKR_KEY_HANDLE_INVALID), N(CKR_KEY_SIZE_RANGE), N(CKR_KEY_TYPE_INCONSISTENT),
    N(CKR_KEY_NOT_NEEDED), N(CKR_KEY_CHANGED), N(CKR_KEY_NEEDED),
    N(CKR_KEY_INDIGESTIBLE), N(CKR_KEY_FUNCTION_NOT_PERMITTED), N(CKR_KEY_NOT_WRAPPABLE),
    N(CKR_KEY_UNEXTRACTABLE), N(CKR_MECHANISM_INVALID), N(CKR_MECHANISM_PARAM_INVALID),
    N(CKR_OBJECT_HANDLE_INVALID), N(CKR_OPERATION_ACTIVE), N(CKR_OPERATION_NOT_INITIALIZED),
    N(CKR_PIN_INCORRECT), N(CKR_PIN_INVALID), N(CKR_PIN_LEN_RANGE), N(CKR_PIN_EXPIRED),
    N(CKR_PIN_LOCKED), N(CKR_SESSION_CLOSED), N(CKR_SESSION_COUNT),
    N(CKR_SESSION_HANDLE_INVALID), N(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    N(CKR_SESSION_READ_ONLY), N(CKR_SESSION_EXISTS), N(CKR_SESSION_READ_ONLY_EXISTS),
    N(CKR_SESSION_READ_WRITE_SO_EXISTS), N(CKR_SIGNATURE_INVALID), N(CKR_SIGNATURE_LEN_RANGE),
    N(CKR_TEMPLATE_INCOMPLETE), N(CKR_TEMPLATE_INCONSISTENT), N(CKR_TOKEN_NOT_PRESENT),
    N(CKR_TOKEN_NOT_RECOGNIZED), N(CKR_TOKEN_WRITE_PROTECTED),
    N(CKR_UNWRAPPING_KEY_HANDLE_INVALID), N(CKR_USER_ALREADY_LOGGED_IN),
    N(CKR_USER_NOT_LOGGED_IN), N(CKR_USER_PIN_NOT_INITIALIZED), N(CKR_USER_TYPE_INVALID),
    N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN), N(CKR_USER_TOO_MANY_TYPES),
    N(CKR_DOMAIN_PARAMS_INVALID), N(CKR_CURVE_NOT_SUPPORTED), N(CKR_BUFFER_TOO_SMALL),
    N(CKR_SAVED_STATE_INVALID), N(CKR_INFORMATION_SENSITIVE), N(CKR_STATE_UNSAVEABLE),
    N(CKR_CRYPTOKI_NOT_INITIALIZED), N(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    N(CKR_MUTEX_BAD), N(CKR_MUTEX_NOT_LOCKED), N(CKR_FUNCTION_REJECTED),
};

static const struct name mech_names[] = {
    N(CKM_RSA_PKCS_KEY_PAIR_GEN), N(CKM_RSA_PKCS), N(CKM_RSA_X_509), N(CKM_RSA_PKCS_OAEP),
    N(CKM_RSA_PKCS_PSS), N(CKM_SHA1_RSA_PKCS), N(CKM_SHA256_RSA_PKCS), N(CKM_SHA384_RSA_PKCS),
    N(CKM_SHA512_RSA_PKCS), N(CKM_SHA256_RSA_PKCS_PSS), N(CKM_SHA384_RSA_PKCS_PSS),
    N(CKM_SHA512_RSA_PKCS_PSS), N(CKM_EC_KEY_PAIR_GEN), N(CKM_ECDSA), N(CKM_ECDSA_SHA1),
    N(CKM_ECDSA_SHA256), N(CKM_ECDSA_SHA384), N(CKM_ECDSA_SHA512), N(CKM_ECDH1_DERIVE),
    N(CKM_ECDH1_COFACTOR_DERIVE), N(CKM_EC_EDWARDS_KEY_PAIR_GEN), N(CKM_EDDSA),
    N(CKM_SHA_1), N(CKM_SHA256), N(CKM_SHA384), N(CKM_SHA512),
};

static const struct name key_names[] = {
    N(CKK_RSA), N(CKK_DSA), N(CKK_DH), N(CKK_EC), N(CKK_EC_EDWARDS),
    N(CKK_GENERIC_SECRET), N(CKK_AES), N(CKK_DES3),
};

static const struct name class_names[] = {
    N(CKO_DATA), N(CKO_CERTIFICATE), N(CKO_PUBLIC_KEY), N(CKO_PRIVATE_KEY),
    N(CKO_SECRET_KEY), N(CKO_HW_FEATURE), N(CKO_DOMAIN_PARAMETERS), N(CKO_MECHANISM),
};

static const char *lookup(const struct name *t, size_t n, unsigned long v, const char *prefix)
{
    static _Thread_local char unknown[32];
    for (size_t i = 0; i < n; i++)
        if (t[i].value == v)
            return t[i].name;
    snprintf(unknown, sizeof unknown, "%s0x%08lx", prefix, v);
    return unknown;
}

#define LOOKUP(t, v, p) lookup(t, sizeof t / sizeof t[0], v, p)

const char *hsmtls_p11_rv_name(CK_RV rv) { return LOOKUP(rv_names, rv, "CKR_"); }
const char *hsmtls_p11_mechanism_name(CK_MECHANISM_TYPE m) { return LOOKUP(mech_names, m, "CKM_"); }
const char *hsmtls_p11_key_type_name(CK_KEY_TYPE k) { return LOOKUP(key_names, k, "CKK_"); }
const char *hsmtls_p11_class_name(CK_OBJECT_CLASS c) { return LOOKUP(class_names, c, "CKO_"); }
