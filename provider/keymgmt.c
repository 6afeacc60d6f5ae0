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
 * our key management to compare it with a token key (X509_check_private_key).
 *
 * Key generation makes the pair on a token named by the pkcs11_uri parameter, and only
 * there (see "key generation on a token" below). */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

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
    free(key->export_refusal);
    free(key); /* priv/pub are the core's, kept for the process */
}

/* Keeps an EC key's group name (see hsmtls_key). */
static void keep_group(hsmtls_key *key)
{
    key->group[0] = '\0';
    if (key->soft && strcmp(key->type, "EC") == 0 &&
        !EVP_PKEY_get_utf8_string_param(key->soft, OSSL_PKEY_PARAM_GROUP_NAME, key->group,
                                        sizeof key->group, NULL))
        key->group[0] = '\0';
}

/* Our key for a token object of the right type. */
static hsmtls_key *key_for_object(hsmtls_provctx *pc, hsmtls_p11_object *o, const char *type)
{
    hsmtls_key *key = key_alloc(pc, type);
    if (!key)
        return NULL;
    if (hsmtls_p11_object_class(o) == CKO_PRIVATE_KEY)
        key->priv = o;
    else
        key->pub = o;
    /* A private key object carries its public half (the core borrows the EC point
     * from the public key or certificate when the token leaves it out). */
    key->soft = hsmtls_p11_object_public_key(o, pc->sw, NULL);
    if (!key->soft) {
        HSMTLS_PROV_P11_ERR(pc, "loading a key");
        km_free(key);
        return NULL;
    }
    keep_group(key);
    return key;
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
    return key_for_object(ref->pc, o, type);
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

/* libssl asks, on every handshake, for the default and mandatory digest
 * (EVP_PKEY_get_default_digest_name) and for an EC key's group name, each twice: these
 * are answered here, with the default provider's answers for these key types (RSA and
 * EC: default digest SHA256; EdDSA: no mandatory digest; EC: the group name kept when
 * the key was made), instead of a round through its get_params, which looks up every
 * parameter it knows. -1: some other parameter is asked for, so none is answered here. */
static int answer_locally(const hsmtls_key *key, OSSL_PARAM params[])
{
    int eddsa = strcmp(key->type, "ED25519") == 0 || strcmp(key->type, "ED448") == 0;
    int rsa_ec = strcmp(key->type, "RSA") == 0 || strcmp(key->type, "EC") == 0;
    if (!eddsa && !rsa_ec)
        return -1;
    for (OSSL_PARAM *p = params; p->key; p++)
        if (strcmp(p->key, OSSL_PKEY_PARAM_DEFAULT_DIGEST) != 0 &&
            strcmp(p->key, OSSL_PKEY_PARAM_MANDATORY_DIGEST) != 0 &&
            !(key->group[0] && strcmp(p->key, OSSL_PKEY_PARAM_GROUP_NAME) == 0))
            return -1;
    for (OSSL_PARAM *p = params; p->key; p++) {
        const char *value = NULL;
        if (rsa_ec && strcmp(p->key, OSSL_PKEY_PARAM_DEFAULT_DIGEST) == 0)
            value = "SHA256";
        else if (eddsa && strcmp(p->key, OSSL_PKEY_PARAM_MANDATORY_DIGEST) == 0)
            value = "";
        else if (strcmp(p->key, OSSL_PKEY_PARAM_GROUP_NAME) == 0)
            value = key->group;
        if (value && !OSSL_PARAM_set_utf8_string(p, value))
            return 0;
    }
    return 1;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    hsmtls_key *key = keydata;
    if (!key->soft)
        return 0;
    int r = params ? answer_locally(key, params) : -1;
    return r >= 0 ? r : EVP_PKEY_get_params(key->soft, params);
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
    else
        keep_group(key);
    return ok;
}

/* OpenSSL 3.0 asks for the private half on every signature init with a token key (it
 * first tries the default provider's signature, which would need the key exported
 * there), twice per TLS handshake, and drops the error; a user's export (openssl pkey
 * -outform DER) gets the same message. So the message is made once per key. */
static void refuse_export(hsmtls_key *key)
{
    char *msg = __atomic_load_n(&key->export_refusal, __ATOMIC_ACQUIRE);
    if (!msg) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "the private key \"%s\" on PKCS#11 token \"%s\" cannot be exported "
                 "(only its public key can)",
                 hsmtls_p11_object_label(key->priv),
                 hsmtls_p11_token_label(hsmtls_p11_object_token(key->priv)));
        char *mine = strdup(buf), *expected = NULL;
        if (!mine) {
            HSMTLS_PROV_ERR(key->pc, HSMTLS_R_PRIVATE_KEY_EXPORT, "%s", buf);
            return;
        }
        if (__atomic_compare_exchange_n(&key->export_refusal, &expected, mine, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            msg = mine;
        } else {
            free(mine);
            msg = expected;
        }
    }
    hsmtls_prov_error_text(key->pc, HSMTLS_R_PRIVATE_KEY_EXPORT, OPENSSL_FILE, OPENSSL_LINE,
                           OPENSSL_FUNC, msg);
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *param_cb, void *cbarg)
{
    hsmtls_key *key = keydata;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && key->priv) {
        refuse_export(key);
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
    memcpy(key->group, from->group, sizeof key->group);
    return key;
}

