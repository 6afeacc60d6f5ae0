/* RSA decryption by token keys: PKCS#1 v1.5 (CKM_RSA_PKCS), OAEP (CKM_RSA_PKCS_OAEP),
 * raw (CKM_RSA_X_509), and the TLS 1.2 RSA key exchange.
 *
 * The TLS padding (RSA_PKCS1_WITH_TLS_PADDING, what libssl asks for) must not tell a
 * client whether its premaster secret decrypted well (Bleichenbacher): the result is
 * always 48 bytes, a random secret replacing a bad one, and the choice is made without
 * branching on the secret. The token's own PKCS#1 check happens inside C_Decrypt and
 * its failure is visible to us as an error code; tokens that do the padding themselves
 * cannot hide that timing, which is why TLS 1.3 and ECDHE suites are preferred.
 *
 * Encryption needs only the public key and is the default provider's. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#define TLS_PREMASTER_LEN 48

typedef struct cipher_ctx {
    hsmtls_provctx *pc;
    hsmtls_key *key;
    int pad;                      /* RSA_PKCS1_PADDING, _OAEP_, _NO_, _WITH_TLS_ */
    EVP_MD *oaep_md;              /* NULL: SHA-1, OAEP's default */
    EVP_MD *mgf1_md;              /* NULL: the OAEP digest */
    unsigned char *label;
    size_t label_len;
    unsigned int client_version;  /* TLS: the version the client offered */
    unsigned int alt_version;     /* TLS: the negotiated one, tolerated (rollback bug) */
    EVP_PKEY_CTX *enc;            /* encryption: the default provider's context */
} cipher_ctx;

static void *newctx(void *provctx)
{
    cipher_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->pc = provctx;
        c->pad = RSA_PKCS1_PADDING;
    }
    return c;
}

static void freectx(void *ctx)
{
    cipher_ctx *c = ctx;
    if (!c)
        return;
    EVP_MD_free(c->oaep_md);
    EVP_MD_free(c->mgf1_md);
    OPENSSL_clear_free(c->label, c->label_len);
    EVP_PKEY_CTX_free(c->enc);
    free(c);
}

static void *dupctx(void *ctx)
{
    const cipher_ctx *from = ctx;
    cipher_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *from;
    c->label = NULL;
    c->enc = NULL;
    int ok = (!c->oaep_md || EVP_MD_up_ref(c->oaep_md)) && (!c->mgf1_md || EVP_MD_up_ref(c->mgf1_md));
    if (!ok) {
        free(c);
        return NULL;
    }
    if ((from->label && !(c->label = OPENSSL_memdup(from->label, from->label_len))) ||
        (from->enc && !(c->enc = EVP_PKEY_CTX_dup(from->enc)))) {
        freectx(c);
        return NULL;
    }
    return c;
}

static int fetch_md(cipher_ctx *c, EVP_MD **slot, const OSSL_PARAM *p, const OSSL_PARAM *props)
{
    const char *name, *pq = NULL;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
        return 0;
    if (props)
        OSSL_PARAM_get_utf8_string_ptr(props, &pq);
    EVP_MD *md = hsmtls_digest_fetch(c->pc, name, pq);
    if (!md) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "unknown digest \"%s\"", name);
        return 0;
    }
    EVP_MD_free(*slot);
    *slot = md;
    return 1;
}

static int set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    cipher_ctx *c = ctx;
    const OSSL_PARAM *p;
    if (!params || !params[0].key)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE))) {
        int pad = 0;
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char *s = p->data;
            pad = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ? RSA_PKCS1_PADDING :
                  strcmp(s, OSSL_PKEY_RSA_PAD_MODE_OAEP) == 0 ? RSA_PKCS1_OAEP_PADDING :
                  strcmp(s, OSSL_PKEY_RSA_PAD_MODE_NONE) == 0 ? RSA_NO_PADDING : 0;
        } else if (!OSSL_PARAM_get_int(p, &pad)) {
            return 0;
        }
        if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_OAEP_PADDING && pad != RSA_NO_PADDING &&
            pad != RSA_PKCS1_WITH_TLS_PADDING) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "this RSA padding is not supported");
            return 0;
        }
        c->pad = pad;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) &&
        !fetch_md(c, &c->oaep_md, p,
                  OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS)))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) &&
        !fetch_md(c, &c->mgf1_md, p,
                  OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS)))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL))) {
        void *label = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string(p, &label, 0, &len))
            return 0;
        OPENSSL_clear_free(c->label, c->label_len);
        c->label = label;
        c->label_len = len;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION)) &&
        !OSSL_PARAM_get_uint(p, &c->client_version))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION)) &&
        !OSSL_PARAM_get_uint(p, &c->alt_version))
        return 0;
    if (c->enc && !EVP_PKEY_CTX_set_params(c->enc, params))
        return 0;
    return 1;
}

static const OSSL_PARAM *settable_ctx_params(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
        OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
        OSSL_PARAM_END,
    };
    return list;
}

static int get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    cipher_ctx *c = ctx;
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) &&
        p->data_type != OSSL_PARAM_UTF8_STRING && !OSSL_PARAM_set_int(p, c->pad))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) &&
        !OSSL_PARAM_set_utf8_string(p, c->oaep_md ? EVP_MD_get0_name(c->oaep_md) : "SHA1"))
        return 0;
    return 1;
}

static const OSSL_PARAM *gettable_ctx_params(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL),
        OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    return list;
}

static int decrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    cipher_ctx *c = ctx;
    EVP_PKEY_CTX_free(c->enc);
    c->enc = NULL;
    if (provkey)
        c->key = provkey;
    if (!c->key || !c->key->priv) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "decryption needs a private key on a token");
        return 0;
    }
    return set_ctx_params(c, params);
}

