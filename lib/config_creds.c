/* The credentials group: our certificate chain and private key, loaded through the one
 * loader (files, memory, pkcs11: URIs), the check that they belong together, and what
 * the loader needs for them: the PIN/passphrase source and where the provider is. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* ---- PIN source and provider ---- */

int hsmtls_config_set_provider_path(hsmtls_config *cfg, const char *path)
{
    char *p = hsmtls__strdup(path);
    if (path && !p)
        return hsmtls__err_set(&cfg->err, "out of memory");
    free(cfg->creds.provider_path);
    cfg->creds.provider_path = p;
    return HSMTLS_OK;
}

const char *hsmtls_config_provider_path(const hsmtls_config *cfg)
{
    return cfg->creds.provider_path ? cfg->creds.provider_path : hsmtls__provider_default_path();
}

int hsmtls_config_set_pin_source(hsmtls_config *cfg, const char *path)
{
    char *p = hsmtls__strdup(path);
    if (path && !p)
        return hsmtls__err_set(&cfg->err, "out of memory");
    free(cfg->creds.pin_source);
    cfg->creds.pin_source = p;
    cfg->creds.pin.source = p;
    return HSMTLS_OK;
}

int hsmtls_config_set_pin_cb(hsmtls_config *cfg, hsmtls_pin_cb cb, void *arg)
{
    cfg->creds.pin.cb = cb;
    cfg->creds.pin.arg = arg;
    return HSMTLS_OK;
}

/* ---- certificate and key ---- */

/* Whether key is the private half of the chain's leaf; fills the config's error when not. */
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
    hsmtls__err_ssl(&cfg->err, "the private key %s does not match the certificate %s (%s)",
                    key_ref ? hsmtls__short(key_ref).s : "(memory)",
                    cert_ref ? hsmtls__short(cert_ref).s : "(memory)", subj ? subj : "?");
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
    struct hsmtls_cfg_creds *c = &cfg->creds;
    char *cref = chain ? hsmtls__redact(cert_ref) : NULL;
    char *kref = key ? hsmtls__redact(key_ref) : NULL;
    char *subj = chain ? hsmtls__name_line(X509_get_subject_name(sk_X509_value(chain, 0))) : NULL;
    if (chain) {
        sk_X509_pop_free(c->chain, X509_free);
        c->chain = chain;
        free(c->cert_ref);
        c->cert_ref = cref;
        free(c->cert_subject);
        c->cert_subject = subj;
        c->cert_loc = location_of(cert_ref);
    }
    if (key) {
        EVP_PKEY_free(c->key);
        c->key = key;
        free(c->key_ref);
        c->key_ref = kref;
        c->key_loc = location_of(key_ref);
    }
    hsmtls__config_changed(cfg);
    hsmtls__err_clear(&cfg->err);
    return HSMTLS_OK;
}

static int set_pair(hsmtls_config *cfg, const char *cert_ref, const void *cmem, size_t clen,
                    int want_cert, const char *key_ref, const void *kmem, size_t klen, int want_key)
{
    struct hsmtls_cfg_creds *c = &cfg->creds;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    if (want_cert && !(chain = hsmtls__load_certs(cert_ref, cmem, clen, &c->pin, c->provider_path, &cfg->err)))
        return HSMTLS_ERROR;
    if (want_key && !(key = hsmtls__load_key(key_ref, kmem, klen, &c->pin, c->provider_path, &cfg->err))) {
        sk_X509_pop_free(chain, X509_free);
        return HSMTLS_ERROR;
    }
    char *shown_c = want_cert ? hsmtls__redact(cert_ref) : hsmtls__strdup(c->cert_ref);
    char *shown_k = want_key ? hsmtls__redact(key_ref) : hsmtls__strdup(c->key_ref);
    int ok = pair_matches(cfg, chain ? chain : c->chain, key ? key : c->key, shown_c, shown_k);
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
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_cert: no reference");
    return set_pair(cfg, ref, NULL, 0, 1, NULL, NULL, 0, 0);
}

int hsmtls_config_set_cert_mem(hsmtls_config *cfg, const void *data, size_t len)
{
    if (!data || !len)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_cert_mem: no data");
    return set_pair(cfg, NULL, data, len, 1, NULL, NULL, 0, 0);
}

int hsmtls_config_set_key(hsmtls_config *cfg, const char *ref)
{
    if (!ref)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_key: no reference");
    return set_pair(cfg, NULL, NULL, 0, 0, ref, NULL, 0, 1);
}

int hsmtls_config_set_key_mem(hsmtls_config *cfg, const void *data, size_t len)
{
    if (!data || !len)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_key_mem: no data");
    return set_pair(cfg, NULL, NULL, 0, 0, NULL, data, len, 1);
}

int hsmtls_config_set_cert_key(hsmtls_config *cfg, const char *cert_ref, const char *key_ref)
{
    if (!cert_ref || !key_ref)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_cert_key: a certificate and a key are both needed");
    return set_pair(cfg, cert_ref, NULL, 0, 1, key_ref, NULL, 0, 1);
}

