/* TLS 1.2 DHE parameters of a server: an RFC 7919 group by name (ffdhe2048 unless told
 * otherwise: OpenSSL 3.0's "auto" would pick RFC 3526 MODP primes instead), or custom
 * parameters from a PEM file or memory, for peers that insist on their own primes. */
#include "lib_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

/* Domain parameters of a named finite-field group ("ffdhe2048"). */
EVP_PKEY *hsmtls__ffdhe(OSSL_LIB_CTX *lc, const char *name)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(lc, "DH", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *pkey = NULL;
    if (pc && EVP_PKEY_fromdata_init(pc) > 0)
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_KEY_PARAMETERS, params);
    EVP_PKEY_CTX_free(pc);
    return pkey;
}

/* Keeps exactly one of the two: a group name, or parameters (with their group's name
 * when OpenSSL recognises them as a named group). */
static void set_dh(hsmtls_config *cfg, char *name, EVP_PKEY *params)
{
    free(cfg->dh.group);
    EVP_PKEY_free(cfg->dh.params);
    cfg->dh.group = name;
    cfg->dh.params = params;
    hsmtls__config_changed(cfg);
}

int hsmtls_config_set_dh_group(hsmtls_config *cfg, const char *name)
{
    if (!name || strncmp(name, "ffdhe", 5) != 0)
        return hsmtls__err_set(&cfg->err, "DH group \"%s\": an RFC 7919 group is needed (ffdhe2048 ... ffdhe8192)",
                            name ? hsmtls__short(name).s : "(null)");
    OSSL_LIB_CTX *lc = hsmtls__libctx(&cfg->err);
    EVP_PKEY *p = lc ? hsmtls__ffdhe(lc, name) : NULL;
    if (!p)
        return hsmtls__err_ssl(&cfg->err, "DH group \"%s\" is not known", hsmtls__short(name).s);
    EVP_PKEY_free(p);
    char *copy = strdup(name);
    if (!copy)
        return hsmtls__err_set(&cfg->err, "out of memory");
    set_dh(cfg, copy, NULL);
    return HSMTLS_OK;
}

const char *hsmtls_config_dh_group(const hsmtls_config *cfg)
{
    if (cfg->dh.params)
        return cfg->dh.group; /* NULL unless the parameters are a named group's */
    return cfg->dh.group ? cfg->dh.group : "ffdhe2048";
}

int hsmtls_config_dh_bits(const hsmtls_config *cfg)
{
    if (cfg->dh.params)
        return EVP_PKEY_get_bits(cfg->dh.params);
    const char *name = hsmtls_config_dh_group(cfg);
    return atoi(name + strlen("ffdhe"));
}

/* Reads DH parameters ("DH PARAMETERS" or "X9.42 DH PARAMETERS" PEM) and checks them:
 * 2048 bits at least, then the way a server context will. */
