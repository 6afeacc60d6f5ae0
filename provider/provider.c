/* The provider's entry point: reads its settings from openssl.cnf, says which
 * algorithms it offers, and reports errors through the core.
 *
 *   [hsmtls_sect]
 *   module = /usr/lib/x86_64-linux-gnu/ossl-modules/hsmtls.so
 *   activate = 1
 *   pkcs11-module-path = /usr/lib/softhsm/libsofthsm2.so   # else the URI, registry, ...
 *   pkcs11-pin = 1234                                      # after the URI's PIN
 *   pkcs11-pin-source = file:/etc/hsm/pin                  # after pkcs11-pin
 *   pkcs11-login = auto                                    # auto | always | never
 *   pkcs11-operations = store,sign,decrypt,derive,keyfile  # what it offers (default all)
 *   hsmtls-key-cache = yes                                 # keys copied into session objects
 *
 * HSMTLS_PKCS11_MODULE in the environment still overrides the module (the core's rule).
 *
 * Gettable (OSSL_PROVIDER_get_params): HSMTLS_PROVIDER_PARAM_COUNTERS, the counters of
 * the process's PKCS#11 core (provider/include/hsmtls_provider.h, which libhsmtls
 * includes too).
 * The core (modules, sessions, logins) is never finalised here: SoftHSM2 can crash when
 * finalised while its static destructors run at process exit. */
#include "provider.h"
#include "hsmtls_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#define HSMTLS_PARAM_MODULE_PATH "pkcs11-module-path"
#define HSMTLS_PARAM_PIN "pkcs11-pin"
#define HSMTLS_PARAM_PIN_SOURCE "pkcs11-pin-source"
#define HSMTLS_PARAM_LOGIN "pkcs11-login"
#define HSMTLS_PARAM_OPERATIONS "pkcs11-operations"
#define HSMTLS_PARAM_KEY_CACHE "hsmtls-key-cache"

void hsmtls_prov_error(const hsmtls_provctx *pc, int reason, const char *file, int line,
                       const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (pc && pc->core_new_error && pc->core_vset_error) {
        pc->core_new_error(pc->handle);
        if (pc->core_set_error_debug)
            pc->core_set_error_debug(pc->handle, file, line, func);
        pc->core_vset_error(pc->handle, (uint32_t)reason, fmt, ap);
    }
    va_end(ap);
}

static void vset_error(const hsmtls_provctx *pc, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc->core_vset_error(pc->handle, (uint32_t)reason, fmt, ap);
    va_end(ap);
}

/* The reason goes through the core; the text is attached as the error's data as is
 * (ERR_set_error_data on the error just raised, in this thread's queue: the provider
 * runs on the libcrypto that loaded it). BIO_vsnprintf, even for "%s", costs more than
 * the rest of a refused export together. */
void hsmtls_prov_error_text(const hsmtls_provctx *pc, int reason, const char *file, int line,
                            const char *func, const char *text)
{
    if (pc && pc->core_new_error && pc->core_vset_error) {
        pc->core_new_error(pc->handle);
        if (pc->core_set_error_debug)
            pc->core_set_error_debug(pc->handle, file, line, func);
        char *copy = OPENSSL_strdup(text);
        if (!copy) {
            vset_error(pc, reason, "%s", text);
            return;
        }
        vset_error(pc, reason, NULL);
        ERR_set_error_data(copy, ERR_TXT_STRING | ERR_TXT_MALLOCED);
    }
}

const char *hsmtls_key_type_name(const hsmtls_p11_object *o)
{
    switch (hsmtls_p11_object_key_type(o)) {
    case CKK_RSA:
        return "RSA";
    case CKK_EC:
        return "EC";
    case CKK_EC_EDWARDS: {
        const char *curve = hsmtls_p11_object_curve(o);
        if (curve && strcmp(curve, "ED25519") == 0)
            return "ED25519";
        if (curve && strcmp(curve, "ED448") == 0)
            return "ED448";
        return NULL;
    }
    default:
        return NULL;
    }
}

