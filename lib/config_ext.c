/* The extensions group: ALPN (RFC 7301) and OCSP stapling. A server's ALPN list and
 * OCSP response are copied into the SSL_CTX (ex_data), not pointed at in the config,
 * since the config may change while the context still serves connections. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- ALPN ---- */

int hsmtls_config_set_alpn(hsmtls_config *cfg, const char *list)
{
    unsigned char *wire = NULL;
    size_t n = 0;
    char *copy = NULL;
    if (list && *list) {
        /* wire format: each name as one length byte and its bytes */
        size_t len = strlen(list);
        if (!(wire = malloc(len + 1)) || !(copy = strdup(list))) {
            free(wire);
            return hsmtls__err_set(&cfg->err, "out of memory");
        }
        const char *p = list;
        while (1) {
            size_t l = strcspn(p, ",");
            if (l == 0 || l > 255) {
                free(wire);
                free(copy);
                return hsmtls__err_set(&cfg->err, "ALPN list \"%s\": each protocol needs 1 to 255 bytes",
                                       hsmtls__short(list).s);
            }
            wire[n++] = (unsigned char)l;
            memcpy(wire + n, p, l);
            n += l;
            p += l;
            if (!*p)
                break;
            p++;
        }
    }
    struct hsmtls_cfg_ext *x = &cfg->ext;
    free(x->alpn_wire);
    free(x->alpn);
    x->alpn_wire = wire;
    x->alpn_wire_len = n;
    x->alpn = copy;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

const char *hsmtls_config_alpn(const hsmtls_config *cfg) { return cfg->ext.alpn; }

/* ---- OCSP ---- */

int hsmtls_config_set_ocsp_response(hsmtls_config *cfg, const void *der, size_t len)
{
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_ocsp_response: only for servers");
    unsigned char *copy = NULL;
    if (der && len) {
        if (!(copy = malloc(len)))
            return hsmtls__err_set(&cfg->err, "out of memory");
        memcpy(copy, der, len);
    }
    free(cfg->ext.ocsp);
    cfg->ext.ocsp = copy;
    cfg->ext.ocsp_len = copy ? len : 0;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_ocsp_request(hsmtls_config *cfg, int on)
{
    if (cfg->role != HSMTLS_CLIENT)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_ocsp_request: only for clients");
    cfg->ext.ocsp_request = !!on;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_ocsp_request(const hsmtls_config *cfg) { return cfg->ext.ocsp_request; }

/* ---- bytes hung on the SSL_CTX ---- */

struct bytes {
    size_t len;
    unsigned char data[];
};

static int alpn_index = -1, ocsp_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void free_bytes(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void make_indexes(void)
{
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_bytes);
    ocsp_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_bytes);
}

static int attach(SSL_CTX *ctx, int idx, const unsigned char *data, size_t len, struct hsmtls_err *e)
{
    struct bytes *b = idx >= 0 ? malloc(sizeof *b + len) : NULL;
    if (!b)
        return hsmtls__err_set(e, "out of memory");
    b->len = len;
    memcpy(b->data, data, len);
    SSL_CTX_set_ex_data(ctx, idx, b);
    return HSMTLS_OK;
}

/* Server preference: the first of our protocols that the client offers. No overlap is
 * not fatal (RFC 7301 allows going on without ALPN), the client sees no result. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct bytes *a = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    if (!a)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < a->len; i += 1 + (size_t)a->data[i]) {
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (a->data[i] == in[j] && j + 1u + in[j] <= inlen &&
                memcmp(a->data + i + 1, in + j + 1, in[j]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* The status callback hands libssl a fresh copy of the response per connection (libssl
 * frees it). */
static int ocsp_status(SSL *ssl, void *arg)
{
    if (SSL_is_server(ssl)) {
        const struct bytes *r = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ocsp_index);
        if (!r)
            return SSL_TLSEXT_ERR_NOACK;
        unsigned char *copy = OPENSSL_malloc(r->len);
        if (!copy)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        memcpy(copy, r->data, r->len);
        SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)r->len);
        return SSL_TLSEXT_ERR_OK;
    }
    return 1; /* client: keep the response for the application, which judges it */
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* no ALPN, no OCSP */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    const struct hsmtls_cfg_ext *s = &src->ext;
    struct hsmtls_cfg_ext *d = &dst->ext;
    d->ocsp_request = s->ocsp_request;
    if (s->alpn_wire) {
        if (!(d->alpn_wire = malloc(s->alpn_wire_len)))
            return -1;
        memcpy(d->alpn_wire, s->alpn_wire, s->alpn_wire_len);
        d->alpn_wire_len = s->alpn_wire_len;
    }
    if (s->ocsp) {
        if (!(d->ocsp = malloc(s->ocsp_len)))
            return -1;
        memcpy(d->ocsp, s->ocsp, s->ocsp_len);
        d->ocsp_len = s->ocsp_len;
    }
    return hsmtls__dup_str(&d->alpn, s->alpn);
}

static void release(hsmtls_config *cfg)
{
    free(cfg->ext.alpn_wire);
    free(cfg->ext.alpn);
    free(cfg->ext.ocsp);
}

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_ext *x = &a->ext, *y = &b->ext;
    return hsmtls__str_eq(x->alpn, y->alpn) && x->ocsp_len == y->ocsp_len &&
           (!x->ocsp_len || memcmp(x->ocsp, y->ocsp, x->ocsp_len) == 0) && x->ocsp_request == y->ocsp_request;
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_ext *x = &cfg->ext;
    if (cfg->role == HSMTLS_CLIENT) {
        if (x->alpn_wire && SSL_CTX_set_alpn_protos(ctx, x->alpn_wire, (unsigned int)x->alpn_wire_len) != 0)
            return hsmtls__err_ssl(e, "ALPN list rejected");
        if (x->ocsp_request) {
            SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
            SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status);
        }
        return HSMTLS_OK;
    }
    pthread_once(&index_once, make_indexes);
    if (x->alpn_wire) {
        if (attach(ctx, alpn_index, x->alpn_wire, x->alpn_wire_len, e) != HSMTLS_OK)
            return HSMTLS_ERROR;
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    }
    if (x->ocsp) {
        if (attach(ctx, ocsp_index, x->ocsp, x->ocsp_len, e) != HSMTLS_OK)
            return HSMTLS_ERROR;
        SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_ext = { "ALPN and OCSP", init, copy, release, equal, apply };
