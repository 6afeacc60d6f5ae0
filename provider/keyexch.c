/* ECDH with a token's EC key (CKM_ECDH1_DERIVE, no KDF): the shared secret is the
 * x coordinate, as the default provider's plain ECDH gives it. The peer's key reaches
 * us through our key management's import (public keys only), so set_peer() gets one
 * of our keys with just the software public half. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>

typedef struct exch_ctx {
    hsmtls_provctx *pc;
    hsmtls_key *key;
    hsmtls_key *peer;
} exch_ctx;

static void *newctx(void *provctx)
{
    exch_ctx *c = calloc(1, sizeof *c);
    if (c)
        c->pc = provctx;
    return c;
}

static void freectx(void *ctx)
{
    free(ctx); /* the keys belong to their EVP_PKEYs */
}

static void *dupctx(void *ctx)
{
    exch_ctx *c = malloc(sizeof *c);
    if (c)
        *c = *(exch_ctx *)ctx;
    return c;
}

/* Only the plain derivation: no cofactor mode change (the NIST curves have cofactor
 * 1 anyway) and no KDF, which the token's CKD_NULL derivation does not apply. */
static int set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    exch_ctx *c = ctx;
    const OSSL_PARAM *p;
    if (!params)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_KDF_TYPE))) {
        const char *kdf;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &kdf) || *kdf) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "ECDH with a KDF is not supported");
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE))) {
        int mode;
        if (!OSSL_PARAM_get_int(p, &mode) || mode > 0) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "cofactor ECDH is not supported");
            return 0;
        }
    }
    return 1;
}

static const OSSL_PARAM *settable_ctx_params(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, NULL, 0),
        OSSL_PARAM_int(OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE, NULL),
        OSSL_PARAM_END,
    };
    return list;
}

static int init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    exch_ctx *c = ctx;
    c->key = provkey;
    if (!c->key || !c->key->priv) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "ECDH needs a private key on a token");
        return 0;
    }
    return set_ctx_params(c, params);
}

static int set_peer(void *ctx, void *provkey)
{
    exch_ctx *c = ctx;
    c->peer = provkey;
    if (!c->peer || !c->peer->soft || !c->key || !c->key->soft ||
        EVP_PKEY_parameters_eq(c->key->soft, c->peer->soft) != 1) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "the peer key is not on the same curve");
        return 0;
    }
    return 1;
}

static int derive(void *ctx, unsigned char *secret, size_t *secretlen, size_t outlen)
{
    exch_ctx *c = ctx;
    size_t size = (size_t)(EVP_PKEY_get_bits(c->key->soft) + 7) / 8;
    if (!secret) {
        *secretlen = size;
        return 1;
    }
    if (!c->peer) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "no peer key set");
        return 0;
    }
    unsigned char point[1 + 2 * 66];
    size_t point_len = 0;
    if (!EVP_PKEY_get_octet_string_param(c->peer->soft, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                         point, sizeof point, &point_len))
        return 0;
    unsigned char buf[66];
    size_t len = sizeof buf;
    ERR_set_mark(); /* the module's own libcrypto leftovers are not our errors */
    int ok = hsmtls_p11_derive(c->key->priv, point, point_len, buf, &len) == 0;
    ERR_pop_to_mark();
    if (!ok) {
        HSMTLS_PROV_P11_ERR(c->pc, "deriving");
        return 0;
    }
    if (len > outlen) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "output buffer too small");
        OPENSSL_cleanse(buf, sizeof buf);
        return 0;
    }
    memcpy(secret, buf, len);
    *secretlen = len;
    OPENSSL_cleanse(buf, sizeof buf);
    return 1;
}

const OSSL_DISPATCH hsmtls_ecdh_keyexch_functions[] = {
    { OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))newctx },
    { OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))freectx },
    { OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))dupctx },
    { OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))init },
    { OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))set_peer },
    { OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))derive },
    { OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, (void (*)(void))set_ctx_params },
    { OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS, (void (*)(void))settable_ctx_params },
    { 0, NULL },
};
