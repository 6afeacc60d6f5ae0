/* Signatures by token keys: RSA (PKCS#1 v1.5 and PSS), ECDSA and EdDSA.
 *
 * Hashing is done in software and the token signs the digest: SoftHSM2 and most HSMs
 * offer only the raw mechanisms for ECDSA, and a raw mechanism costs one C_SignInit
 * and one C_Sign however long the message is.
 *   RSA PKCS#1 v1.5: CKM_RSA_PKCS over DigestInfo(digest), the prefix added here;
 *   RSA PSS: CKM_RSA_PKCS_PSS over the digest, with hash, MGF1 hash and salt length
 *            from the context (TLS 1.3 asks for salt length = digest length);
 *   ECDSA: CKM_ECDSA over the digest, r||s turned into the DER OpenSSL expects;
 *   EdDSA: CKM_EDDSA over the whole message, one-shot only (as the default provider).
 * Verification needs only the public key, so it is handed to the default provider in
 * our own library context: the parameters set here are passed on to it. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/obj_mac.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

enum sig_kind { SIG_RSA, SIG_ECDSA, SIG_EDDSA };

typedef struct sig_ctx {
    hsmtls_provctx *pc;
    enum sig_kind kind;
    hsmtls_key *key;             /* the EVP_PKEY keeps it alive while we are used */
    EVP_MD *md;                  /* NULL: none set (raw sign() input) */
    EVP_MD *mgf1_md;             /* NULL: same as md */
    int pad;                     /* RSA_PKCS1_PADDING, RSA_PKCS1_PSS_PADDING, RSA_NO_PADDING */
    int saltlen;                 /* bytes, or RSA_PSS_SALTLEN_DIGEST/_AUTO/_MAX */
    EVP_MD_CTX *hash;            /* digest_sign: the running hash */
    EVP_PKEY_CTX *vpctx;         /* verify(): the default provider's context */
    EVP_MD_CTX *vmd;             /* digest_verify: the default provider's context */
} sig_ctx;

static void *newctx(void *provctx, enum sig_kind kind)
{
    sig_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pc = provctx;
    c->kind = kind;
    c->pad = RSA_PKCS1_PADDING;
    c->saltlen = RSA_PSS_SALTLEN_AUTO;
    return c;
}
static void *rsa_newctx(void *provctx, const char *propq) { return newctx(provctx, SIG_RSA); }
static void *ecdsa_newctx(void *provctx, const char *propq) { return newctx(provctx, SIG_ECDSA); }
static void *eddsa_newctx(void *provctx, const char *propq) { return newctx(provctx, SIG_EDDSA); }

/* Drops what an earlier operation left, keeping the parameters set so far. */
static void reset_operation(sig_ctx *c)
{
    EVP_MD_CTX_free(c->hash);
    EVP_PKEY_CTX_free(c->vpctx);
    EVP_MD_CTX_free(c->vmd);
    c->hash = NULL;
    c->vpctx = NULL;
    c->vmd = NULL;
}

static void freectx(void *ctx)
{
    sig_ctx *c = ctx;
    if (!c)
        return;
    reset_operation(c);
    EVP_MD_free(c->md);
    EVP_MD_free(c->mgf1_md);
    free(c);
}

static void *dupctx(void *ctx)
{
    const sig_ctx *from = ctx;
    sig_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *from;
    c->hash = NULL;
    c->vpctx = NULL;
    c->vmd = NULL;
    if ((c->md && !EVP_MD_up_ref(c->md)) || (c->mgf1_md && !EVP_MD_up_ref(c->mgf1_md))) {
        free(c);
        return NULL;
    }
    int ok = 1;
    if (from->hash && (!(c->hash = EVP_MD_CTX_new()) || !EVP_MD_CTX_copy_ex(c->hash, from->hash)))
        ok = 0;
    if (ok && from->vmd && (!(c->vmd = EVP_MD_CTX_new()) || !EVP_MD_CTX_copy_ex(c->vmd, from->vmd)))
        ok = 0;
    if (ok && from->vpctx && !(c->vpctx = EVP_PKEY_CTX_dup(from->vpctx)))
        ok = 0;
    if (!ok) {
        freectx(c);
        return NULL;
    }
    return c;
}

/* ---- parameters ---------------------------------------------------------------- */

static int set_md(sig_ctx *c, EVP_MD **slot, const char *name, const char *props)
{
    EVP_MD *md = hsmtls_digest_fetch(c->pc, name, props);
    if (!md) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "unknown digest \"%s\"", name);
        return 0;
    }
    EVP_MD_free(*slot);
    *slot = md;
    return 1;
}

