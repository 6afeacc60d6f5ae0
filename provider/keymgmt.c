/* Key management for token keys (RSA, EC, Ed25519, Ed448).
 *
 * A key holds the token's private key object and, always, its public half as a
 * software key in the provider's own library context (`soft`). Everything public is
 * answered from `soft` by the default provider: sizes, security bits, the default
 * digest, n and e, the group and point. So libssl and the openssl CLI see the same
 * values they would for a key file, and we write no arithmetic of our own.
 *
 * Export gives the public half only (enough for the default provider to verify, and
 * for encoders to write a public key); asking for the private half is an error that
 * says why. Import takes public keys only: libcrypto imports a certificate's key into
 * our key management to compare it with a token key (X509_check_private_key). */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

static hsmtls_key *key_alloc(hsmtls_provctx *pc, const char *type)
{
    hsmtls_key *key = calloc(1, sizeof *key);
    if (!key) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_INTERNAL, "out of memory");
        return NULL;
    }
    key->pc = pc;
    key->type = type;
    return key;
}

static void km_free(void *keydata)
{
    hsmtls_key *key = keydata;
    if (!key)
        return;
    EVP_PKEY_free(key->soft);
    free(key); /* priv/pub are the core's, kept for the process */
}

/* The key a store reference names; `type` is the key management asked. */
static void *key_load(const void *reference, size_t size, const char *type)
{
    const hsmtls_key_ref *ref = reference;
    if (!ref || size != sizeof *ref || ref->magic != HSMTLS_KEY_REF_MAGIC)
        return NULL; /* not ours: no provider context to report through */
    hsmtls_p11_object *o = ref->object;
    const char *otype = hsmtls_key_type_name(o);
    if (!otype || strcmp(otype, type) != 0) {
        HSMTLS_PROV_ERR(ref->pc, HSMTLS_R_UNSUPPORTED, "\"%s\" is a %s key, not %s",
                        hsmtls_p11_object_label(o), otype ? otype : "unsupported", type);
        return NULL;
    }
    hsmtls_key *key = key_alloc(ref->pc, type);
    if (!key)
        return NULL;
    if (hsmtls_p11_object_class(o) == CKO_PRIVATE_KEY)
        key->priv = o;
    else
        key->pub = o;
    /* A private key object carries its public half (the core borrows the EC point
     * from the public key or certificate when the token leaves it out). */
    key->soft = hsmtls_p11_object_public_key(o, ref->pc->sw, NULL);
    if (!key->soft) {
        HSMTLS_PROV_P11_ERR(ref->pc, "loading a key");
        km_free(key);
        return NULL;
    }
    return key;
}

static int km_has(const void *keydata, int selection)
{
    const hsmtls_key *key = keydata;
    if (!key)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !key->priv)
        return 0;
    if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) &&
        !key->soft)
        return 0;
    return 1;
}

static int km_match(const void *keydata1, const void *keydata2, int selection)
{
    const hsmtls_key *k1 = keydata1, *k2 = keydata2;
    if (k1->priv && k1->priv == k2->priv)
        return 1;
    if (!k1->soft || !k2->soft)
        return 0;
    /* Two halves of one pair share their public key; that is all a token shows. */
    if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        return EVP_PKEY_eq(k1->soft, k2->soft) == 1;
    if (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)
        return EVP_PKEY_parameters_eq(k1->soft, k2->soft) == 1;
    return 1;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    hsmtls_key *key = keydata;
    if (!key->soft)
        return 0;
    return EVP_PKEY_get_params(key->soft, params);
}

static const OSSL_PARAM rsa_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM ec_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM ecx_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};

