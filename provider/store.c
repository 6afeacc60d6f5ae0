/* The OSSL_STORE loader for "pkcs11:" URIs. open() only parses the URI; the first
 * load() looks the objects up (logging in with the URI's PIN, the provider's
 * configured PIN, or the passphrase callback load() is given, in that order), then
 * each load() passes one object to libcrypto: keys by reference, so the private half
 * stays on the token and our key management builds the EVP_PKEY, certificates as DER.
 *
 * What is looked up: the URI's type= if it has one, else what the caller expects
 * (OSSL_STORE_expect: a private key, a public key or a certificate), else everything
 * the URI matches. */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "hsmtls/p11_uri.h"

typedef struct store_ctx {
    hsmtls_provctx *pc;
    hsmtls_p11_uri *uri;
    int expect;                  /* OSSL_STORE_INFO_*, 0 for anything */
    hsmtls_p11_object **objs;
    size_t n, next;
    int listed;                  /* the lookup ran */
    int done;                    /* failed, or nothing of the expected kind exists */
} store_ctx;

static void *store_open(void *provctx, const char *uri)
{
    hsmtls_provctx *pc = provctx;
    if (pc->config_error[0]) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_BAD_ARGUMENT, "the hsmtls provider's configuration: %s",
                        pc->config_error);
        return NULL;
    }
    store_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->pc = pc;
    ctx->uri = hsmtls_p11_uri_parse(uri);
    if (!ctx->uri) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_PKCS11, "%s", hsmtls_p11_error_message());
        free(ctx);
        return NULL;
    }
    return ctx;
}

static const OSSL_PARAM *store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
        OSSL_PARAM_END,
    };
    return list;
}

static int store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    store_ctx *ctx = loaderctx;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    if (p && !OSSL_PARAM_get_int(p, &ctx->expect))
        return 0;
    /* Other parameters (properties, input type, subject searches) do not narrow a
     * PKCS#11 lookup: the URI already names the object. */
    return 1;
}

/* The class to look up, or 0 when the caller expects something no token holds here
 * (parameters, CRLs). */
static int wanted_class(const store_ctx *ctx, CK_OBJECT_CLASS *cls)
{
    CK_OBJECT_CLASS from_uri = hsmtls_p11_uri_object_class(ctx->uri);
    CK_OBJECT_CLASS from_expect;
    switch (ctx->expect) {
    case 0:
        from_expect = HSMTLS_P11_ANY_CLASS;
        break;
    case OSSL_STORE_INFO_PKEY:
        from_expect = CKO_PRIVATE_KEY;
        break;
    case OSSL_STORE_INFO_PUBKEY:
        from_expect = CKO_PUBLIC_KEY;
        break;
    case OSSL_STORE_INFO_CERT:
        from_expect = CKO_CERTIFICATE;
        break;
    default:
        return 0;
    }
    if (from_uri == HSMTLS_P11_ANY_CLASS) {
        *cls = from_expect;
        return 1;
    }
    *cls = from_uri;
    return from_expect == HSMTLS_P11_ANY_CLASS || from_expect == from_uri;
}

/* The passphrase callback libcrypto gives load(), asked by the core for a PIN. */
struct pin_ask {
    OSSL_PASSPHRASE_CALLBACK *cb;
    void *arg;
};

static int ask_pin(const hsmtls_p11_pin_request *req, char *pin, size_t size, void *arg)
{
    struct pin_ask *ask = arg;
    char info[300];
    snprintf(info, sizeof info, "PKCS#11 token \"%s\"%s%s", req->token_label,
             req->context_specific ? " (key use)" : "",
             req->retry ? " (the last PIN was rejected)" : "");
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PASSPHRASE_PARAM_INFO, info, strlen(info)),
        OSSL_PARAM_END,
    };
    size_t len = 0;
    if (size < 2 || !ask->cb(pin, size - 1, &len, params, ask->arg) || len >= size)
        return -1;
    pin[len] = '\0';
    return (int)len;
}

