/* The config's certificate, private key and CA certificates: loading them through the
 * one loader, and the check that a key and its certificate belong together. */
#include "lib_internal.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* ---- certificate and key ---- */

/* Whether key is the private half of the chain's leaf; fills err when not. */
static int pair_matches(hsmtls_config *cfg, STACK_OF(X509) *chain, EVP_PKEY *key,
                        const char *cert_ref, const char *key_ref)
{
    if (!chain || !key)
        return 1;
    X509 *leaf = sk_X509_value(chain, 0);
    ERR_clear_error();
    if (X509_check_private_key(leaf, key) == 1)
        return 1;
    char *subj = hsmtls__name_line(X509_get_subject_name(leaf));
    hsmtls__fail_ssl(cfg->err, "the private key %s does not match the certificate %s (%s)",
                     key_ref ? key_ref : "(memory)", cert_ref ? cert_ref : "(memory)",
                     subj ? subj : "?");
    free(subj);
    return 0;
}

static enum hsmtls_location location_of(const char *ref)
{
    if (!ref)
        return HSMTLS_LOC_MEMORY;
    return hsmtls__is_token_ref(ref) ? HSMTLS_LOC_TOKEN : HSMTLS_LOC_FILE;
}

static int install(hsmtls_config *cfg, STACK_OF(X509) *chain, const char *cert_ref,
                   EVP_PKEY *key, const char *key_ref)
{
    char *cref = chain ? hsmtls__redact(cert_ref) : NULL;
    char *kref = key ? hsmtls__redact(key_ref) : NULL;
    char *subj = chain ? hsmtls__name_line(X509_get_subject_name(sk_X509_value(chain, 0))) : NULL;
    if (chain) {
        sk_X509_pop_free(cfg->chain, X509_free);
        cfg->chain = chain;
        free(cfg->cert_ref);
        cfg->cert_ref = cref;
        free(cfg->cert_subject);
        cfg->cert_subject = subj;
        cfg->cert_loc = location_of(cert_ref);
    }
    if (key) {
        EVP_PKEY_free(cfg->key);
        cfg->key = key;
        free(cfg->key_ref);
        cfg->key_ref = kref;
        cfg->key_loc = location_of(key_ref);
    }
    hsmtls__config_changed(cfg);
    cfg->err[0] = '\0';
    return HSMTLS_OK;
}

static int set_pair(hsmtls_config *cfg, const char *cert_ref, const void *cmem, size_t clen,
                    int want_cert, const char *key_ref, const void *kmem, size_t klen, int want_key)
{
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    if (want_cert && !(chain = hsmtls__load_certs(cert_ref, cmem, clen, &cfg->pin, cfg->provider_path, cfg->err)))
        return HSMTLS_ERROR;
    if (want_key && !(key = hsmtls__load_key(key_ref, kmem, klen, &cfg->pin, cfg->provider_path, cfg->err))) {
        sk_X509_pop_free(chain, X509_free);
        return HSMTLS_ERROR;
    }
    char *shown_c = want_cert ? hsmtls__redact(cert_ref) : hsmtls__strdup(cfg->cert_ref);
    char *shown_k = want_key ? hsmtls__redact(key_ref) : hsmtls__strdup(cfg->key_ref);
    int ok = pair_matches(cfg, chain ? chain : cfg->chain, key ? key : cfg->key, shown_c, shown_k);
    free(shown_c);
    free(shown_k);
    if (!ok) {
        sk_X509_pop_free(chain, X509_free);
        EVP_PKEY_free(key);
        return HSMTLS_ERROR;
    }
    return install(cfg, chain, cert_ref, key, key_ref);
}

int hsmtls_config_set_cert(hsmtls_config *cfg, const char *ref)
{
    if (!ref)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_cert: no reference");
    return set_pair(cfg, ref, NULL, 0, 1, NULL, NULL, 0, 0);
}

int hsmtls_config_set_cert_mem(hsmtls_config *cfg, const void *data, size_t len)
{
    if (!data || !len)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_cert_mem: no data");
    return set_pair(cfg, NULL, data, len, 1, NULL, NULL, 0, 0);
}

int hsmtls_config_set_key(hsmtls_config *cfg, const char *ref)
{
    if (!ref)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_key: no reference");
    return set_pair(cfg, NULL, NULL, 0, 0, ref, NULL, 0, 1);
}

int hsmtls_config_set_key_mem(hsmtls_config *cfg, const void *data, size_t len)
{
    if (!data || !len)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_key_mem: no data");
    return set_pair(cfg, NULL, NULL, 0, 0, NULL, data, len, 1);
}

int hsmtls_config_set_cert_key(hsmtls_config *cfg, const char *cert_ref, const char *key_ref)
{
    if (!cert_ref || !key_ref)
        return hsmtls__fail(cfg->err, "hsmtls_config_set_cert_key: a certificate and a key are both needed");
    return set_pair(cfg, cert_ref, NULL, 0, 1, key_ref, NULL, 0, 1);
}

