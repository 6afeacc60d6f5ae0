/* The lists group: TLS 1.2 ciphers, TLS 1.3 suites, key exchange groups and OpenSSL
 * SSL_CONF options. Each is checked when set, against a scratch SSL_CTX, so a typo fails
 * at the setter with OpenSSL's reason instead of at the first connection. Also what the
 * library supports, as lists. */
#include "lib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e);

/* A scratch context carrying every list value. */
static int check(hsmtls_config *cfg)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(&cfg->err);
    if (!lc)
        return HSMTLS_ERROR;
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, cfg->role == HSMTLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return hsmtls__err_ssl(&cfg->err, "cannot make an SSL_CTX");
    int rc = apply(cfg, ctx, &cfg->err);
    SSL_CTX_free(ctx);
    return rc;
}

/* Replaces *field by value after checking the config with it. */
static int set_list(hsmtls_config *cfg, char **field, const char *value)
{
    char *copy = hsmtls__strdup(value);
    if (value && !copy)
        return hsmtls__err_set(&cfg->err, "out of memory");
    char *old = *field;
    *field = copy;
    if (check(cfg) != HSMTLS_OK) {
        *field = old;
        free(copy);
        return HSMTLS_ERROR;
    }
    free(old);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_ciphers(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->lists.ciphers, list); }
const char *hsmtls_config_ciphers(const hsmtls_config *cfg) { return cfg->lists.ciphers; }
int hsmtls_config_set_ciphersuites(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->lists.ciphersuites, list); }
const char *hsmtls_config_ciphersuites(const hsmtls_config *cfg) { return cfg->lists.ciphersuites; }
int hsmtls_config_set_groups(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->lists.groups, list); }
const char *hsmtls_config_groups(const hsmtls_config *cfg) { return cfg->lists.groups; }

static void free_opt(struct backend_opt *o)
{
    free(o->name);
    free(o->value);
}

/* Appends copies of name and value; -1 when out of memory (nothing added). */
static int push_opt(struct hsmtls_cfg_lists *l, const char *name, const char *value)
{
    struct backend_opt *o = realloc(l->opts, (size_t)(l->n_opts + 1) * sizeof *o);
    if (!o)
        return -1;
    l->opts = o;
    o[l->n_opts] = (struct backend_opt){ strdup(name), strdup(value) };
    if (!o[l->n_opts].name || !o[l->n_opts].value) {
        free_opt(&o[l->n_opts]);
        return -1;
    }
    l->n_opts++;
    return 0;
}

int hsmtls_config_set_backend_option(hsmtls_config *cfg, const char *name, const char *value)
{
    if (!name || !value)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_backend_option: a name and a value are needed");
    if (push_opt(&cfg->lists, name, value) != 0)
        return hsmtls__err_set(&cfg->err, "out of memory");
    if (check(cfg) != HSMTLS_OK) {
        free_opt(&cfg->lists.opts[--cfg->lists.n_opts]);
        return HSMTLS_ERROR;
    }
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_backend_option_count(const hsmtls_config *cfg) { return cfg->lists.n_opts; }

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* OpenSSL's defaults */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    struct hsmtls_cfg_lists *d = &dst->lists;
    const struct hsmtls_cfg_lists *s = &src->lists;
    if (hsmtls__dup_str(&d->ciphers, s->ciphers) || hsmtls__dup_str(&d->ciphersuites, s->ciphersuites) ||
        hsmtls__dup_str(&d->groups, s->groups))
        return -1;
    /* not through the setter: the values were checked when first set */
    for (int i = 0; i < s->n_opts; i++)
        if (push_opt(d, s->opts[i].name, s->opts[i].value) != 0)
            return -1;
    return 0;
}

static void release(hsmtls_config *cfg)
{
    struct hsmtls_cfg_lists *l = &cfg->lists;
    free(l->ciphers);
    free(l->ciphersuites);
    free(l->groups);
    for (int i = 0; i < l->n_opts; i++)
        free_opt(&l->opts[i]);
    free(l->opts);
}

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_lists *x = &a->lists, *y = &b->lists;
    int eq = hsmtls__str_eq(x->ciphers, y->ciphers) && hsmtls__str_eq(x->ciphersuites, y->ciphersuites) &&
             hsmtls__str_eq(x->groups, y->groups) && x->n_opts == y->n_opts;
    for (int i = 0; eq && i < x->n_opts; i++)
        eq = hsmtls__str_eq(x->opts[i].name, y->opts[i].name) && hsmtls__str_eq(x->opts[i].value, y->opts[i].value);
    return eq;
}