hsmtls_p11_lookup hsmtls_prov_lookup(const hsmtls_provctx *pc)
{
    hsmtls_p11_lookup l = { 0 };
    l.module_path = pc->module_path;
    l.pin = pc->pin;
    l.pin_source = pc->pin_source;
    l.login = pc->login;
    return l;
}

/* Names as the default provider spells them, so EVP_PKEY_is_a(), libssl's key type
 * checks and cross-provider comparisons see our keys as the usual types. */
static const OSSL_ALGORITHM store_algs[] = {
    { "pkcs11", HSMTLS_PROV_PROPS, hsmtls_store_functions, "PKCS#11 URIs (RFC 7512)" },
    { NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM keymgmt_algs[] = {
    { "RSA:rsaEncryption:1.2.840.113549.1.1.1", HSMTLS_PROV_PROPS, hsmtls_rsa_keymgmt_functions,
      "RSA keys on a PKCS#11 token" },
    { "EC:id-ecPublicKey:1.2.840.10045.2.1", HSMTLS_PROV_PROPS, hsmtls_ec_keymgmt_functions,
      "EC keys on a PKCS#11 token" },
    { "ED25519:1.3.101.112", HSMTLS_PROV_PROPS, hsmtls_ed25519_keymgmt_functions,
      "Ed25519 keys on a PKCS#11 token" },
    { "ED448:1.3.101.113", HSMTLS_PROV_PROPS, hsmtls_ed448_keymgmt_functions,
      "Ed448 keys on a PKCS#11 token" },
    { NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM signature_algs[] = {
    { "RSA:rsaEncryption:1.2.840.113549.1.1.1", HSMTLS_PROV_PROPS, hsmtls_rsa_signature_functions,
      "RSA PKCS#1 v1.5 and PSS signatures by a PKCS#11 token" },
    { "ECDSA", HSMTLS_PROV_PROPS, hsmtls_ecdsa_signature_functions, "ECDSA by a PKCS#11 token" },
    { "ED25519:1.3.101.112", HSMTLS_PROV_PROPS, hsmtls_eddsa_signature_functions,
      "Ed25519 by a PKCS#11 token" },
    { "ED448:1.3.101.113", HSMTLS_PROV_PROPS, hsmtls_eddsa_signature_functions,
      "Ed448 by a PKCS#11 token" },
    /* The same, under names only this provider has: what our keys ask for (keymgmt.c). */
    { HSMTLS_SIG_RSA, HSMTLS_PROV_PROPS, hsmtls_rsa_signature_functions,
      "RSA PKCS#1 v1.5 and PSS signatures by a PKCS#11 token" },
    { HSMTLS_SIG_ECDSA, HSMTLS_PROV_PROPS, hsmtls_ecdsa_signature_functions,
      "ECDSA by a PKCS#11 token" },
    { HSMTLS_SIG_ED25519, HSMTLS_PROV_PROPS, hsmtls_eddsa_signature_functions,
      "Ed25519 by a PKCS#11 token" },
    { HSMTLS_SIG_ED448, HSMTLS_PROV_PROPS, hsmtls_eddsa_signature_functions,
      "Ed448 by a PKCS#11 token" },
    { NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM asym_cipher_algs[] = {
    { "RSA:rsaEncryption:1.2.840.113549.1.1.1", HSMTLS_PROV_PROPS, hsmtls_rsa_asym_cipher_functions,
      "RSA decryption by a PKCS#11 token" },
    { NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM keyexch_algs[] = {
    { "ECDH", HSMTLS_PROV_PROPS, hsmtls_ecdh_keyexch_functions, "ECDH by a PKCS#11 token" },
    { NULL, NULL, NULL, NULL },
};

/* URI key files ("PKCS#11 PROVIDER URI" PEM, keyfile.c). Reading: the PEM decoder
 * checks and resolves the URI and hands the DER body on, and one DER decoder per key
 * type turns it into a token key by reference. Writing: a token
 * private key asked for as PEM PrivateKeyInfo (`openssl pkey`, `genpkey -out`) is
 * written as the URI file; nothing else of a private key is ever encoded. */
#define KEYFILE_DECODER(names, fns) \
    { names, HSMTLS_PROV_PROPS ",input=der", fns, "PKCS#11 URI key file body to a token key" }
static const OSSL_ALGORITHM decoder_algs[] = {
    { "DER", HSMTLS_PROV_PROPS ",input=pem", hsmtls_keyfile_pem_decoder_functions,
      "PKCS#11 PROVIDER URI PEM to DER" },
    KEYFILE_DECODER("RSA:rsaEncryption:1.2.840.113549.1.1.1", hsmtls_rsa_keyfile_decoder_functions),
    KEYFILE_DECODER("EC:id-ecPublicKey:1.2.840.10045.2.1", hsmtls_ec_keyfile_decoder_functions),
    KEYFILE_DECODER("ED25519:1.3.101.112", hsmtls_ed25519_keyfile_decoder_functions),
    KEYFILE_DECODER("ED448:1.3.101.113", hsmtls_ed448_keyfile_decoder_functions),
    { NULL, NULL, NULL, NULL },
};

#define KEYFILE_ENCODER(names) \
    { names, HSMTLS_PROV_PROPS ",output=pem,structure=PrivateKeyInfo", \
      hsmtls_keyfile_encoder_functions, "token private key to a PKCS#11 URI key file" }
static const OSSL_ALGORITHM encoder_algs[] = {
    KEYFILE_ENCODER("RSA:rsaEncryption:1.2.840.113549.1.1.1"),
    KEYFILE_ENCODER("EC:id-ecPublicKey:1.2.840.10045.2.1"),
    KEYFILE_ENCODER("ED25519:1.3.101.112"),
    KEYFILE_ENCODER("ED448:1.3.101.113"),
    { NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM *query(void *provctx, int operation_id, int *no_cache)
{
    const hsmtls_provctx *pc = provctx;
    unsigned ops = pc->config_error[0] ? HSMTLS_OPS_STORE : pc->operations;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_STORE:
        return ops & HSMTLS_OPS_STORE ? store_algs : NULL;
    case OSSL_OP_KEYMGMT:
        return keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return ops & HSMTLS_OPS_SIGN ? signature_algs : NULL;
    case OSSL_OP_ASYM_CIPHER:
        return ops & HSMTLS_OPS_DECRYPT ? asym_cipher_algs : NULL;
    case OSSL_OP_KEYEXCH:
        return ops & HSMTLS_OPS_DERIVE ? keyexch_algs : NULL;
    case OSSL_OP_DECODER:
        return ops & HSMTLS_OPS_KEYFILE ? decoder_algs : NULL;
    case OSSL_OP_ENCODER:
        return ops & HSMTLS_OPS_KEYFILE ? encoder_algs : NULL;
    default:
        return NULL;
    }
}

/* pkcs11-login: how lookups log in (the core's modes). */
static int parse_login(hsmtls_provctx *pc, const char *value, enum hsmtls_p11_login_mode *mode)
{
    static const struct { const char *name; enum hsmtls_p11_login_mode mode; } modes[] = {
        { "auto", HSMTLS_P11_LOGIN_AUTO }, { "always", HSMTLS_P11_LOGIN_ALWAYS },
        { "never", HSMTLS_P11_LOGIN_NEVER },
    };
    *mode = HSMTLS_P11_LOGIN_AUTO;
    if (!value || !*value)
        return 1;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(value, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return 1;
        }
    snprintf(pc->config_error, sizeof pc->config_error,
             "%s = \"%s\": expected auto, always or never", HSMTLS_PARAM_LOGIN, value);
    return 0;
}

/* pkcs11-operations: a comma- or space-separated list; unset means all. */
static int parse_operations(hsmtls_provctx *pc, const char *value, unsigned *ops)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "store", HSMTLS_OPS_STORE }, { "sign", HSMTLS_OPS_SIGN },
        { "decrypt", HSMTLS_OPS_DECRYPT }, { "derive", HSMTLS_OPS_DERIVE },
        { "keyfile", HSMTLS_OPS_KEYFILE },
    };
    *ops = HSMTLS_OPS_ALL;
    if (!value || !*value)
        return 1;
    *ops = 0;
    const char *p = value;
    while (*p) {
        size_t len = strcspn(p, ", ");
        int known = len == 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !known; i++)
            if (strlen(names[i].name) == len && strncmp(p, names[i].name, len) == 0) {
                *ops |= names[i].bit;
                known = 1;
            }
        if (!known) {
            snprintf(pc->config_error, sizeof pc->config_error,
                     "%s: unknown operation \"%.*s\" (known: store, sign, decrypt, derive, keyfile)",
                     HSMTLS_PARAM_OPERATIONS, (int)len, p);
            return 0;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return 1;
}

/* hsmtls-key-cache: the core's key cache (hsmtls_p11_key_cache_set), on or off for the
 * whole process; unset leaves the core's default (on, or HSMTLS_KEY_CACHE). */
static int parse_key_cache(hsmtls_provctx *pc, const char *value)
{
    static const struct { const char *name; int on; } words[] = {
        { "yes", 1 }, { "on", 1 }, { "1", 1 }, { "true", 1 },
        { "no", 0 }, { "off", 0 }, { "0", 0 }, { "false", 0 },
    };
    if (!value || !*value)
        return 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasecmp(value, words[i].name) == 0) {
            hsmtls_p11_key_cache_set(words[i].on);
            return 1;
        }
    snprintf(pc->config_error, sizeof pc->config_error,
             "%s = \"%s\": expected yes, no, on, off, 1, 0, true or false",
             HSMTLS_PARAM_KEY_CACHE, value);
    return 0;
}

static const OSSL_PARAM *gettable_params(void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
        OSSL_PARAM_DEFN(HSMTLS_PROVIDER_PARAM_COUNTERS, OSSL_PARAM_OCTET_STRING, NULL, 0),
        OSSL_PARAM_END,
    };
    return list;
}

struct sum {
    const char *label;
    uint64_t total;
};

static void add_signatures(const hsmtls_p11_token *t, void *arg)
{
    struct sum *x = arg;
    if (!x->label || strcmp(x->label, hsmtls_p11_token_label(t)) == 0)
        x->total += hsmtls_p11_token_signatures(t);
}

/* The counters' one function: tokens with the same label in several modules or slots
 * add up. */
static uint64_t token_signatures(const char *label)
{
    struct sum x = { label, 0 };
    hsmtls_p11_tokens_each(add_signatures, &x);
    return x.total;
}

static int get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) &&
        !OSSL_PARAM_set_utf8_ptr(p, "hsmtls PKCS#11 provider"))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) &&
        !OSSL_PARAM_set_utf8_ptr(p, HSMTLS_VERSION))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) &&
        !OSSL_PARAM_set_utf8_ptr(p, "hsmtls " HSMTLS_VERSION))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) && !OSSL_PARAM_set_int(p, 1))
        return 0;
    if ((p = OSSL_PARAM_locate(params, HSMTLS_PROVIDER_PARAM_COUNTERS))) {
        const struct hsmtls_provider_counters c = { HSMTLS_PROVIDER_COUNTERS_VERSION,
                                                    token_signatures, hsmtls_p11_key_cache_set };
        if (!OSSL_PARAM_set_octet_string(p, &c, sizeof c))
            return 0;
    }
    return 1;
}

