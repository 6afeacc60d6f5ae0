/* Reading an object's public attributes in two C_GetAttributeValue calls, and
 * turning them into something OpenSSL understands. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

enum { A_LABEL, A_ID, A_MODULUS, A_EXPONENT, A_EC_PARAMS, A_EC_POINT, A_VALUE, A_COUNT };

static const CK_ATTRIBUTE_TYPE variable_types[A_COUNT] = {
    CKA_LABEL, CKA_ID, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT, CKA_VALUE,
};

static const struct { int nid; const char *name; unsigned bits; } curves[] = {
    { NID_X9_62_prime256v1, "P-256", 256 }, { NID_secp384r1, "P-384", 384 },
    { NID_secp521r1, "P-521", 521 }, { NID_ED25519, "ED25519", 253 },
    { NID_ED448, "ED448", 456 },
};

static const char *curve_from_nid(int nid, unsigned *bits)
{
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++)
        if (curves[i].nid == nid) {
            *bits = curves[i].bits;
            return curves[i].name;
        }
    return NULL;
}

/* Curves come as an OID or, for EdDSA on some tokens, as a PrintableString name. */
const char *hsmtls_p11_curve_from_params(const unsigned char *p, size_t len, unsigned *bits)
{
    static const struct { const char *text; const char *name; unsigned bits; } printable[] = {
        { "edwards25519", "ED25519", 253 }, { "curve25519", "ED25519", 253 },
        { "edwards448", "ED448", 456 }, { "curve448", "ED448", 456 },
    };
    if (!p || len < 2)
        return NULL;
    if (p[0] == 0x13 && (size_t)p[1] + 2 == len) {
        for (size_t i = 0; i < sizeof printable / sizeof printable[0]; i++)
            if (strlen(printable[i].text) == p[1] && memcmp(p + 2, printable[i].text, p[1]) == 0) {
                *bits = printable[i].bits;
                return printable[i].name;
            }
        return NULL;
    }
    const unsigned char *q = p;
    ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &q, (long)len);
    if (!oid)
        return NULL;
    int nid = OBJ_obj2nid(oid);
    ASN1_OBJECT_free(oid);
    return curve_from_nid(nid, bits);
}

static size_t field_bytes(const char *curve)
{
    if (strcmp(curve, "P-256") == 0) return 32;
    if (strcmp(curve, "P-384") == 0) return 48;
    if (strcmp(curve, "P-521") == 0) return 66;
    if (strcmp(curve, "ED25519") == 0) return 32;
    return 57; /* ED448 */
}

static int is_edwards(const char *curve) { return curve && curve[0] == 'E'; }

/* The raw point's expected length tells a bare point from a DER OCTET STRING around
 * it; the first byte alone cannot (both may start with 0x04). */
static void unwrap_point(hsmtls_p11_object *o)
{
    if (!o->ec_point || !o->curve)
        return;
    size_t f = field_bytes(o->curve);
    size_t raw = is_edwards(o->curve) ? f : 2 * f + 1;
    if (o->ec_point_len == raw || o->ec_point_len < 3 || o->ec_point[0] != 0x04)
        return;
    size_t hdr, len;
    if (o->ec_point[1] < 0x80) {
        hdr = 2;
        len = o->ec_point[1];
    } else if (o->ec_point[1] == 0x81 && o->ec_point_len > 3) {
        hdr = 3;
        len = o->ec_point[2];
    } else {
        return;
    }
    if (hdr + len != o->ec_point_len)
        return;
    memmove(o->ec_point, o->ec_point + hdr, len);
    o->ec_point_len = len;
}

static unsigned rsa_bits(const unsigned char *n, size_t len)
{
    while (len > 0 && *n == 0) {
        n++;
        len--;
    }
    if (len == 0)
        return 0;
    unsigned bits = (unsigned)(len - 1) * 8;
    for (unsigned char top = n[0]; top; top >>= 1)
        bits++;
    return bits;
}