enum hsmtls_location hsmtls_config_key_location(const hsmtls_config *cfg) { return cfg->key ? cfg->key_loc : HSMTLS_LOC_NONE; }
enum hsmtls_location hsmtls_config_cert_location(const hsmtls_config *cfg) { return cfg->chain ? cfg->cert_loc : HSMTLS_LOC_NONE; }
const char *hsmtls_config_key_ref(const hsmtls_config *cfg) { return cfg->key_ref; }
const char *hsmtls_config_cert_ref(const hsmtls_config *cfg) { return cfg->cert_ref; }
const char *hsmtls_config_cert_subject(const hsmtls_config *cfg) { return cfg->cert_subject; }

/* ---- CA certificates ---- */

int hsmtls_config_add_ca(hsmtls_config *cfg, const char *ref)
{
    if (!ref)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_ca: no reference");
    STACK_OF(X509) *certs = hsmtls__load_certs(ref, NULL, 0, &cfg->pin, cfg->provider_path, cfg->err);
    if (!certs)
        return HSMTLS_ERROR;
    X509 *x;
    while ((x = sk_X509_shift(certs)) != NULL)
        if (!sk_X509_push(cfg->ca, x))
            X509_free(x);
    sk_X509_free(certs);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_add_ca_glob(hsmtls_config *cfg, const char *pattern)
{
    if (!pattern)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_ca_glob: no pattern");
    glob_t g;
    int r = glob(pattern, GLOB_ERR, NULL, &g);
    if (r != 0) {
        /* POSIX leaves what a failed glob keeps in g open (partial matches): free it */
        globfree(&g);
        if (r == GLOB_NOMATCH)
            return hsmtls__fail(cfg->err, "CA files %s: the pattern matches no file", pattern);
        return hsmtls__fail(cfg->err, "CA files %s: %s", pattern, r == GLOB_NOSPACE ? "out of memory" : "read error");
    }
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        /* all or nothing: a file that holds no certificate fails the whole call */
        STACK_OF(X509) *certs = hsmtls__load_certs(g.gl_pathv[i], NULL, 0, &cfg->pin, cfg->provider_path, cfg->err);
        if (!certs) {
            while (n-- > 0)
                X509_free(sk_X509_pop(cfg->ca));
            globfree(&g);
            return HSMTLS_ERROR;
        }
        X509 *x;
        while ((x = sk_X509_shift(certs)) != NULL) {
            if (sk_X509_push(cfg->ca, x))
                n++;
            else
                X509_free(x);
        }
        sk_X509_free(certs);
    }
    globfree(&g);
    hsmtls__config_changed(cfg);
    return n;
}

int hsmtls_config_add_ca_cert(hsmtls_config *cfg, const hsmtls_cert *cert)
{
    if (!cert)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_ca_cert: no certificate");
    X509 *x = hsmtls__cert_x509(cert);
    if (!X509_up_ref(x) || !sk_X509_push(cfg->ca, x)) {
        X509_free(x);
        return hsmtls__fail(cfg->err, "out of memory");
    }
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_add_ca_dir(hsmtls_config *cfg, const char *dir)
{
    if (!dir)
        return hsmtls__fail(cfg->err, "hsmtls_config_add_ca_dir: no directory");
    char **v = realloc(cfg->ca_dirs, (size_t)(cfg->n_ca_dirs + 1) * sizeof *v);
    if (!v)
        return hsmtls__fail(cfg->err, "out of memory");
    cfg->ca_dirs = v;
    if (!(v[cfg->n_ca_dirs] = strdup(dir)))
        return hsmtls__fail(cfg->err, "out of memory");
    cfg->n_ca_dirs++;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_use_default_ca(hsmtls_config *cfg, int use)
{
    cfg->ca_default = !!use;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_ca_count(const hsmtls_config *cfg) { return sk_X509_num(cfg->ca); }

int hsmtls_config_use_key(hsmtls_config *cfg, const hsmtls_key *key)
{
    if (!key)
        return hsmtls__fail(cfg->err, "hsmtls_config_use_key: no key");
    EVP_PKEY *pkey = hsmtls__key_pkey(key);
    const char *ref = hsmtls_key_ref(key);
    if (!pair_matches(cfg, cfg->chain, pkey, cfg->cert_ref, ref))
        return HSMTLS_ERROR;
    if (!EVP_PKEY_up_ref(pkey))
        return hsmtls__fail(cfg->err, "out of memory");
    install(cfg, NULL, NULL, pkey, ref);
    cfg->key_loc = hsmtls_key_location(key);
    return HSMTLS_OK;
}

int hsmtls_config_use_cert(hsmtls_config *cfg, const hsmtls_cert *cert)
{
    if (!cert)
        return hsmtls__fail(cfg->err, "hsmtls_config_use_cert: no certificate");
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *x = hsmtls__cert_x509(cert);
    if (!chain || !X509_up_ref(x) || !sk_X509_push(chain, x)) {
        sk_X509_free(chain);
        return hsmtls__fail(cfg->err, "out of memory");
    }
    if (!pair_matches(cfg, chain, cfg->key, NULL, cfg->key_ref)) {
        sk_X509_pop_free(chain, X509_free);
        return HSMTLS_ERROR;
    }
    install(cfg, chain, NULL, NULL, NULL);
    cfg->cert_loc = HSMTLS_LOC_MEMORY;
    return HSMTLS_OK;
}