/* ---- key generation on a token ------------------------------------------------------
 *
 * Only on a token, named by the pkcs11_uri parameter (token and object= label, id=
 * optional): `openssl genpkey -propquery provider=hsmtls -algorithm EC
 * -pkeyopt group:P-256 -pkeyopt pkcs11_uri:'pkcs11:token=T;object=L;id=%01' -out f.pem`.
 * The private key is made sensitive and not extractable; the EVP_PKEY holds it by
 * reference (and f.pem, through the key file encoder, is a URI key file). Without
 * pkcs11_uri there is nothing to do: software keys belong to the default provider,
 * which unqualified fetches reach first (see README.md), so gen() refuses clearly. */

#define HSMTLS_PKEY_PARAM_URI "pkcs11_uri"

typedef struct gen_ctx {
    hsmtls_provctx *pc;
    const char *type;            /* "RSA", "EC", "ED25519", "ED448" */
    char *uri;
    size_t bits;                 /* RSA */
    char *group;                 /* EC */
} gen_ctx;

static void gen_cleanup(void *genctx)
{
    gen_ctx *g = genctx;
    if (!g)
        return;
    free(g->uri);
    free(g->group);
    free(g);
}

static int set_string(const OSSL_PARAM *p, char **slot)
{
    const char *v;
    char *copy;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &v) || !(copy = strdup(v)))
        return 0;
    free(*slot);
    *slot = copy;
    return 1;
}

static int gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    gen_ctx *g = genctx;
    const OSSL_PARAM *p;
    if (!params)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, HSMTLS_PKEY_PARAM_URI)) && !set_string(p, &g->uri)) {
        HSMTLS_PROV_ERR(g->pc, HSMTLS_R_BAD_ARGUMENT, "%s must be a string", HSMTLS_PKEY_PARAM_URI);
        return 0;
    }
    if (strcmp(g->type, "RSA") == 0) {
        if ((p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_BITS)) &&
            !OSSL_PARAM_get_size_t(p, &g->bits)) {
            HSMTLS_PROV_ERR(g->pc, HSMTLS_R_BAD_ARGUMENT, "bad RSA key size");
            return 0;
        }
        if ((p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_PRIMES))) {
            size_t primes;
            if (!OSSL_PARAM_get_size_t(p, &primes) || primes != 2) {
                HSMTLS_PROV_ERR(g->pc, HSMTLS_R_UNSUPPORTED, "a token makes two-prime RSA keys only");
                return 0;
            }
        }
        if ((p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_E))) {
            BIGNUM *e = NULL;
            int f4 = OSSL_PARAM_get_BN(p, &e) && BN_is_word(e, RSA_F4);
            BN_free(e);
            if (!f4) {
                HSMTLS_PROV_ERR(g->pc, HSMTLS_R_UNSUPPORTED,
                                "hsmtls makes RSA keys with the public exponent 65537 only");
                return 0;
            }
        }
    }
    if (strcmp(g->type, "EC") == 0 &&
        (p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME)) &&
        !set_string(p, &g->group)) {
        HSMTLS_PROV_ERR(g->pc, HSMTLS_R_BAD_ARGUMENT, "bad EC group");
        return 0;
    }
    return 1;
}