static const OSSL_ITEM *reason_strings(void *provctx)
{
    static const OSSL_ITEM reasons[] = {
        { HSMTLS_R_PKCS11, "PKCS#11 error" },
        { HSMTLS_R_PRIVATE_KEY_EXPORT, "private key cannot leave the token" },
        { HSMTLS_R_UNSUPPORTED, "not supported by hsmtls" },
        { HSMTLS_R_BAD_ARGUMENT, "bad argument" },
        { HSMTLS_R_INTERNAL, "internal error" },
        { 0, NULL },
    };
    return reasons;
}

static void provctx_free(hsmtls_provctx *pc)
{
    if (!pc)
        return;
    hsmtls_digests_free(pc);
    if (pc->sw_default)
        OSSL_PROVIDER_unload(pc->sw_default);
    OSSL_LIB_CTX_free(pc->sw);
    free(pc->module_path);
    if (pc->pin) {
        OPENSSL_cleanse(pc->pin, strlen(pc->pin));
        free(pc->pin);
    }
    free(pc->pin_source);
    free(pc);
}

static void teardown(void *provctx)
{
    provctx_free(provctx);
}

static const OSSL_DISPATCH provider_functions[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))gettable_params },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))query },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))reason_strings },
    { 0, NULL },
};

/* Copies a config value; an empty value counts as unset. */
static int take(const char *value, char **out)
{
    if (!value || !*value)
        return 1;
    *out = strdup(value);
    return *out != NULL;
}