static const struct { int id; const char *name; } pad_names[] = {
    { RSA_NO_PADDING, OSSL_PKEY_RSA_PAD_MODE_NONE },
    { RSA_PKCS1_PADDING, OSSL_PKEY_RSA_PAD_MODE_PKCSV15 },
    { RSA_PKCS1_PSS_PADDING, OSSL_PKEY_RSA_PAD_MODE_PSS },
};

/* Pad mode and salt length come as integers or as names, depending on the caller
 * (EVP_PKEY_CTX_set_rsa_padding goes through a translation that may use either). */
static int get_pad(sig_ctx *c, const OSSL_PARAM *p, int *pad)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        for (size_t i = 0; i < sizeof pad_names / sizeof pad_names[0]; i++)
            if (strcmp(p->data, pad_names[i].name) == 0) {
                *pad = pad_names[i].id;
                return 1;
            }
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "RSA padding \"%s\" is not supported",
                        (const char *)p->data);
        return 0;
    }
    if (!OSSL_PARAM_get_int(p, pad))
        return 0;
    if (*pad != RSA_NO_PADDING && *pad != RSA_PKCS1_PADDING && *pad != RSA_PKCS1_PSS_PADDING) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "RSA padding %d is not supported", *pad);
        return 0;
    }
    return 1;
}

static int get_saltlen(const OSSL_PARAM *p, int *saltlen)
{
    if (p->data_type != OSSL_PARAM_UTF8_STRING)
        return OSSL_PARAM_get_int(p, saltlen);
    const char *s = p->data;
    if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
        *saltlen = RSA_PSS_SALTLEN_DIGEST;
    else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0)
        *saltlen = RSA_PSS_SALTLEN_MAX;
    else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
        *saltlen = RSA_PSS_SALTLEN_AUTO;
    else {
        char *end;
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || v < RSA_PSS_SALTLEN_MAX || v > 0xffff)
            return 0;
        *saltlen = (int)v;
    }
    return 1;
}

static int set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    if (!params)
        return 1;
    const OSSL_PARAM *p;
    const char *props = NULL;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PROPERTIES)))
        OSSL_PARAM_get_utf8_string_ptr(p, &props);
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST))) {
        const char *name;
        if (c->kind == SIG_EDDSA || c->hash) {
            /* EdDSA has its hash built in; a running digest_sign cannot switch. */
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "the digest cannot be set now");
            return 0;
        }
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md(c, &c->md, name, props))
            return 0;
    }
    if (c->kind == SIG_RSA) {
        if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) &&
            !get_pad(c, p, &c->pad))
            return 0;
        if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) &&
            !get_saltlen(p, &c->saltlen)) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "bad PSS salt length");
            return 0;
        }
        if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST))) {
            const char *name, *mprops = NULL;
            const OSSL_PARAM *pp = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES);
            if (pp)
                OSSL_PARAM_get_utf8_string_ptr(pp, &mprops);
            if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !set_md(c, &c->mgf1_md, name, mprops))
                return 0;
        }
    }
    /* Verification is the default provider's: it must see the same settings. */
    EVP_PKEY_CTX *delegate = c->vpctx ? c->vpctx : c->vmd ? EVP_MD_CTX_get_pkey_ctx(c->vmd) : NULL;
    if (delegate && params[0].key && !EVP_PKEY_CTX_set_params(delegate, params))
        return 0;
    return 1;
}

static const OSSL_PARAM *rsa_settable(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
        OSSL_PARAM_END,
    };
    return list;
}

static const OSSL_PARAM *ecdsa_settable(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
        OSSL_PARAM_END,
    };
    return list;
}

static const OSSL_PARAM *eddsa_settable(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = { OSSL_PARAM_END };
    return list;
}

/* The parameters set so far, for the default provider's context. */
static void delegate_params(const sig_ctx *c, OSSL_PARAM out[5], int *pad, int *saltlen)
{
    size_t n = 0;
    if (c->md)
        out[n++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST,
                                                    (char *)EVP_MD_get0_name(c->md), 0);
    if (c->kind == SIG_RSA) {
        *pad = c->pad;
        *saltlen = c->saltlen;
        out[n++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PAD_MODE, pad);
        if (c->pad == RSA_PKCS1_PSS_PADDING) {
            out[n++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, saltlen);
            if (c->mgf1_md)
                out[n++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST,
                                                            (char *)EVP_MD_get0_name(c->mgf1_md), 0);
        }
    }
    out[n] = OSSL_PARAM_construct_end();
}