static void *gen_init(void *provctx, int selection, const OSSL_PARAM params[], const char *type)
{
    hsmtls_provctx *pc = provctx;
    if (!(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_UNSUPPORTED,
                        "hsmtls generates key pairs on a token, not %s parameters", type);
        return NULL;
    }
    gen_ctx *g = calloc(1, sizeof *g);
    if (!g) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_INTERNAL, "out of memory");
        return NULL;
    }
    g->pc = pc;
    g->type = type;
    if (!gen_set_params(g, params)) {
        gen_cleanup(g);
        return NULL;
    }
    return g;
}

/* The core's curve name for an OpenSSL group name (or alias). */
static const char *curve_of(const char *group)
{
    static const struct { const char *name, *curve; } groups[] = {
        { "P-256", "P-256" }, { "prime256v1", "P-256" }, { "secp256r1", "P-256" },
        { "P-384", "P-384" }, { "secp384r1", "P-384" },
        { "P-521", "P-521" }, { "secp521r1", "P-521" },
    };
    for (size_t i = 0; group && i < sizeof groups / sizeof groups[0]; i++)
        if (strcasecmp(group, groups[i].name) == 0)
            return groups[i].curve;
    return NULL;
}

/* A CKA_ID for a pair the URI gives no id=: the halves of a pair are linked by their id,
 * and tokens give a new key an empty one, which every other id-less key shares. Random,
 * so it names this pair only; the core refuses a label only together with an id, so
 * here the label must be free. 1, or 0 with an error. */
static int invent_id(hsmtls_provctx *pc, const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *lookup,
                     unsigned char *id, size_t len)
{
    hsmtls_p11_object **objs;
    size_t n;
    ERR_set_mark();
    int listed = hsmtls_p11_objects_list(uri, lookup, HSMTLS_P11_ANY_CLASS, &objs, &n) == 0;
    ERR_pop_to_mark();
    if (!listed) {
        HSMTLS_PROV_P11_ERR(pc, "generating a key");
        return 0;
    }
    if (n) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_PKCS11,
                        "generating a key: token \"%s\" already holds an object labelled \"%s\"; "
                        "not generating over it",
                        hsmtls_p11_token_label(hsmtls_p11_object_token(objs[0])),
                        hsmtls_p11_object_label(objs[0]));
        free(objs);
        return 0;
    }
    free(objs);
    if (RAND_bytes_ex(pc->sw, id, len, 0) <= 0) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_INTERNAL, "no random bytes for a key id");
        return 0;
    }
    return 1;
}

static void *gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    gen_ctx *g = genctx;
    hsmtls_provctx *pc = g->pc;
    if (!g->uri) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_BAD_ARGUMENT,
                        "hsmtls generates %s keys on a PKCS#11 token only: name the token and "
                        "label with %s (-pkeyopt %s:'pkcs11:token=T;object=LABEL'); software "
                        "keys come from the default provider", g->type, HSMTLS_PKEY_PARAM_URI,
                        HSMTLS_PKEY_PARAM_URI);
        return NULL;
    }
    hsmtls_p11_keygen spec = { 0 };
    if (strcmp(g->type, "RSA") == 0) {
        spec.key_type = CKK_RSA;
        spec.bits = (unsigned)(g->bits ? g->bits : 2048);
        if (g->bits > 16384) {
            HSMTLS_PROV_ERR(pc, HSMTLS_R_UNSUPPORTED, "RSA keys are 2048 to 16384 bits");
            return NULL;
        }
    } else if (strcmp(g->type, "EC") == 0) {
        spec.key_type = CKK_EC;
        if (!g->group) {
            HSMTLS_PROV_ERR(pc, HSMTLS_R_BAD_ARGUMENT,
                            "no EC group: give one (-pkeyopt group:P-256, P-384 or P-521)");
            return NULL;
        }
        if (!(spec.curve = curve_of(g->group))) {
            HSMTLS_PROV_ERR(pc, HSMTLS_R_UNSUPPORTED,
                            "EC group \"%s\" is not supported on a token (P-256, P-384, P-521)",
                            g->group);
            return NULL;
        }
    } else {
        spec.key_type = CKK_EC_EDWARDS;
        spec.curve = g->type;
    }
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(g->uri);
    if (!uri) {
        HSMTLS_PROV_P11_ERR(pc, "generating a key");
        return NULL;
    }
    spec.label = hsmtls_p11_uri_object_label(uri);
    spec.id = hsmtls_p11_uri_object_id(uri, &spec.id_len);
    hsmtls_p11_lookup lookup = hsmtls_prov_lookup(pc);
    hsmtls_key *key = NULL;
    unsigned char id[16];
    if (!spec.id && spec.label && *spec.label && !invent_id(pc, uri, &lookup, id, sizeof id))
        goto done;
    if (!spec.id) {
        spec.id = id;
        spec.id_len = sizeof id;
    }
    /* SoftHSM2 leaves libcrypto errors of its own behind; the core's message says it. */
    ERR_set_mark();
    hsmtls_p11_object *o = hsmtls_p11_generate_key_pair(uri, &lookup, &spec);
    ERR_pop_to_mark();
    if (!o)
        HSMTLS_PROV_P11_ERR(pc, "generating a key");
    else
        key = key_for_object(pc, o, g->type);