/* The public parameters each type takes on import and gives on export. */
static const OSSL_PARAM rsa_public[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_public[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ecx_public[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};

/* Software private keys are not ours to hold: a caller that meant to import one wants
 * the default provider, and silently keeping only the public half would hide that. */
static int has_private_material(const OSSL_PARAM params[])
{
    static const char *const names[] = {
        OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_PRIV_KEY,
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (OSSL_PARAM_locate_const(params, names[i]))
            return 1;
    return 0;
}

static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    hsmtls_key *key = keydata;
    if (!key || key->priv || key->pub || key->soft) {
        HSMTLS_PROV_ERR(key ? key->pc : NULL, HSMTLS_R_BAD_ARGUMENT,
                        "cannot import into a key that is already set");
        return 0;
    }
    if (has_private_material(params)) {
        HSMTLS_PROV_ERR(key->pc, HSMTLS_R_UNSUPPORTED,
                        "hsmtls holds token keys only; a software %s private key belongs in "
                        "the default provider", key->type);
        return 0;
    }
    int sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? EVP_PKEY_PUBLIC_KEY
                                                           : EVP_PKEY_KEY_PARAMETERS;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(key->pc->sw, key->type, NULL);
    int ok = ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
             EVP_PKEY_fromdata(ctx, &key->soft, sel, (OSSL_PARAM *)params) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        HSMTLS_PROV_ERR(key->pc, HSMTLS_R_BAD_ARGUMENT, "cannot import the %s public key",
                        key->type);
    return ok;
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *param_cb, void *cbarg)
{
    hsmtls_key *key = keydata;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->priv) {
        HSMTLS_PROV_ERR(key->pc, HSMTLS_R_PRIVATE_KEY_EXPORT,
                        "the private key \"%s\" on PKCS#11 token \"%s\" cannot be exported "
                        "(only its public key can)",
                        hsmtls_p11_object_label(key->priv),
                        hsmtls_p11_token_label(hsmtls_p11_object_token(key->priv)));
        return 0;
    }
    if (!key->soft)
        return 0;
    int sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? EVP_PKEY_PUBLIC_KEY
                                                           : EVP_PKEY_KEY_PARAMETERS;
    OSSL_PARAM *params = NULL;
    if (EVP_PKEY_todata(key->soft, sel, &params) <= 0)
        return 0;
    int ok = param_cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

static void *km_dup(const void *keydata, int selection)
{
    const hsmtls_key *from = keydata;
    hsmtls_key *key = key_alloc(from->pc, from->type);
    if (!key)
        return NULL;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        key->priv = from->priv;
    key->pub = from->pub;
    if (from->soft && EVP_PKEY_up_ref(from->soft))
        key->soft = from->soft;
    return key;
}

/* One set of entry points per key type: new() and load() must know the type, and
 * gettable/import/export lists differ. */
#define KEYMGMT(prefix, type, gettable, public_params, opname)                               \
    static void *prefix##_new(void *provctx) { return key_alloc(provctx, type); }            \
    static void *prefix##_load(const void *ref, size_t size) { return key_load(ref, size, type); } \
    static const OSSL_PARAM *prefix##_gettable(void *provctx) { return gettable; }           \
    static const OSSL_PARAM *prefix##_types(int selection) { return public_params; }         \
    static const char *prefix##_opname(int op) { return opname; }                           \
    const OSSL_DISPATCH hsmtls_##prefix##_keymgmt_functions[] = {                            \
        { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))prefix##_new },                             \
        { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free },                                 \
        { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))prefix##_load },                           \
        { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has },                                   \
        { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match },                               \
        { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params },                     \
        { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))prefix##_gettable },            \
        { OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import },                             \
        { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))prefix##_types },                  \
        { OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export },                             \
        { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))prefix##_types },                  \
        { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))prefix##_opname },         \
        { OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup },                                   \
        { 0, NULL },                                                                         \
    };

/* EC keys sign as "ECDSA" and derive as "ECDH"; the others share their key's name. */
#define EC_OPNAME (op == OSSL_OP_KEYEXCH ? "ECDH" : "ECDSA")

KEYMGMT(rsa, "RSA", rsa_gettable_list, rsa_public, "RSA")
KEYMGMT(ec, "EC", ec_gettable_list, ec_public, EC_OPNAME)
KEYMGMT(ed25519, "ED25519", ecx_gettable_list, ecx_public, "ED25519")
KEYMGMT(ed448, "ED448", ecx_gettable_list, ecx_public, "ED448")