/* The AlgorithmIdentifier (for certificates and requests signed with a token key) is
 * the default provider's to write: it answers for a verify context set up the same.
 * A digest-verify context, since EdDSA has no other. */
static int get_algorithm_id(sig_ctx *c, OSSL_PARAM *p)
{
    if (!c->key || !c->key->soft)
        return 0;
    OSSL_PARAM dp[5];
    int pad, saltlen;
    delegate_params(c, dp, &pad, &saltlen);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    OSSL_PARAM q[] = { *p, OSSL_PARAM_END };
    ERR_set_mark();
    int ok = mctx &&
             EVP_DigestVerifyInit_ex(mctx, &pctx, c->md ? EVP_MD_get0_name(c->md) : NULL,
                                     c->pc->sw, NULL, c->key->soft, dp + (c->md ? 1 : 0)) &&
             EVP_PKEY_CTX_get_params(pctx, q);
    ERR_pop_to_mark();
    EVP_MD_CTX_free(mctx);
    if (ok)
        p->return_size = q[0].return_size;
    return ok;
}

static int get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) && !get_algorithm_id(c, p))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) &&
        !OSSL_PARAM_set_utf8_string(p, c->md ? EVP_MD_get0_name(c->md) : ""))
        return 0;
    if (c->kind != SIG_RSA)
        return 1;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE))) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char *name = "";
            for (size_t i = 0; i < sizeof pad_names / sizeof pad_names[0]; i++)
                if (pad_names[i].id == c->pad)
                    name = pad_names[i].name;
            if (!OSSL_PARAM_set_utf8_string(p, name))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, c->pad)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) &&
        p->data_type != OSSL_PARAM_UTF8_STRING && !OSSL_PARAM_set_int(p, c->saltlen))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST))) {
        const EVP_MD *mgf1 = c->mgf1_md ? c->mgf1_md : c->md;
        if (!OSSL_PARAM_set_utf8_string(p, mgf1 ? EVP_MD_get0_name(mgf1) : ""))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM *gettable_ctx_params(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL),
        OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    return list;
}

/* ---- signing on the token ------------------------------------------------------ */

/* DigestInfo prefixes (RFC 8017 section 9.2, note 1): the DER before the digest. */
static const struct {
    const char *md;
    int nid; /* EVP_MD_get_type(): a field, where EVP_MD_is_a() looks names up */
    unsigned char prefix[19];
    size_t len;
} digest_infos[] = {
#define NIST(last, hlen) { 0x30, 0x11 + hlen, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, \
                           0x65, 0x03, 0x04, 0x02, last, 0x05, 0x00, 0x04, hlen }, 19
    { "SHA1", NID_sha1, { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05,
                          0x00, 0x04, 0x14 }, 15 },
    { "SHA2-224", NID_sha224, NIST(0x04, 28) },
    { "SHA2-256", NID_sha256, NIST(0x01, 32) },
    { "SHA2-384", NID_sha384, NIST(0x02, 48) },
    { "SHA2-512", NID_sha512, NIST(0x03, 64) },
    { "SHA2-512/224", NID_sha512_224, NIST(0x05, 28) },
    { "SHA2-512/256", NID_sha512_256, NIST(0x06, 32) },
    { "SHA3-224", NID_sha3_224, NIST(0x07, 28) },
    { "SHA3-256", NID_sha3_256, NIST(0x08, 32) },
    { "SHA3-384", NID_sha3_384, NIST(0x09, 48) },
    { "SHA3-512", NID_sha3_512, NIST(0x0a, 64) },
    { "MD5-SHA1", NID_md5_sha1, { 0 }, 0 }, /* TLS 1.0/1.1: the bare 36-byte concatenation */
#undef NIST
};

/* The DigestInfo entry for a digest: by NID, else by name; -1 when there is none. */
static int digest_info_index(const EVP_MD *md)
{
    const int n = (int)(sizeof digest_infos / sizeof digest_infos[0]);
    int nid = EVP_MD_get_type(md);
    for (int i = 0; nid != NID_undef && i < n; i++)
        if (digest_infos[i].nid == nid)
            return i;
    for (int i = 0; i < n; i++)
        if (EVP_MD_is_a(md, digest_infos[i].md))
            return i;
    return -1;
}