/* One C_Decrypt into a modulus-sized buffer (tokens may insist on one). */
static int token_decrypt(cipher_ctx *c, const CK_MECHANISM *mech, const unsigned char *in,
                         size_t inlen, unsigned char *buf, size_t *len, int quiet)
{
    ERR_set_mark(); /* the module's own libcrypto leftovers are not our errors */
    int ok = hsmtls_p11_decrypt(c->key->priv, mech, in, inlen, buf, len) == 0;
    ERR_pop_to_mark();
    if (!ok && !quiet)
        HSMTLS_PROV_P11_ERR(c->pc, "decrypting");
    return ok;
}

/* libssl's RSA key exchange: 48 bytes out whatever happens, random ones when the
 * decryption, the length or the client's version is wrong (RFC 5246 7.4.7.1). */
static int decrypt_tls(cipher_ctx *c, unsigned char *out, size_t *outlen, size_t outsize,
                       const unsigned char *in, size_t inlen, unsigned char *buf, size_t k)
{
    unsigned char fake[TLS_PREMASTER_LEN];
    if (outsize < TLS_PREMASTER_LEN || c->client_version == 0 ||
        RAND_bytes_ex(c->pc->sw, fake, sizeof fake, 0) <= 0) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "bad TLS premaster decryption request");
        return 0;
    }
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    size_t len = k;
    unsigned int good = (unsigned int)token_decrypt(c, &mech, in, inlen, buf, &len, 1);
    /* From here on no branch depends on what was decrypted. */
    good &= (unsigned int)(len == TLS_PREMASTER_LEN);
    unsigned int ver = ((unsigned int)buf[0] << 8) | buf[1];
    unsigned int ver_ok = (unsigned int)(ver == c->client_version) |
                          (unsigned int)(c->alt_version != 0 && ver == c->alt_version);
    good &= ver_ok;
    unsigned char mask = (unsigned char)(0u - good); /* 0xff when good, else 0 */
    for (size_t i = 0; i < TLS_PREMASTER_LEN; i++)
        out[i] = (unsigned char)((buf[i] & mask) | (fake[i] & (unsigned char)~mask));
    OPENSSL_cleanse(fake, sizeof fake);
    *outlen = TLS_PREMASTER_LEN;
    return 1;
}

static int decrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
                   const unsigned char *in, size_t inlen)
{
    cipher_ctx *c = ctx;
    size_t k = (size_t)EVP_PKEY_get_size(c->key->soft);
    if (!out) {
        *outlen = c->pad == RSA_PKCS1_WITH_TLS_PADDING ? TLS_PREMASTER_LEN : k;
        return 1;
    }
    unsigned char *buf = OPENSSL_zalloc(k);
    if (!buf)
        return 0;
    int ok = 0;
    if (c->pad == RSA_PKCS1_WITH_TLS_PADDING) {
        ok = decrypt_tls(c, out, outlen, outsize, in, inlen, buf, k);
        OPENSSL_clear_free(buf, k);
        return ok;
    }
    CK_RSA_PKCS_OAEP_PARAMS oaep = { 0 };
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    if (c->pad == RSA_NO_PADDING) {
        mech.mechanism = CKM_RSA_X_509;
    } else if (c->pad == RSA_PKCS1_OAEP_PADDING) {
        EVP_MD *sha1 = c->oaep_md ? NULL : hsmtls_digest_fetch(c->pc, "SHA1", NULL);
        const EVP_MD *md = c->oaep_md ? c->oaep_md : sha1;
        const EVP_MD *mgf1 = c->mgf1_md ? c->mgf1_md : md;
        int known = hsmtls_pkcs11_hash(md, &oaep.hashAlg, NULL) &&
                    hsmtls_pkcs11_hash(mgf1, NULL, &oaep.mgf);
        EVP_MD_free(sha1);
        if (!known) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "OAEP with this digest is not supported");
            goto done;
        }
        oaep.source = CKZ_DATA_SPECIFIED;
        oaep.pSourceData = c->label;
        oaep.ulSourceDataLen = c->label_len;
        mech = (CK_MECHANISM){ CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep };
    }
    size_t len = k;
    if (!token_decrypt(c, &mech, in, inlen, buf, &len, 0))
        goto done;
    if (len > outsize) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "output buffer too small");
        goto done;
    }
    memcpy(out, buf, len);
    *outlen = len;
    ok = 1;
done:
    OPENSSL_clear_free(buf, k);
    return ok;
}

static int encrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    cipher_ctx *c = ctx;
    EVP_PKEY_CTX_free(c->enc);
    if (provkey)
        c->key = provkey;
    c->enc = c->key && c->key->soft ? EVP_PKEY_CTX_new_from_pkey(c->pc->sw, c->key->soft, NULL) : NULL;
    if (!c->enc || EVP_PKEY_encrypt_init(c->enc) <= 0)
        return 0;
    int pad = c->pad;
    OSSL_PARAM pp[] = { OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad), OSSL_PARAM_END };
    return EVP_PKEY_CTX_set_params(c->enc, pp) && set_ctx_params(c, params);
}

static int encrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
                   const unsigned char *in, size_t inlen)
{
    cipher_ctx *c = ctx;
    *outlen = outsize;
    return c->enc && EVP_PKEY_encrypt(c->enc, out, outlen, in, inlen) > 0;
}

const OSSL_DISPATCH hsmtls_rsa_asym_cipher_functions[] = {
    { OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))newctx },
    { OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))freectx },
    { OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))dupctx },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))decrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))decrypt },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))encrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))encrypt },
    { OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))set_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))settable_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))get_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))gettable_ctx_params },
    { 0, NULL },
};