static int describe_certificate(hsmtls_p11_object *o)
{
    const unsigned char *p = o->cert;
    X509 *x = d2i_X509(NULL, &p, (long)o->cert_len);
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
    if (!pk) {
        X509_free(x);
        return -1;
    }
    int id = EVP_PKEY_get_base_id(pk);
    o->bits = (unsigned)EVP_PKEY_get_bits(pk);
    o->key_type = (CK_KEY_TYPE)-1;
    if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS)
        o->key_type = CKK_RSA;
    else if (id == EVP_PKEY_EC)
        o->key_type = CKK_EC;
    else if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448)
        o->key_type = CKK_EC_EDWARDS;
    if (o->key_type == CKK_EC || o->key_type == CKK_EC_EDWARDS) {
        char group[64] = "";
        int nid = id == EVP_PKEY_EC ? NID_undef : id;
        if (id == EVP_PKEY_EC && EVP_PKEY_get_group_name(pk, group, sizeof group, NULL))
            nid = OBJ_txt2nid(group);
        o->curve = curve_from_nid(nid, &o->bits);
        if (!o->curve)
            o->key_type = (CK_KEY_TYPE)-1;
    } else if (o->key_type != CKK_RSA)
        o->key_type = (CK_KEY_TYPE)-1;
    X509_free(x);
    return o->key_type == (CK_KEY_TYPE)-1 ? -1 : 0;
}

/* Returns 1 when the object is of a kind the core knows, 0 to skip it, -1 on error. */
int hsmtls_p11_object_read_attributes(hsmtls_p11_object *o, CK_SESSION_HANDLE s)
{
    hsmtls_p11_module *m = o->token->module;
    CK_OBJECT_HANDLE h = atomic_load(&o->handle);
    CK_BBOOL always = CK_FALSE;
    CK_CERTIFICATE_TYPE cert_type = (CK_CERTIFICATE_TYPE)-1;
    o->key_type = (CK_KEY_TYPE)-1;
    /* First call: the fixed-size values, and the sizes of everything else. */
    CK_ATTRIBUTE first[4 + A_COUNT] = {
        { CKA_CLASS, &o->cls, sizeof o->cls },
        { CKA_KEY_TYPE, &o->key_type, sizeof o->key_type },
        { CKA_CERTIFICATE_TYPE, &cert_type, sizeof cert_type },
        { CKA_ALWAYS_AUTHENTICATE, &always, sizeof always },
    };
    for (int i = 0; i < A_COUNT; i++)
        first[4 + i] = (CK_ATTRIBUTE){ variable_types[i], NULL, 0 };
    CK_RV rv = P11_CALL(m, C_GetAttributeValue, s, h, first, 4 + A_COUNT);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE)
        return hsmtls_p11_error_set(rv, "reading attributes of an object on token \"%s\": %s",
                                    o->token->label, hsmtls_p11_rv_name(rv));
    if (first[0].ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return 0;
    int is_key = o->cls == CKO_PRIVATE_KEY || o->cls == CKO_PUBLIC_KEY;
    int is_cert = o->cls == CKO_CERTIFICATE && cert_type == CKC_X_509;
    if (!is_cert && !(is_key && (o->key_type == CKK_RSA || o->key_type == CKK_EC ||
                                 o->key_type == CKK_EC_EDWARDS)))
        return 0;
    o->always_authenticate = first[3].ulValueLen == sizeof always && always == CK_TRUE;

    /* Second call: the values. CKA_VALUE only for certificates: on a key it is secret. */
    unsigned char **dst[A_COUNT] = { (unsigned char **)&o->label, &o->id, &o->modulus,
                                     &o->exponent, &o->ec_params, &o->ec_point, &o->cert };
    size_t *dst_len[A_COUNT] = { NULL, &o->id_len, &o->modulus_len, &o->exponent_len,
                                 &o->ec_params_len, &o->ec_point_len, &o->cert_len };
    CK_ATTRIBUTE second[A_COUNT];
    int idx[A_COUNT], n = 0;
    for (int i = 0; i < A_COUNT; i++) {
        CK_ULONG len = first[4 + i].ulValueLen;
        if (len == CK_UNAVAILABLE_INFORMATION || (i == A_VALUE && !is_cert))
            continue;
        unsigned char *buf = calloc(1, len + 1); /* +1: the label is used as a C string */
        if (!buf)
            return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
        *dst[i] = buf;
        second[n] = (CK_ATTRIBUTE){ variable_types[i], buf, len };
        idx[n++] = i;
    }
    rv = n ? P11_CALL(m, C_GetAttributeValue, s, h, second, (CK_ULONG)n) : CKR_OK;
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE)
        return hsmtls_p11_error_set(rv, "reading attributes of an object on token \"%s\": %s",
                                    o->token->label, hsmtls_p11_rv_name(rv));
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        if (second[k].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
            free(*dst[i]);
            *dst[i] = NULL;
        } else if (dst_len[i]) {
            *dst_len[i] = second[k].ulValueLen;
        }
    }
    if (!o->label)
        o->label = strdup("");

    if (is_cert)
        return describe_certificate(o) == 0 ? 1 : 0;
    if (o->key_type == CKK_RSA) {
        o->bits = rsa_bits(o->modulus, o->modulus_len);
        return o->modulus ? 1 : 0;
    }
    o->curve = hsmtls_p11_curve_from_params(o->ec_params, o->ec_params_len, &o->bits);
    if (!o->curve || (o->key_type == CKK_EC) == is_edwards(o->curve))
        return 0; /* a curve the core does not know: skipped, never fatal */
    unwrap_point(o);
    return 1;
}