static int token_sign(sig_ctx *c, const CK_MECHANISM *mech, const unsigned char *in,
                      size_t in_len, unsigned char *out, size_t *out_len)
{
    ERR_set_mark(); /* the module's own libcrypto leftovers are not our errors */
    int ok = hsmtls_p11_sign(c->key->priv, mech, in, in_len, out, out_len) == 0;
    ERR_pop_to_mark();
    if (!ok)
        HSMTLS_PROV_P11_ERR(c->pc, "signing");
    return ok;
}

static int rsa_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize,
                    const unsigned char *tbs, size_t tbslen)
{
    size_t k = (size_t)EVP_PKEY_get_size(c->key->soft);
    if (sigsize < k) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "signature buffer too small");
        return 0;
    }
    if (c->md && c->pad != RSA_NO_PADDING && tbslen != (size_t)EVP_MD_get_size(c->md)) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "%zu bytes to sign, but %s digests have %d",
                        tbslen, EVP_MD_get0_name(c->md), EVP_MD_get_size(c->md));
        return 0;
    }
    *siglen = sigsize;
    if (c->pad == RSA_NO_PADDING) {
        CK_MECHANISM mech = { CKM_RSA_X_509, NULL, 0 };
        return token_sign(c, &mech, tbs, tbslen, sig, siglen);
    }
    if (c->pad == RSA_PKCS1_PADDING) {
        CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
        if (!c->md)
            return token_sign(c, &mech, tbs, tbslen, sig, siglen);
        int i = digest_info_index(c->md);
        if (i >= 0) {
            unsigned char buf[19 + EVP_MAX_MD_SIZE];
            memcpy(buf, digest_infos[i].prefix, digest_infos[i].len);
            memcpy(buf + digest_infos[i].len, tbs, tbslen);
            return token_sign(c, &mech, buf, digest_infos[i].len + tbslen, sig, siglen);
        }
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "no PKCS#1 v1.5 DigestInfo for %s",
                        EVP_MD_get0_name(c->md));
        return 0;
    }
    /* PSS. Without a digest set, the input's length says which one it is. */
    EVP_MD *fetched = NULL;
    const EVP_MD *md = c->md;
    if (!md) {
        const char *name = tbslen == 20 ? "SHA1" : tbslen == 28 ? "SHA224" : tbslen == 32 ? "SHA256" :
                           tbslen == 48 ? "SHA384" : tbslen == 64 ? "SHA512" : NULL;
        md = fetched = name ? hsmtls_digest_fetch(c->pc, name, NULL) : NULL;
    }
    const EVP_MD *mgf1 = c->mgf1_md ? c->mgf1_md : md;
    CK_MECHANISM_TYPE hash;
    CK_RSA_PKCS_MGF_TYPE mgf;
    if (!hsmtls_pkcs11_hash(md, &hash, NULL) || !hsmtls_pkcs11_hash(mgf1, NULL, &mgf)) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "PSS with digest %s and MGF1 %s is not supported",
                        md ? EVP_MD_get0_name(md) : "?", mgf1 ? EVP_MD_get0_name(mgf1) : "?");
        EVP_MD_free(fetched);
        return 0;
    }
    int hlen = EVP_MD_get_size(md);
    EVP_MD_free(fetched);
    /* RFC 8017 9.1.1: emLen = ceil((modBits - 1) / 8), the salt at most emLen - hLen - 2. */
    int em_len = (EVP_PKEY_get_bits(c->key->soft) - 1 + 7) / 8;
    int max_salt = em_len - hlen - 2;
    int salt = c->saltlen;
    if (salt == RSA_PSS_SALTLEN_DIGEST)
        salt = hlen;
    else if (salt == RSA_PSS_SALTLEN_AUTO || salt == RSA_PSS_SALTLEN_MAX)
        salt = max_salt;  /* what OpenSSL signs with for "auto" and "max" */
    if (salt < 0 || salt > max_salt) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "PSS salt length %d does not fit this key", salt);
        return 0;
    }
    CK_RSA_PKCS_PSS_PARAMS pss = { hash, mgf, (CK_ULONG)salt };
    CK_MECHANISM mech = { CKM_RSA_PKCS_PSS, &pss, sizeof pss };
    return token_sign(c, &mech, tbs, tbslen, sig, siglen);
}

/* One DER INTEGER of a big-endian unsigned value: leading zeros dropped, a zero byte
 * put back when the top bit is set. Returns the bytes written (at most len + 3). */
