/* hsmtls_config: making, copying, comparing and freeing a config, group by group.
 *
 * The values live in groups by concern (lib_internal.h), each with its setters and its
 * init/copy/free/equal/apply in a file of its own (config_protocol.c, config_creds.c,
 * ...). This file only walks the table of groups; turning the values into an SSL_CTX is
 * config_build.c's. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

/* In the order they are applied to an SSL_CTX: the protocol range and security level
 * first (they decide which keys and DH parameters are accepted), the verify mode before
 * what adjusts it, the lists and backend options last (they may override anything). */
const struct hsmtls_cfg_group *const hsmtls__cfg_groups[] = {
    &hsmtls__cfg_protocol, &hsmtls__cfg_creds, &hsmtls__cfg_trust, &hsmtls__cfg_verify,
    &hsmtls__cfg_dh, &hsmtls__cfg_session, &hsmtls__cfg_callbacks, &hsmtls__cfg_ext,
    &hsmtls__cfg_dtls, &hsmtls__cfg_lists,
};
const int hsmtls__cfg_ngroups = (int)(sizeof hsmtls__cfg_groups / sizeof hsmtls__cfg_groups[0]);

static void free_groups(hsmtls_config *cfg)
{
    for (int i = 0; i < hsmtls__cfg_ngroups; i++)
        hsmtls__cfg_groups[i]->free(cfg);
}

hsmtls_config *hsmtls_config_new(enum hsmtls_role role)
{
    if (role != HSMTLS_CLIENT && role != HSMTLS_SERVER) {
        hsmtls__err_set(NULL, "hsmtls_config_new: role must be HSMTLS_CLIENT or HSMTLS_SERVER");
        return NULL;
    }
    if (!hsmtls__libctx(NULL))
        return NULL;
    hsmtls_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        hsmtls__err_set(NULL, "out of memory");
        return NULL;
    }
    cfg->role = role;
    for (int i = 0; i < hsmtls__cfg_ngroups; i++) {
        if (hsmtls__cfg_groups[i]->init(cfg) != 0) {
            free_groups(cfg);
            free(cfg);
            hsmtls__err_set(NULL, "out of memory");
            return NULL;
        }
    }
    atomic_init(&cfg->refs, 1);
    pthread_mutex_init(&cfg->lock, NULL);
    return cfg;
}

int hsmtls_config_up_ref(hsmtls_config *cfg)
{
    if (!cfg)
        return HSMTLS_ERROR;
    atomic_fetch_add(&cfg->refs, 1);
    return HSMTLS_OK;
}

void hsmtls_config_free(hsmtls_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    SSL_CTX_free(cfg->built);
    free_groups(cfg);
    hsmtls__err_free(&cfg->err);
    pthread_mutex_destroy(&cfg->lock);
    free(cfg);
}

hsmtls_config *hsmtls_config_copy(const hsmtls_config *src)
{
    if (!src)
        return NULL;
    hsmtls_config *c = hsmtls_config_new(src->role);
    if (!c)
        return NULL;
    for (int i = 0; i < hsmtls__cfg_ngroups; i++) {
        if (hsmtls__cfg_groups[i]->copy(c, src) != 0) {
            hsmtls_config_free(c);
            hsmtls__err_set(NULL, "hsmtls_config_copy: out of memory (copying the %s values)",
                            hsmtls__cfg_groups[i]->name);
            return NULL;
        }
    }
    return c;
}

int hsmtls_config_equal(const hsmtls_config *a, const hsmtls_config *b)
{
    if (a == b)
        return 1;
    if (!a || !b || a->role != b->role)
        return 0;
    for (int i = 0; i < hsmtls__cfg_ngroups; i++)
        if (!hsmtls__cfg_groups[i]->equal(a, b))
            return 0;
    return 1;
}

int hsmtls_config_is_default(const hsmtls_config *cfg)
{
    hsmtls_config *fresh = cfg ? hsmtls_config_new(cfg->role) : NULL;
    int eq = fresh && hsmtls_config_equal(cfg, fresh);
    hsmtls_config_free(fresh);
    return eq;
}

enum hsmtls_role hsmtls_config_role(const hsmtls_config *cfg) { return cfg->role; }
const char *hsmtls_config_error(const hsmtls_config *cfg) { return cfg ? hsmtls__err_message(&cfg->err) : hsmtls_error_message(); }

const char *hsmtls_location_name(enum hsmtls_location loc)
{
    switch (loc) {
    case HSMTLS_LOC_FILE: return "file";
    case HSMTLS_LOC_MEMORY: return "memory";
    case HSMTLS_LOC_TOKEN: return "token";
    default: return "none";
    }
}

/* ---- helpers for the groups ---- */

int hsmtls__str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int hsmtls__dup_str(char **dst, const char *src)
{
    *dst = hsmtls__strdup(src);
    return src && !*dst ? -1 : 0;
}

void hsmtls__free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int hsmtls__push_str(char ***v, int *n, char *s)
{
    char **nv = s ? realloc(*v, (size_t)(*n + 1) * sizeof *nv) : NULL;
    if (!nv) {
        free(s);
        return -1;
    }
    *v = nv;
    nv[(*n)++] = s;
    return 0;
}

int hsmtls__dup_strv(char ***dst, int *n, char *const *src, int nsrc)
{
    for (int i = 0; i < nsrc; i++)
        if (hsmtls__push_str(dst, n, strdup(src[i])) != 0)
            return -1;
    return 0;
}