static int look_up(store_ctx *ctx, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    ctx->listed = 1;
    CK_OBJECT_CLASS cls;
    if (!wanted_class(ctx, &cls)) {
        ctx->done = 1;
        return 1;
    }
    struct pin_ask ask = { pw_cb, pw_cbarg };
    hsmtls_p11_lookup lookup = hsmtls_prov_lookup(ctx->pc);
    if (pw_cb) {
        lookup.pin_cb = ask_pin;
        lookup.pin_cb_arg = &ask;
    }
    /* SoftHSM2 uses this process's libcrypto too and leaves its own errors behind (a
     * failed rdrand engine load, "bad decrypt" for a wrong PIN): drop them, ours say it. */
    ERR_set_mark();
    int listed = hsmtls_p11_objects_list(ctx->uri, &lookup, cls, &ctx->objs, &ctx->n) == 0;
    if (listed && ctx->n == 0 && cls != HSMTLS_P11_ANY_CLASS) {
        /* Nothing of the kind asked for: find() fails too, and its message lists what
         * the token does hold, so a typo in a label is obvious. */
        hsmtls_p11_object_find(ctx->uri, &lookup, cls);
        listed = 0;
    }
    ERR_pop_to_mark();
    if (!listed) {
        HSMTLS_PROV_ERR(ctx->pc, HSMTLS_R_PKCS11, "%s", hsmtls_p11_error_message());
        ctx->done = 1;
        return 0;
    }
    return 1;
}

static int emit_key(store_ctx *ctx, hsmtls_p11_object *o, const char *type,
                    OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    hsmtls_key_ref ref = { HSMTLS_KEY_REF_MAGIC, ctx->pc, o };
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)type, strlen(type)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof ref),
        OSSL_PARAM_END,
    };
    return object_cb(params, object_cbarg);
}

static int emit_cert(hsmtls_p11_object *o, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    size_t len;
    const unsigned char *der = hsmtls_p11_object_cert_der(o, &len);
    int object_type = OSSL_OBJECT_CERT;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, (void *)der, len),
        OSSL_PARAM_END,
    };
    return object_cb(params, object_cbarg);
}

static int store_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    store_ctx *ctx = loaderctx;
    if (!ctx->listed && !look_up(ctx, pw_cb, pw_cbarg))
        return 0;
    while (!ctx->done && ctx->next < ctx->n) {
        hsmtls_p11_object *o = ctx->objs[ctx->next++];
        if (hsmtls_p11_object_class(o) == CKO_CERTIFICATE) {
            size_t len;
            if (hsmtls_p11_object_cert_der(o, &len))
                return emit_cert(o, object_cb, object_cbarg);
            continue;
        }
        const char *type = hsmtls_key_type_name(o);
        if (type)
            return emit_key(ctx, o, type, object_cb, object_cbarg);
        /* A key type we have no key management for: skip it, as files do. */
    }
    return 0;
}

static int store_eof(void *loaderctx)
{
    store_ctx *ctx = loaderctx;
    return ctx->done || (ctx->listed && ctx->next >= ctx->n);
}

static int store_close(void *loaderctx)
{
    store_ctx *ctx = loaderctx;
    if (!ctx)
        return 1;
    hsmtls_p11_uri_free(ctx->uri);
    free(ctx->objs); /* the objects are the core's, kept for the process */
    free(ctx);
    return 1;
}

/* The key-file decoders' way in: one store load, narrowed to one key type. */
int hsmtls_store_load_key(hsmtls_provctx *pc, const char *uri, int expect, const char *key_type,
                          OSSL_CALLBACK *object_cb, void *object_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    store_ctx *ctx = store_open(pc, uri);
    if (!ctx)
        return 0;
    ctx->expect = expect;
    int ok = look_up(ctx, pw_cb, pw_cbarg);
    while (ok && !ctx->done && ctx->next < ctx->n) {
        hsmtls_p11_object *o = ctx->objs[ctx->next++];
        const char *type = hsmtls_key_type_name(o);
        if (hsmtls_p11_object_class(o) == CKO_CERTIFICATE || !type ||
            (key_type && strcmp(type, key_type) != 0))
            continue;
        ok = emit_key(ctx, o, type, object_cb, object_cbarg);
        break;
    }
    store_close(ctx);
    return ok;
}

const OSSL_DISPATCH hsmtls_store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (void (*)(void))store_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))store_settable_ctx_params },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))store_set_ctx_params },
    { OSSL_FUNC_STORE_LOAD, (void (*)(void))store_load },
    { OSSL_FUNC_STORE_EOF, (void (*)(void))store_eof },
    { OSSL_FUNC_STORE_CLOSE, (void (*)(void))store_close },
    { 0, NULL },
};
