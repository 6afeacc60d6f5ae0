/* String-valued settings: ALPN, cipher lists, groups and OpenSSL SSL_CONF options.
 * Each is checked when set, against a scratch SSL_CTX, so a typo fails at the setter
 * with OpenSSL's reason instead of at the first connection. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* A scratch context carrying every list value, plus the one being tried. */
static int check_with(hsmtls_config *cfg, const hsmtls_config *trial)
{
    OSSL_LIB_CTX *lc = hsmtls__libctx(cfg->err);
    if (!lc)
        return HSMTLS_ERROR;
    SSL_CTX *ctx = SSL_CTX_new_ex(lc, NULL, cfg->role == HSMTLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return hsmtls__fail_ssl(cfg->err, "cannot make an SSL_CTX");
    int rc = hsmtls__config_apply_lists(trial, ctx, cfg->err);
    SSL_CTX_free(ctx);
    return rc;
}

/* Replaces *field by value after checking the config with it. */
static int set_list(hsmtls_config *cfg, char **field, const char *value)
{
    char *copy = hsmtls__strdup(value);
    if (value && !copy)
        return hsmtls__fail(cfg->err, "out of memory");
    char *old = *field;
    *field = copy;
    if (check_with(cfg, cfg) != HSMTLS_OK) {
        *field = old;
        free(copy);
        return HSMTLS_ERROR;
    }
    free(old);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_set_ciphers(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->ciphers, list); }
const char *hsmtls_config_ciphers(const hsmtls_config *cfg) { return cfg->ciphers; }
int hsmtls_config_set_ciphersuites(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->ciphersuites, list); }
const char *hsmtls_config_ciphersuites(const hsmtls_config *cfg) { return cfg->ciphersuites; }
int hsmtls_config_set_groups(hsmtls_config *cfg, const char *list) { return set_list(cfg, &cfg->groups, list); }
const char *hsmtls_config_groups(const hsmtls_config *cfg) { return cfg->groups; }

int hsmtls_config_set_backend_option(hsmtls_config *cfg, const char *name, const char *value)
{
    if (!name || !value)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_backend_option: a name and a value are needed");
    struct backend_opt *o = realloc(cfg->opts, (size_t)(cfg->n_opts + 1) * sizeof *o);
    if (!o)
        return hsmtls__fail(cfg->err, "out of memory");
    cfg->opts = o;
    o[cfg->n_opts].name = strdup(name);
    o[cfg->n_opts].value = strdup(value);
    cfg->n_opts++;
    if (!o[cfg->n_opts - 1].name || !o[cfg->n_opts - 1].value || check_with(cfg, cfg) != HSMTLS_OK) {
        cfg->n_opts--;
        int oom = !o[cfg->n_opts].name || !o[cfg->n_opts].value;
        free(o[cfg->n_opts].name);
        free(o[cfg->n_opts].value);
        return oom ? hsmtls__fail(cfg->err, "out of memory") : HSMTLS_ERROR;
    }
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_backend_option_count(const hsmtls_config *cfg) { return cfg->n_opts; }

int hsmtls__config_apply_lists(const hsmtls_config *cfg, SSL_CTX *ctx, char *err)
{
    ERR_clear_error();
    if (cfg->ciphers && !SSL_CTX_set_cipher_list(ctx, cfg->ciphers))
        return hsmtls__fail_ssl(err, "cipher list \"%s\" rejected", cfg->ciphers);
    if (cfg->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites))
        return hsmtls__fail_ssl(err, "TLS 1.3 cipher suites \"%s\" rejected", cfg->ciphersuites);
    if (cfg->groups && !SSL_CTX_set1_groups_list(ctx, cfg->groups))
        return hsmtls__fail_ssl(err, "groups \"%s\" rejected", cfg->groups);
    if (cfg->n_opts) {
        SSL_CONF_CTX *cc = SSL_CONF_CTX_new();
        if (!cc)
            return hsmtls__fail_ssl(err, "out of memory");
        SSL_CONF_CTX_set_flags(cc, SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_CERTIFICATE |
                               (cfg->role == HSMTLS_SERVER ? SSL_CONF_FLAG_SERVER : SSL_CONF_FLAG_CLIENT));
        SSL_CONF_CTX_set_ssl_ctx(cc, ctx);
        for (int i = 0; i < cfg->n_opts; i++) {
            int r = SSL_CONF_cmd(cc, cfg->opts[i].name, cfg->opts[i].value);
            if (r <= 0) {
                SSL_CONF_CTX_free(cc);
                return hsmtls__fail_ssl(err, "backend option %s = \"%s\" %s", cfg->opts[i].name,
                                        cfg->opts[i].value, r == -2 ? "is not an OpenSSL SSL_CONF command" : "rejected");
            }
        }
        int ok = SSL_CONF_CTX_finish(cc);
        SSL_CONF_CTX_free(cc);
        if (!ok)
            return hsmtls__fail_ssl(err, "backend options rejected");
    }
    return HSMTLS_OK;
}

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
            return hsmtls__fail(cfg->err, "out of memory");
        }
        const char *p = list;
        while (1) {
            size_t l = strcspn(p, ",");
            if (l == 0 || l > 255) {
                free(wire);
                free(copy);
                return hsmtls__fail(cfg->err, "ALPN list \"%s\": each protocol needs 1 to 255 bytes", list);
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
    free(cfg->alpn_wire);
    free(cfg->alpn);
    cfg->alpn_wire = wire;
    cfg->alpn_wire_len = n;
    cfg->alpn = copy;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

const char *hsmtls_config_alpn(const hsmtls_config *cfg) { return cfg->alpn; }