static size_t der_integer(unsigned char *out, const unsigned char *v, size_t len)
{
    while (len > 1 && v[0] == 0) {
        v++;
        len--;
    }
    size_t pad = v[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(len + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v, len);
    return 2 + pad + len;
}

/* The token returns r||s, each as wide as the group order; X.509 and TLS want the DER
 * ECDSA-Sig-Value (SEQUENCE of two INTEGERs), written here directly: the same bytes as
 * i2d_ECDSA_SIG, without building BIGNUMs for them on every handshake. */
static int ecdsa_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize,
                      const unsigned char *tbs, size_t tbslen)
{
    unsigned char raw[2 * 66];
    size_t raw_len = sizeof raw;
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    if (!token_sign(c, &mech, tbs, tbslen, raw, &raw_len))
        return 0;
    if (raw_len == 0 || raw_len % 2 != 0) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_PKCS11, "the token returned a %zu-byte ECDSA signature",
                        raw_len);
        return 0;
    }
    size_t half = raw_len / 2;
    unsigned char body[2 * (66 + 3)];
    size_t body_len = der_integer(body, raw, half);
    body_len += der_integer(body + body_len, raw + half, half);
    size_t head = body_len < 0x80 ? 2 : 3;
    if (head + body_len > sigsize) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "cannot encode the ECDSA signature");
        return 0;
    }
    sig[0] = 0x30;
    if (head == 2) {
        sig[1] = (unsigned char)body_len;
    } else {
        sig[1] = 0x81;
        sig[2] = (unsigned char)body_len;
    }
    memcpy(sig + head, body, body_len);
    *siglen = head + body_len;
    return 1;
}

static int sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    reset_operation(c);
    if (provkey) /* NULL: a re-init (EVP_DigestSignInit again), same key and settings */
        c->key = provkey;
    if (!c->key || !c->key->priv) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "signing needs a private key on a token");
        return 0;
    }
    return set_ctx_params(c, params);
}

/* sign() takes a digest (or, without one set, data the padding takes as is). */
static int sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = ctx;
    if (!sig) {
        *siglen = (size_t)EVP_PKEY_get_size(c->key->soft);
        return 1;
    }
    switch (c->kind) {
    case SIG_RSA:
        return rsa_sign(c, sig, siglen, sigsize, tbs, tbslen);
    case SIG_ECDSA:
        if (c->md && tbslen != (size_t)EVP_MD_get_size(c->md)) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "%zu bytes to sign, but %s digests have %d",
                            tbslen, EVP_MD_get0_name(c->md), EVP_MD_get_size(c->md));
            return 0;
        }
        return ecdsa_sign(c, sig, siglen, sigsize, tbs, tbslen);
    default:
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED, "EdDSA signs whole messages only");
        return 0;
    }
}

static int digest_sign_init(void *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    if (!sign_init(c, provkey, NULL))
        return 0;
    if (c->kind == SIG_EDDSA) {
        if (mdname && *mdname) {
            HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "EdDSA takes no digest (%s given)", mdname);
            return 0;
        }
        return set_ctx_params(c, params);
    }
    if (!set_md(c, &c->md, mdname && *mdname ? mdname : "SHA256", NULL) ||
        !set_ctx_params(c, params))
        return 0;
    c->hash = EVP_MD_CTX_new();
    return c->hash && EVP_DigestInit_ex2(c->hash, c->md, NULL);
}

static int digest_sign_update(void *ctx, const unsigned char *data, size_t len)
{
    sig_ctx *c = ctx;
    return c->hash && EVP_DigestUpdate(c->hash, data, len);
}

static int digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    sig_ctx *c = ctx;
    if (!sig)
        return sign(c, NULL, siglen, 0, NULL, 0);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen;
    if (!c->hash || !EVP_DigestFinal_ex(c->hash, digest, &dlen))
        return 0;
    return sign(c, sig, siglen, sigsize, digest, dlen);
}

/* One-shot (what libssl calls): spares libcrypto the context copy that
 * EVP_DigestSignFinal makes to keep a context reusable. */
static int digest_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                       const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = ctx;
    if (!sig)
        return sign(c, NULL, siglen, 0, NULL, 0);
    return digest_sign_update(c, tbs, tbslen) && digest_sign_final(c, sig, siglen, sigsize);
}