/* Only the entry point is visible; the PKCS#11 core is the process's one shared library. */
__attribute__((visibility("default")))
int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    hsmtls_provctx *pc = calloc(1, sizeof *pc);
    if (!pc)
        return 0;
    pc->handle = handle;
    pc->operations = HSMTLS_OPS_ALL;
    OSSL_FUNC_core_get_params_fn *core_get_params = NULL;
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            core_get_params = OSSL_FUNC_core_get_params(in);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            pc->core_new_error = OSSL_FUNC_core_new_error(in);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            pc->core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            pc->core_vset_error = OSSL_FUNC_core_vset_error(in);
            break;
        case OSSL_FUNC_BIO_READ_EX:
            pc->core_bio_read_ex = OSSL_FUNC_BIO_read_ex(in);
            break;
        case OSSL_FUNC_BIO_WRITE_EX:
            pc->core_bio_write_ex = OSSL_FUNC_BIO_write_ex(in);
            break;
        case OSSL_FUNC_BIO_GETS:
            pc->core_bio_gets = OSSL_FUNC_BIO_gets(in);
            break;
        default:
            break;
        }
    }

    if (core_get_params) {
        char *module_path = NULL, *pin = NULL, *pin_source = NULL, *login = NULL, *ops = NULL,
             *key_cache = NULL;
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_MODULE_PATH, &module_path, 0),
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_PIN, &pin, 0),
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_PIN_SOURCE, &pin_source, 0),
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_LOGIN, &login, 0),
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_OPERATIONS, &ops, 0),
            OSSL_PARAM_utf8_ptr(HSMTLS_PARAM_KEY_CACHE, &key_cache, 0),
            OSSL_PARAM_END,
        };
        if (!core_get_params(handle, params) || !take(module_path, &pc->module_path) ||
            !take(pin, &pc->pin) || !take(pin_source, &pc->pin_source)) {
            provctx_free(pc);
            return 0;
        }
        /* A bad login, operations or key cache value sets config_error (see provider.h). */
        if (parse_login(pc, login, &pc->login) && parse_operations(pc, ops, &pc->operations))
            parse_key_cache(pc, key_cache);
    }

    /* A library context of our own with the default provider, not a child of the
     * caller's: a child would also see this provider, and a software verify or
     * public-key import could then come straight back to the token code. */
    pc->sw = OSSL_LIB_CTX_new();
    if (!pc->sw || !(pc->sw_default = OSSL_PROVIDER_load(pc->sw, "default"))) {
        provctx_free(pc);
        return 0;
    }
    hsmtls_digests_load(pc);
    *out = provider_functions;
    *provctx = pc;
    return 1;
}