void hsmtls_p11_object_free(hsmtls_p11_object *o)
{
    if (!o)
        return;
    free(o->label);
    free(o->id);
    free(o->modulus);
    free(o->exponent);
    free(o->ec_params);
    free(o->ec_point);
    free(o->cert);
    free(o);
}

static const char *group_name(const char *curve)
{
    if (strcmp(curve, "P-256") == 0) return "prime256v1";
    if (strcmp(curve, "P-384") == 0) return "secp384r1";
    return "secp521r1";
}

EVP_PKEY *hsmtls_p11_object_public_key(hsmtls_p11_object *o, OSSL_LIB_CTX *libctx,
                                       const char *propq)
{
    EVP_PKEY *pkey = NULL;
    if (o->cls == CKO_CERTIFICATE) {
        const unsigned char *p = o->cert;
        X509 *x = X509_new_ex(libctx, propq);
        if (x && !d2i_X509(&x, &p, (long)o->cert_len))
            x = NULL; /* d2i freed it */
        pkey = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    } else if (o->key_type == CKK_EC_EDWARDS && o->ec_point) {
        pkey = EVP_PKEY_new_raw_public_key_ex(libctx, o->curve, propq, o->ec_point, o->ec_point_len);
    } else if ((o->key_type == CKK_RSA && o->modulus && o->exponent) ||
               (o->key_type == CKK_EC && o->ec_point)) {
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        BIGNUM *n = NULL, *e = NULL;
        OSSL_PARAM *params = NULL;
        int ok;
        if (o->key_type == CKK_RSA) {
            n = BN_bin2bn(o->modulus, (int)o->modulus_len, NULL);
            e = BN_bin2bn(o->exponent, (int)o->exponent_len, NULL);
            ok = bld && n && e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
                 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
        } else {
            ok = bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                                        group_name(o->curve), 0) &&
                 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, o->ec_point,
                                                  o->ec_point_len);
        }
        params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
        EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(
            libctx, o->key_type == CKK_RSA ? "RSA" : "EC", propq) : NULL;
        if (ctx && EVP_PKEY_fromdata_init(ctx) > 0)
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
        EVP_PKEY_CTX_free(ctx);
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
        BN_free(n);
        BN_free(e);
    }
    if (!pkey)
        hsmtls_p11_error_set(CKR_GENERAL_ERROR, "the public half of \"%s\" on token \"%s\" is not known",
                             o->label, o->token->label);
    return pkey;
}

size_t hsmtls_p11_object_signature_size(const hsmtls_p11_object *o)
{
    if (o->key_type == CKK_RSA)
        return (o->bits + 7) / 8;
    if (!o->curve)
        return 0;
    return 2 * field_bytes(o->curve);
}
