/* The trust group: what the peer's chain is verified against (CA certificates from
 * files, URIs, directories or the system store; CRLs for the CRL-check verify flags)
 * and the CA names a server sends to clients in its certificate request. */
#include "lib_internal.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* ---- CA certificates ---- */

static STACK_OF(X509) *load(hsmtls_config *cfg, const char *ref)
{
    return hsmtls__load_certs(ref, NULL, 0, &cfg->creds.pin, cfg->creds.provider_path, &cfg->err);
}

int hsmtls_config_add_ca(hsmtls_config *cfg, const char *ref)
{
    if (!ref)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_ca: no reference");
    STACK_OF(X509) *certs = load(cfg, ref);
    if (!certs)
        return HSMTLS_ERROR;
    X509 *x;
    while ((x = sk_X509_shift(certs)) != NULL)
        if (!sk_X509_push(cfg->trust.ca, x))
            X509_free(x);
    sk_X509_free(certs);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_add_ca_glob(hsmtls_config *cfg, const char *pattern)
{
    if (!pattern)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_ca_glob: no pattern");
    glob_t g;
    int r = glob(pattern, GLOB_ERR, NULL, &g);
    if (r != 0) {
        /* POSIX leaves what a failed glob keeps in g open (partial matches): free it */
        globfree(&g);
        if (r == GLOB_NOMATCH)
            return hsmtls__err_set(&cfg->err, "CA files %s: the pattern matches no file", hsmtls__short(pattern).s);
        return hsmtls__err_set(&cfg->err, "CA files %s: %s", hsmtls__short(pattern).s,
                               r == GLOB_NOSPACE ? "out of memory" : "read error");
    }
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        /* all or nothing: a file that holds no certificate fails the whole call */
        STACK_OF(X509) *certs = load(cfg, g.gl_pathv[i]);
        if (!certs) {
            while (n-- > 0)
                X509_free(sk_X509_pop(cfg->trust.ca));
            globfree(&g);
            return HSMTLS_ERROR;
        }
        X509 *x;
        while ((x = sk_X509_shift(certs)) != NULL) {
            if (sk_X509_push(cfg->trust.ca, x))
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
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_ca_cert: no certificate");
    X509 *x = hsmtls__cert_x509(cert);
    if (!X509_up_ref(x) || !sk_X509_push(cfg->trust.ca, x)) {
        X509_free(x);
        return hsmtls__err_set(&cfg->err, "out of memory");
    }
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_add_ca_dir(hsmtls_config *cfg, const char *dir)
{
    if (!dir)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_ca_dir: no directory");
    if (hsmtls__push_str(&cfg->trust.ca_dirs, &cfg->trust.n_ca_dirs, strdup(dir)) != 0)
        return hsmtls__err_set(&cfg->err, "out of memory");
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_use_default_ca(hsmtls_config *cfg, int use)
{
    cfg->trust.ca_default = !!use;
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_ca_count(const hsmtls_config *cfg) { return sk_X509_num(cfg->trust.ca); }

/* ---- CRLs ---- */

int hsmtls_config_add_crl(hsmtls_config *cfg, const char *file)
{
    if (!file)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_crl: no file");
    ERR_clear_error();
    BIO *b = BIO_new_file(file, "rb");
    if (!b)
        return hsmtls__err_ssl(&cfg->err, "CRL file %s", hsmtls__short(file).s);
    STACK_OF(X509_CRL) *got = sk_X509_CRL_new_null();
    X509_CRL *crl;
    while (got && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)))
        if (!sk_X509_CRL_push(got, crl))
            X509_CRL_free(crl);
    if (got && sk_X509_CRL_num(got) == 0) {
        /* not PEM: one DER CRL */
        ERR_clear_error();
        BIO_reset(b);
        if ((crl = d2i_X509_CRL_bio(b, NULL)) && !sk_X509_CRL_push(got, crl))
            X509_CRL_free(crl);
    }
    BIO_free(b);
    if (!got || sk_X509_CRL_num(got) == 0) {
        sk_X509_CRL_free(got);
        return hsmtls__err_ssl(&cfg->err, "CRL file %s holds no CRL (PEM or DER)", hsmtls__short(file).s);
    }
    ERR_clear_error();
    if (!cfg->trust.crls && !(cfg->trust.crls = sk_X509_CRL_new_null())) {
        sk_X509_CRL_pop_free(got, X509_CRL_free);
        return hsmtls__err_set(&cfg->err, "out of memory");
    }
    while ((crl = sk_X509_CRL_shift(got)))
        if (!sk_X509_CRL_push(cfg->trust.crls, crl))
            X509_CRL_free(crl);
    sk_X509_CRL_free(got);
    hsmtls__config_changed(cfg);
    return HSMTLS_OK;
}

int hsmtls_config_crl_count(const hsmtls_config *cfg) { return cfg->trust.crls ? sk_X509_CRL_num(cfg->trust.crls) : 0; }

/* ---- the CA names a server sends ---- */

int hsmtls_config_add_client_ca(hsmtls_config *cfg, const char *ref)
{
    struct hsmtls_cfg_trust *t = &cfg->trust;
    if (cfg->role != HSMTLS_SERVER)
        return hsmtls__err_set(&cfg->err, "hsmtls_config_add_client_ca: only for servers");
    STACK_OF(X509) *certs = load(cfg, ref);
    if (!certs)
        return HSMTLS_ERROR;
    if (!t->client_ca && !(t->client_ca = sk_X509_NAME_new_null())) {
        sk_X509_pop_free(certs, X509_free);
        return hsmtls__err_set(&cfg->err, "out of memory");
    }
    int bad = 0;
    for (int i = 0; i < sk_X509_num(certs) && !bad; i++) {
        X509_NAME *n = X509_NAME_dup(X509_get_subject_name(sk_X509_value(certs, i)));
        bad = !n || !sk_X509_NAME_push(t->client_ca, n) ||
              hsmtls__push_str(&t->client_ca_names, &t->n_client_ca_names, hsmtls__name_line(n)) != 0;
        if (bad && n && sk_X509_NAME_num(t->client_ca) > t->n_client_ca_names)
            sk_X509_NAME_pop(t->client_ca);
        if (bad)
            X509_NAME_free(n);
    }
    sk_X509_pop_free(certs, X509_free);
    hsmtls__config_changed(cfg);
    return bad ? hsmtls__err_set(&cfg->err, "out of memory") : HSMTLS_OK;
}

int hsmtls_config_client_ca_count(const hsmtls_config *cfg) { return cfg->trust.n_client_ca_names; }

const char *hsmtls_config_client_ca_name(const hsmtls_config *cfg, int i)
{
    return i >= 0 && i < cfg->trust.n_client_ca_names ? cfg->trust.client_ca_names[i] : NULL;
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    cfg->trust.ca_default = -1;
    return (cfg->trust.ca = sk_X509_new_null()) ? 0 : -1;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    struct hsmtls_cfg_trust *d = &dst->trust;
    const struct hsmtls_cfg_trust *s = &src->trust;
    d->ca_default = s->ca_default;
    for (int i = 0; i < sk_X509_num(s->ca); i++) {
        X509 *x = sk_X509_value(s->ca, i);
        if (!X509_up_ref(x))
            return -1;
        if (!sk_X509_push(d->ca, x)) {
            X509_free(x);
            return -1;
        }
    }
    if (hsmtls__dup_strv(&d->ca_dirs, &d->n_ca_dirs, s->ca_dirs, s->n_ca_dirs) != 0)
        return -1;
    if (s->crls) {
        if (!(d->crls = sk_X509_CRL_new_null()))
            return -1;
        for (int i = 0; i < sk_X509_CRL_num(s->crls); i++) {
            X509_CRL *c = sk_X509_CRL_value(s->crls, i);
            if (!X509_CRL_up_ref(c))
                return -1;
            if (!sk_X509_CRL_push(d->crls, c)) {
                X509_CRL_free(c);
                return -1;
            }
        }
    }
    if (s->client_ca && !(d->client_ca = SSL_dup_CA_list(s->client_ca)))
        return -1;
    return hsmtls__dup_strv(&d->client_ca_names, &d->n_client_ca_names, s->client_ca_names, s->n_client_ca_names);
}

static void release(hsmtls_config *cfg)
{
    struct hsmtls_cfg_trust *t = &cfg->trust;
    sk_X509_pop_free(t->ca, X509_free);
    hsmtls__free_strv(t->ca_dirs, t->n_ca_dirs);
    sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
    sk_X509_NAME_pop_free(t->client_ca, X509_NAME_free);
    hsmtls__free_strv(t->client_ca_names, t->n_client_ca_names);
}

static int certs_eq(const STACK_OF(X509) *a, const STACK_OF(X509) *b)
{
    int n = sk_X509_num(a);
    if (n != sk_X509_num(b))
        return 0;
    for (int i = 0; i < n; i++)
        if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0)
            return 0;
    return 1;
}

static int crls_eq(const STACK_OF(X509_CRL) *a, const STACK_OF(X509_CRL) *b)
{
    int n = a ? sk_X509_CRL_num(a) : 0;
    if (n != (b ? sk_X509_CRL_num(b) : 0))
        return 0;
    for (int i = 0; i < n; i++)
        if (X509_CRL_match(sk_X509_CRL_value(a, i), sk_X509_CRL_value(b, i)) != 0)
            return 0;
    return 1;
}

static int strv_eq(char *const *a, int na, char *const *b, int nb)
{
    if (na != nb)
        return 0;
    for (int i = 0; i < na; i++)
        if (!hsmtls__str_eq(a[i], b[i]))
            return 0;
    return 1;
}

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    const struct hsmtls_cfg_trust *x = &a->trust, *y = &b->trust;
    return certs_eq(x->ca, y->ca) && x->ca_default == y->ca_default && strv_eq(x->ca_dirs, x->n_ca_dirs, y->ca_dirs, y->n_ca_dirs) &&
           crls_eq(x->crls, y->crls) &&
           strv_eq(x->client_ca_names, x->n_client_ca_names, y->client_ca_names, y->n_client_ca_names);
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    const struct hsmtls_cfg_trust *t = &cfg->trust;
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(t->ca); i++) {
        X509 *x = sk_X509_value(t->ca, i);
        if (!X509_STORE_add_cert(st, x))
            return hsmtls__err_ssl(e, "cannot add a CA certificate");
        /* Servers name their CAs to clients, so a client with several keys picks right. */
        if (cfg->role == HSMTLS_SERVER && !SSL_CTX_add_client_CA(ctx, x))
            return hsmtls__err_ssl(e, "cannot add a CA name");
    }
    for (int i = 0; i < t->n_ca_dirs; i++)
        if (!SSL_CTX_load_verify_dir(ctx, t->ca_dirs[i]))
            return hsmtls__err_ssl(e, "CA directory %s", hsmtls__short(t->ca_dirs[i]).s);
    int nothing_set = sk_X509_num(t->ca) == 0 && t->n_ca_dirs == 0;
    int use_default = t->ca_default == 1 || (t->ca_default == -1 && nothing_set && cfg->role == HSMTLS_CLIENT);
    if (use_default && !SSL_CTX_set_default_verify_paths(ctx))
        return hsmtls__err_ssl(e, "cannot use the system CA store");
    for (int i = 0; t->crls && i < sk_X509_CRL_num(t->crls); i++)
        if (!X509_STORE_add_crl(st, sk_X509_CRL_value(t->crls, i)))
            return hsmtls__err_ssl(e, "cannot add a CRL");
    if (cfg->role == HSMTLS_SERVER && t->client_ca) {
        /* an explicit list replaces the names of the trusted CAs */
        STACK_OF(X509_NAME) *names = SSL_dup_CA_list(t->client_ca);
        if (!names)
            return hsmtls__err_ssl(e, "out of memory");
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_trust = { "trust", init, copy, release, equal, apply };