/* Also after DTLS switches a context's method, which resets its cipher list (dtls_ctx.c). */
static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_lists *l = &cfg->lists;
    ERR_clear_error();
    if (l->ciphers && !SSL_CTX_set_cipher_list(ctx, l->ciphers))
        return hsmtls__err_ssl(e, "cipher list \"%s\" rejected", hsmtls__short(l->ciphers).s);
    if (l->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, l->ciphersuites))
        return hsmtls__err_ssl(e, "TLS 1.3 cipher suites \"%s\" rejected", hsmtls__short(l->ciphersuites).s);
    if (l->groups && !SSL_CTX_set1_groups_list(ctx, l->groups))
        return hsmtls__err_ssl(e, "groups \"%s\" rejected", hsmtls__short(l->groups).s);
    if (!l->n_opts)
        return HSMTLS_OK;
    SSL_CONF_CTX *cc = SSL_CONF_CTX_new();
    if (!cc)
        return hsmtls__err_ssl(e, "out of memory");
    SSL_CONF_CTX_set_flags(cc, SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_CERTIFICATE |
                           (cfg->role == HSMTLS_SERVER ? SSL_CONF_FLAG_SERVER : SSL_CONF_FLAG_CLIENT));
    SSL_CONF_CTX_set_ssl_ctx(cc, ctx);
    for (int i = 0; i < l->n_opts; i++) {
        int r = SSL_CONF_cmd(cc, l->opts[i].name, l->opts[i].value);
        if (r <= 0) {
            SSL_CONF_CTX_free(cc);
            return hsmtls__err_ssl(e, "backend option %s = \"%s\" %s", hsmtls__short(l->opts[i].name).s,
                                   hsmtls__short(l->opts[i].value).s,
                                   r == -2 ? "is not an OpenSSL SSL_CONF command" : "rejected");
        }
    }
    int ok = SSL_CONF_CTX_finish(cc);
    SSL_CONF_CTX_free(cc);
    return ok ? HSMTLS_OK : hsmtls__err_ssl(e, "backend options rejected");
}

const struct hsmtls_cfg_group hsmtls__cfg_lists = { "lists", init, copy, release, equal, apply };

/* ---- what the library supports ---- */

static char *join_ciphers(const hsmtls_config *cfg, int tls13)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(NULL);
    SSL_CTX *ctx = lc ? SSL_CTX_new_ex(lc, NULL, TLS_method()) : NULL;
    if (!ctx)
        return NULL;
    if (cfg->proto.allow_legacy)
        SSL_CTX_set_security_level(ctx, 0);
    char *out = NULL;
    size_t used = 0;
    if (SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL") && SSL_CTX_set_ciphersuites(ctx,
            "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
            "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256")) {
        STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
        out = calloc(1, 1);
        for (int i = 0; out && i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            if ((strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0) != tls13)
                continue;
            const char *name = SSL_CIPHER_get_name(c);
            char *more = realloc(out, used + strlen(name) + 2);
            if (!more) {
                free(out);
                out = NULL;
                break;
            }
            out = more;
            used += (size_t)sprintf(out + used, "%s%s", used ? ":" : "", name);
        }
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!out)
        hsmtls__err_set(NULL, "out of memory");
    return out;
}

char *hsmtls_config_supported_ciphers(const hsmtls_config *cfg) { return join_ciphers(cfg, 0); }
char *hsmtls_config_supported_ciphersuites(const hsmtls_config *cfg) { return join_ciphers(cfg, 1); }

char *hsmtls_config_supported_groups(const hsmtls_config *cfg)
{
    (void)cfg;
    /* OpenSSL 3.0 cannot list its groups: the TLS groups it may know, each tried */
    static const char *const known[] = {
        "X25519", "X448", "P-256", "P-384", "P-521", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144",
        "ffdhe8192", "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1",
    };
    OSSL_LIB_CTX *lc = hsmtls__libctx(NULL);
    SSL_CTX *ctx = lc ? SSL_CTX_new_ex(lc, NULL, TLS_method()) : NULL;
    char *out = ctx ? calloc(1, 256) : NULL;
    size_t used = 0;
    for (size_t i = 0; out && i < sizeof known / sizeof known[0]; i++)
        if (SSL_CTX_set1_groups_list(ctx, known[i]))
            used += (size_t)snprintf(out + used, 256 - used, "%s%s", used ? ":" : "", known[i]);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (!out)
        hsmtls__err_set(NULL, "out of memory");
    return out;
}
