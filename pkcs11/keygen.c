/* Key pairs generated inside a token: the private half is born there and stays. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>

/* DER OIDs of the curves, as CKA_EC_PARAMS wants them. */
static const unsigned char oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const unsigned char oid_p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };
static const unsigned char oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const unsigned char oid_ed448[] = { 0x06, 0x03, 0x2b, 0x65, 0x71 };

static const struct {
    const char *name;
    CK_KEY_TYPE type;
    const unsigned char *oid;
    size_t len;
} curve_oids[] = {
    { "P-256", CKK_EC, oid_p256, sizeof oid_p256 },
    { "P-384", CKK_EC, oid_p384, sizeof oid_p384 },
    { "P-521", CKK_EC, oid_p521, sizeof oid_p521 },
    { "ED25519", CKK_EC_EDWARDS, oid_ed25519, sizeof oid_ed25519 },
    { "ED448", CKK_EC_EDWARDS, oid_ed448, sizeof oid_ed448 },
};

static int spec_error(const char *what)
{
    return hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "key generation: %s", what);
}

static hsmtls_p11_object *generate_on(hsmtls_p11_token *t, const hsmtls_p11_keygen *spec)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = spec->bits ? spec->bits : 2048;
    unsigned char exponent[] = { 0x01, 0x00, 0x01 };
    const unsigned char *oid = NULL;
    size_t oid_len = 0;
    for (size_t i = 0; spec->key_type != CKK_RSA && i < sizeof curve_oids / sizeof curve_oids[0]; i++)
        if (spec->curve && strcmp(spec->curve, curve_oids[i].name) == 0 && curve_oids[i].type == spec->key_type) {
            oid = curve_oids[i].oid;
            oid_len = curve_oids[i].len;
        }
    if (spec->key_type != CKK_RSA && !oid) {
        spec_error(spec->curve ? "unsupported curve for this key type" : "no curve given");
        return NULL;
    }
    CK_MECHANISM mech = { spec->key_type == CKK_RSA ? CKM_RSA_PKCS_KEY_PAIR_GEN
                          : spec->key_type == CKK_EC ? CKM_EC_KEY_PAIR_GEN
                                                     : CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0 };
    size_t label_len = strlen(spec->label);
    CK_ATTRIBUTE pub[8], priv[10];
    CK_ULONG npub = 0, npriv = 0;
    pub[npub++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof yes };
    pub[npub++] = (CK_ATTRIBUTE){ CKA_VERIFY, &yes, sizeof yes };
    pub[npub++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)spec->label, label_len };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof yes };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &yes, sizeof yes };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &yes, sizeof yes };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &no, sizeof no };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_SIGN, &yes, sizeof yes };
    priv[npriv++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)spec->label, label_len };
    if (spec->id) {
        pub[npub++] = (CK_ATTRIBUTE){ CKA_ID, (void *)spec->id, spec->id_len };
        priv[npriv++] = (CK_ATTRIBUTE){ CKA_ID, (void *)spec->id, spec->id_len };
    }
    if (spec->key_type == CKK_RSA) {
        pub[npub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof bits };
        pub[npub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, exponent, sizeof exponent };
        pub[npub++] = (CK_ATTRIBUTE){ CKA_ENCRYPT, &yes, sizeof yes };
        priv[npriv++] = (CK_ATTRIBUTE){ CKA_DECRYPT, &yes, sizeof yes };
    } else {
        pub[npub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)oid, oid_len };
        if (spec->key_type == CKK_EC)
            priv[npriv++] = (CK_ATTRIBUTE){ CKA_DERIVE, &yes, sizeof yes };
    }

    CK_SESSION_HANDLE s;
    if (hsmtls_p11_session_acquire(t, &s) < 0)
        return NULL;
    CK_OBJECT_HANDLE hpub, hpriv;
    CK_RV rv = P11_CALL(t->module, C_GenerateKeyPair, s, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
    hsmtls_p11_object *o = NULL;
    int failed = 0;
    if (rv == CKR_OK)
        o = hsmtls_p11_object_for_handle(t, s, hpriv, &failed);
    hsmtls_p11_session_release(t, s, hsmtls_p11_session_is_lost(rv));
    hsmtls_p11_token_forget_queries(t); /* cached lookups no longer show the whole token */
    if (o)
        hsmtls_p11_object_complete_public(o);
    if (rv != CKR_OK)
        hsmtls_p11_error_set(rv, "generating a %s key pair \"%s\" on token \"%s\": %s",
                             hsmtls_p11_key_type_name(spec->key_type), spec->label, t->label,
                             hsmtls_p11_rv_name(rv));
    else if (!o && !failed)
        hsmtls_p11_error_set(CKR_GENERAL_ERROR, "token \"%s\" made key pair \"%s\" but it cannot be read back",
                             t->label, spec->label);
    return o;
}

hsmtls_p11_object *hsmtls_p11_generate_key_pair(const hsmtls_p11_uri *uri,
                                                const hsmtls_p11_lookup *opt,
                                                const hsmtls_p11_keygen *spec)
{
    if (!spec->label || !*spec->label) {
        spec_error("a label is required (object= in the URI)");
        return NULL;
    }
    if (spec->key_type == CKK_RSA && spec->bits && (spec->bits < 2048 || spec->bits > 16384)) {
        spec_error("RSA keys are 2048 to 16384 bits");
        return NULL;
    }
    hsmtls_p11_token **tokens;
    size_t n;
    if (hsmtls_p11_tokens_find(uri, opt, &tokens, &n) < 0)
        return NULL;
    hsmtls_p11_token *t = tokens[0];
    int ambiguous = n > 1;
    free(tokens);
    if (ambiguous) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "\"%s\" matches %zu tokens; name one token to generate a key on",
                             hsmtls_p11_uri_masked(uri), n);
        return NULL;
    }
    if (hsmtls_p11_token_login(t, uri, opt) < 0)
        return NULL;

    /* Never shadow an existing key: two objects under one URI would make lookups
     * pick either. */
    CK_SESSION_HANDLE s;
    if (hsmtls_p11_session_acquire(t, &s) < 0)
        return NULL;
    CK_ATTRIBUTE tmpl[2] = { { CKA_LABEL, (void *)spec->label, strlen(spec->label) },
                             { CKA_ID, (void *)spec->id, spec->id_len } };
    CK_OBJECT_HANDLE found;
    CK_ULONG count = 0;
    CK_RV rv = P11_CALL(t->module, C_FindObjectsInit, s, tmpl, spec->id ? 2 : 1);
    if (rv == CKR_OK) {
        rv = P11_CALL(t->module, C_FindObjects, s, &found, 1, &count);
        P11_CALL(t->module, C_FindObjectsFinal, s);
    }
    hsmtls_p11_session_release(t, s, hsmtls_p11_session_is_lost(rv));
    if (rv != CKR_OK) {
        hsmtls_p11_error_set(rv, "searching token \"%s\": %s", t->label, hsmtls_p11_rv_name(rv));
        return NULL;
    }
    if (count > 0) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "token \"%s\" already holds an object labelled \"%s\"%s; "
                             "not generating over it", t->label, spec->label, spec->id ? " with that id" : "");
        return NULL;
    }
    return generate_on(t, spec);
}