int hsmtls_config_use_key(hsmtls_config *cfg, const hsmtls_key *key)
{
    if (!key)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_use_key: no key");
    EVP_PKEY *pkey = hsmtls__key_pkey(key);
    const char *ref = hsmtls_key_ref(key);
    if (!pair_matches(cfg, cfg->creds.chain, pkey, cfg->creds.cert_ref, ref))
        return HSMTLS_ERROR;
    if (!EVP_PKEY_up_ref(pkey))
        return hsmtls__err_set(&cfg->err, "out of memory");
    install(cfg, NULL, NULL, pkey, ref);
    cfg->creds.key_loc = hsmtls_key_location(key);
    return HSMTLS_OK;
}

int hsmtls_config_use_cert(hsmtls_config *cfg, const hsmtls_cert *cert)
{
    if (!cert)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_use_cert: no certificate");
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *x = hsmtls__cert_x509(cert);
    if (!chain || !X509_up_ref(x) || !sk_X509_push(chain, x)) {
        sk_X509_free(chain);
        return hsmtls__err_set(&cfg->err, "out of memory");
    }
    if (!pair_matches(cfg, chain, cfg->creds.key, NULL, cfg->creds.key_ref)) {
        sk_X509_pop_free(chain, X509_free);
        return HSMTLS_ERROR;
    }
    install(cfg, chain, NULL, NULL, NULL);
    cfg->creds.cert_loc = HSMTLS_LOC_MEMORY;
    return HSMTLS_OK;
}

enum hsmtls_location hsmtls_config_key_location(const hsmtls_config *cfg)
{
    return cfg->creds.key ? cfg->creds.key_loc : HSMTLS_LOC_NONE;
}

enum hsmtls_location hsmtls_config_cert_location(const hsmtls_config *cfg)
{
    return cfg->creds.chain ? cfg->creds.cert_loc : HSMTLS_LOC_NONE;
}

const char *hsmtls_config_key_ref(const hsmtls_config *cfg) { return cfg->creds.key_ref; }
const char *hsmtls_config_cert_ref(const hsmtls_config *cfg) { return cfg->creds.cert_ref; }
const char *hsmtls_config_cert_subject(const hsmtls_config *cfg) { return cfg->creds.cert_subject; }

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* nothing loaded, no PIN source, the provider found the default way */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    struct hsmtls_cfg_creds *d = &dst->creds;
    const struct hsmtls_cfg_creds *s = &src->creds;
    d->pin = s->pin;
    d->pin.source = NULL;
    d->cert_loc = s->cert_loc;
    d->key_loc = s->key_loc;
    /* shared by reference: certificates and keys are not changed once loaded */
    if (s->chain && !(d->chain = X509_chain_up_ref(s->chain)))
        return -1;
    if (s->key) {
        if (!EVP_PKEY_up_ref(s->key))
            return -1;
        d->key = s->key;
    }
    if (hsmtls__dup_str(&d->cert_ref, s->cert_ref) || hsmtls__dup_str(&d->key_ref, s->key_ref) ||
        hsmtls__dup_str(&d->cert_subject, s->cert_subject) || hsmtls__dup_str(&d->provider_path, s->provider_path) ||
        hsmtls__dup_str(&d->pin_source, s->pin_source))
        return -1;
    d->pin.source = d->pin_source;
    return 0;
}

static void release(hsmtls_config *cfg)
{
    struct hsmtls_cfg_creds *c = &cfg->creds;
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    free(c->cert_ref);
    free(c->key_ref);
    free(c->cert_subject);
    free(c->provider_path);
    free(c->pin_source);
}

static int certs_eq(const STACK_OF(X509) *a, const STACK_OF(X509) *b)
{
    int n = a ? sk_X509_num(a) : 0;
    if (n != (b ? sk_X509_num(b) : 0))
        return 0;
    for (int i = 0; i < n; i++)
        if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0)
            return 0;
    return 1;
}

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_creds *x = &a->creds, *y = &b->creds;
    return certs_eq(x->chain, y->chain) && (x->key == y->key || (x->key && y->key && EVP_PKEY_eq(x->key, y->key) == 1)) &&
           x->cert_loc == y->cert_loc && x->key_loc == y->key_loc && hsmtls__str_eq(x->cert_ref, y->cert_ref) &&
           hsmtls__str_eq(x->key_ref, y->key_ref) && x->pin.cb == y->pin.cb && x->pin.arg == y->pin.arg &&
           hsmtls__str_eq(x->pin_source, y->pin_source) && hsmtls__str_eq(x->provider_path, y->provider_path);
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_creds *c = &cfg->creds;
    if (!c->chain && !c->key) {
        if (cfg->role == HSMTLS_SERVER && !cfg->cb.psk_server)
            return hsmtls__err_set(e, "the server config has no certificate and key");
        return HSMTLS_OK;
    }
    if (!c->chain)
        return hsmtls__err_set(e, "the config has a private key but no certificate");
    if (!c->key)
        return hsmtls__err_set(e, "the config has a certificate but no private key");
    STACK_OF(X509) *rest = sk_X509_dup(c->chain);
    if (!rest)
        return hsmtls__err_set(e, "out of memory");
    X509 *leaf = sk_X509_shift(rest);
    int ok = SSL_CTX_use_cert_and_key(ctx, leaf, c->key, rest, 1);
    sk_X509_free(rest);
    if (!ok)
        return hsmtls__err_ssl(e, "certificate %s with key %s rejected",
                               c->cert_ref ? hsmtls__short(c->cert_ref).s : "(memory)",
                               c->key_ref ? hsmtls__short(c->key_ref).s : "(memory)");
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_creds = { "credentials", init, copy, release, equal, apply };