done:
    hsmtls_p11_uri_free(uri);
    return key;
}

#define GEN_URI_PARAM OSSL_PARAM_utf8_string(HSMTLS_PKEY_PARAM_URI, NULL, 0)
static const OSSL_PARAM rsa_gen_settable_list[] = {
    GEN_URI_PARAM,
    OSSL_PARAM_size_t(OSSL_PKEY_PARAM_RSA_BITS, NULL),
    OSSL_PARAM_size_t(OSSL_PKEY_PARAM_RSA_PRIMES, NULL),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_gen_settable_list[] = {
    GEN_URI_PARAM,
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ecx_gen_settable_list[] = {
    GEN_URI_PARAM,
    OSSL_PARAM_END,
};

/* One set of entry points per key type: new() and load() must know the type, and
 * gettable/import/export lists differ. */
#define KEYMGMT(prefix, type, gettable, public_params, opname, gen_settable)                 \
    static void *prefix##_new(void *provctx) { return key_alloc(provctx, type); }            \
    static void *prefix##_gen_init(void *provctx, int selection, const OSSL_PARAM params[]) \
    { return gen_init(provctx, selection, params, type); }                                   \
    static const OSSL_PARAM *prefix##_gen_settable(void *genctx, void *provctx)              \
    { return gen_settable; }                                                                 \
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
        { OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))prefix##_gen_init },                   \
        { OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))gen_set_params },                \
        { OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (void (*)(void))prefix##_gen_settable },    \
        { OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))gen },                                      \
        { OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))gen_cleanup },                      \
        { 0, NULL },                                                                         \
    };

/* The signature a token key signs with is named HSMTLS-* (provider.c registers each of
 * our signatures under that name too, which only this provider has). OpenSSL 3.0 fetches
 * a key's signature by this name with the caller's properties first: under the usual
 * "?provider=default" a plain "ECDSA" finds the default provider's, which would need
 * the private key exported (refused), and only then tries ours; an EC key made a default
 * provider EC key, an export refused, and two more fetches on every signature init, twice
 * per TLS handshake. EC keys derive as "ECDH"; RSA keys decrypt as "RSA". */
#define OPNAME(sig, other) (op == OSSL_OP_SIGNATURE ? sig : other)

KEYMGMT(rsa, "RSA", rsa_gettable_list, rsa_public, OPNAME(HSMTLS_SIG_RSA, "RSA"),
        rsa_gen_settable_list)
KEYMGMT(ec, "EC", ec_gettable_list, ec_public, OPNAME(HSMTLS_SIG_ECDSA, "ECDH"),
        ec_gen_settable_list)
KEYMGMT(ed25519, "ED25519", ecx_gettable_list, ecx_public, OPNAME(HSMTLS_SIG_ED25519, "ED25519"),
        ecx_gen_settable_list)
KEYMGMT(ed448, "ED448", ecx_gettable_list, ecx_public, OPNAME(HSMTLS_SIG_ED448, "ED448"),
        ecx_gen_settable_list)