static int eddsa_digest_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                             const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = ctx;
    size_t max = (size_t)EVP_PKEY_get_size(c->key->soft);
    if (!sig) {
        *siglen = max;
        return 1;
    }
    if (sigsize < max) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT, "signature buffer too small");
        return 0;
    }
    /* No parameters: pure Ed25519 / Ed448, no context string, as TLS uses them. */
    CK_MECHANISM mech = { CKM_EDDSA, NULL, 0 };
    *siglen = sigsize;
    return token_sign(c, &mech, tbs, tbslen, sig, siglen);
}

/* ---- verifying with the public key, in software -------------------------------- */

static int verify_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    reset_operation(c);
    if (provkey) /* NULL: a re-init, same key */
        c->key = provkey;
    OSSL_PARAM dp[5];
    int pad, saltlen;
    delegate_params(c, dp, &pad, &saltlen);
    c->vpctx = c->key && c->key->soft ? EVP_PKEY_CTX_new_from_pkey(c->pc->sw, c->key->soft, NULL) : NULL;
    if (!c->vpctx || EVP_PKEY_verify_init(c->vpctx) <= 0 ||
        (dp[0].key && !EVP_PKEY_CTX_set_params(c->vpctx, dp)))
        return 0;
    return set_ctx_params(c, params);
}

static int verify(void *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,
                  size_t tbslen)
{
    sig_ctx *c = ctx;
    return c->vpctx && EVP_PKEY_verify(c->vpctx, sig, siglen, tbs, tbslen) == 1;
}

static int digest_verify_init(void *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    sig_ctx *c = ctx;
    reset_operation(c);
    if (provkey) /* NULL: a re-init, same key */
        c->key = provkey;
    if (mdname && *mdname && !set_md(c, &c->md, mdname, NULL))
        return 0;
    EVP_PKEY_CTX *pctx = NULL;
    c->vmd = EVP_MD_CTX_new();
    if (!c->vmd || !c->key || !c->key->soft ||
        !EVP_DigestVerifyInit_ex(c->vmd, &pctx, mdname && *mdname ? mdname : NULL, c->pc->sw,
                                 NULL, c->key->soft, NULL))
        return 0;
    if (c->kind == SIG_RSA) {
        OSSL_PARAM dp[5];
        int pad, saltlen;
        delegate_params(c, dp, &pad, &saltlen);
        if (!EVP_PKEY_CTX_set_params(pctx, dp + (c->md ? 1 : 0))) /* the digest is set already */
            return 0;
    }
    return set_ctx_params(c, params);
}

static int digest_verify_update(void *ctx, const unsigned char *data, size_t len)
{
    sig_ctx *c = ctx;
    return c->vmd && EVP_DigestVerifyUpdate(c->vmd, data, len) == 1;
}

static int digest_verify_final(void *ctx, const unsigned char *sig, size_t siglen)
{
    sig_ctx *c = ctx;
    return c->vmd && EVP_DigestVerifyFinal(c->vmd, sig, siglen) == 1;
}

static int digest_verify(void *ctx, const unsigned char *sig, size_t siglen,
                         const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = ctx;
    return c->vmd && EVP_DigestVerify(c->vmd, sig, siglen, tbs, tbslen) == 1;
}

#define COMMON_FUNCTIONS                                                                   \
    { OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))freectx },                              \
    { OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))dupctx },                                \
    { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))set_ctx_params },                \
    { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))get_ctx_params },                \
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))gettable_ctx_params }

#define DIGEST_FUNCTIONS                                                                   \
    { OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sign_init },                          \
    { OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sign },                                    \
    { OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))verify_init },                      \
    { OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))verify },                                \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init },            \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_sign_update },        \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final },          \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))digest_sign },                      \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))digest_verify_init },        \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))digest_verify_update },    \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))digest_verify_final }

const OSSL_DISPATCH hsmtls_rsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))rsa_settable },
    COMMON_FUNCTIONS,
    DIGEST_FUNCTIONS,
    { 0, NULL },
};

const OSSL_DISPATCH hsmtls_ecdsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ecdsa_newctx },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_settable },
    COMMON_FUNCTIONS,
    DIGEST_FUNCTIONS,
    { 0, NULL },
};

/* EdDSA: one-shot digest_sign and digest_verify only, as the default provider. */
const OSSL_DISPATCH hsmtls_eddsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))eddsa_newctx },
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))eddsa_settable },
    COMMON_FUNCTIONS,
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init },
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))eddsa_digest_sign },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))digest_verify_init },
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, (void (*)(void))digest_verify },
    { 0, NULL },
};