static int set_params(hsmtls_config *cfg, BIO *b, const char *what)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(&cfg->err);
    if (!lc)
        return HSMTLS_ERROR;
    ERR_clear_error();
    EVP_PKEY *p = PEM_read_bio_Parameters_ex(b, NULL, lc, NULL);
    if (!p)
        return hsmtls__err_ssl(&cfg->err, "DH parameters %s: no PEM DH PARAMETERS found", what);
    if (!EVP_PKEY_is_a(p, "DH") && !EVP_PKEY_is_a(p, "DHX")) {
        hsmtls__err_set(&cfg->err, "DH parameters %s: these are %s parameters, not DH", what, EVP_PKEY_get0_type_name(p));
        EVP_PKEY_free(p);
        return HSMTLS_ERROR;
    }
    int bits = EVP_PKEY_get_bits(p);
    /* security level 1 (upstream OpenSSL 3.0's default; Debian builds with 2) takes
     * 1024-bit primes, which Logjam-era precomputation puts in reach: our own floor,
     * whatever OpenSSL was built with, at the RFC 7919 groups' 2048 */
    if (bits < 2048) {
        hsmtls__err_set(&cfg->err, "DH parameters %s: a %d-bit prime is too small (2048 bits at least)", what, bits);
        EVP_PKEY_free(p);
        return HSMTLS_ERROR;
    }
    SSL_CTX *scratch = SSL_CTX_new_ex(lc, NULL, TLS_server_method());
    int ok = 0;
    if (scratch && EVP_PKEY_up_ref(p) && !(ok = SSL_CTX_set0_tmp_dh_pkey(scratch, p)))
        EVP_PKEY_free(p); /* the reference the scratch context did not take */
    SSL_CTX_free(scratch);
    if (!ok) {
        EVP_PKEY_free(p);
        return hsmtls__err_ssl(&cfg->err, "DH parameters %s (%d bits) rejected", what, bits);
    }
    char group[64];
    size_t n = 0;
    char *name = NULL;
    if (EVP_PKEY_get_group_name(p, group, sizeof group, &n) == 1 && n > 0 && !(name = strdup(group))) {
        EVP_PKEY_free(p);
        return hsmtls__err_set(&cfg->err, "out of memory");
    }
    ERR_clear_error();
    set_dh(cfg, name, p);
    return HSMTLS_OK;
}

int hsmtls_config_set_dh_params(hsmtls_config *cfg, const char *path)
{
    if (!path)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_dh_params: no file");
    ERR_clear_error();
    BIO *b = BIO_new_file(path, "r");
    if (!b)
        return hsmtls__err_ssl(&cfg->err, "DH parameters file %s", hsmtls__short(path).s);
    char what[sizeof(struct hsmtls_short) + 8];
    snprintf(what, sizeof what, "file %s", hsmtls__short(path).s);
    int rc = set_params(cfg, b, what);
    BIO_free(b);
    return rc;
}

int hsmtls_config_set_dh_params_mem(hsmtls_config *cfg, const void *data, size_t len)
{
    if (!data || !len || len > INT_MAX)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_dh_params_mem: no data");
    BIO *b = BIO_new_mem_buf(data, (int)len);
    if (!b)
        return hsmtls__err_ssl(&cfg->err, "out of memory");
    int rc = set_params(cfg, b, "in memory");
    BIO_free(b);
    return rc;
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* ffdhe2048 */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    if (hsmtls__dup_str(&dst->dh.group, src->dh.group) != 0)
        return -1;
    /* without its reference the copy would quietly serve ffdhe2048 instead */
    if (src->dh.params) {
        if (!EVP_PKEY_up_ref(src->dh.params))
            return -1;
        dst->dh.params = src->dh.params;
    }
    return 0;
}

static void release(hsmtls_config *cfg)
{
    free(cfg->dh.group);
    EVP_PKEY_free(cfg->dh.params);
}

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_dh *x = &a->dh, *y = &b->dh;
    return hsmtls__str_eq(x->group, y->group) &&
           (x->params == y->params || (x->params && y->params && EVP_PKEY_parameters_eq(x->params, y->params) == 1));
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    if (cfg->role != HSMTLS_SERVER)
        return HSMTLS_OK;
    const struct hsmtls_cfg_dh *d = &cfg->dh;
    OSSL_LIB_CTX *lc = hsmtls__libctx(e);
    if (!lc)
        return HSMTLS_ERROR;
    const char *group = d->params ? "(custom parameters)" : d->group ? d->group : "ffdhe2048";
    EVP_PKEY *dh = d->params ? (EVP_PKEY_up_ref(d->params) ? d->params : NULL) : hsmtls__ffdhe(lc, group);
    if (!dh || !SSL_CTX_set0_tmp_dh_pkey(ctx, dh)) {
        EVP_PKEY_free(dh);
        return hsmtls__err_ssl(e, "DH group %s rejected", group);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_dh = { "DH parameters", init, copy, release, equal, apply };
