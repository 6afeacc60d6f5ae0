/* Finding objects, with a cache: the same lookup twice calls C_FindObjects once, a
 * miss always searches again (objects may be added later), and a stale handle is
 * found again by the object's class, label and id. */
#include "p11_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>

struct hsmtls_p11_query {
    char *key;
    hsmtls_p11_object **objects;
    size_t n;
    struct hsmtls_p11_query *next;
};

void hsmtls_p11_token_forget_queries(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->lock);
    hsmtls_p11_token_free_queries(t);
    pthread_mutex_unlock(&t->lock);
}

void hsmtls_p11_token_free_queries(hsmtls_p11_token *t)
{
    while (t->queries) {
        struct hsmtls_p11_query *q = t->queries;
        t->queries = q->next;
        free(q->key);
        free(q->objects);
        free(q);
    }
}

/* The search template: class, label and id, each only when given. */
struct search {
    CK_OBJECT_CLASS cls;
    const char *label;
    const unsigned char *id;
    size_t id_len;
};

static char *query_key(const struct search *q, int logged_in)
{
    size_t cap = 64 + (q->label ? strlen(q->label) : 0) + 2 * q->id_len;
    char *key = malloc(cap);
    if (!key)
        return NULL;
    int used = snprintf(key, cap, "%d|%lx|%zu:%s|", logged_in, (unsigned long)q->cls,
                        q->label ? strlen(q->label) : (size_t)-1, q->label ? q->label : "");
    for (size_t i = 0; i < q->id_len && used > 0; i++)
        used += snprintf(key + used, cap - (size_t)used, "%02x", q->id[i]);
    if (!q->id)
        snprintf(key + used, cap - (size_t)used, "-");
    return key;
}

/* C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal: three calls for up to 64
 * objects. `*handles` is malloc'd. */
static CK_RV find_handles(hsmtls_p11_token *t, CK_SESSION_HANDLE s, const struct search *q,
                          CK_OBJECT_HANDLE **handles, CK_ULONG *n)
{
    /* Token objects only: the session objects this process can see are its own (the
     * key cache's copies, derived secrets), never what a URI names. */
    CK_BBOOL on_token = CK_TRUE;
    CK_ATTRIBUTE tmpl[4] = { { CKA_TOKEN, &on_token, sizeof on_token } };
    CK_ULONG count = 1;
    CK_OBJECT_CLASS cls = q->cls;
    if (cls != HSMTLS_P11_ANY_CLASS)
        tmpl[count++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof cls };
    if (q->label)
        tmpl[count++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)q->label, strlen(q->label) };
    if (q->id)
        tmpl[count++] = (CK_ATTRIBUTE){ CKA_ID, (void *)q->id, q->id_len };
    *handles = NULL;
    *n = 0;
    CK_RV rv = P11_CALL(t->module, C_FindObjectsInit, s, tmpl, count);
    if (rv != CKR_OK)
        return rv;
    CK_ULONG cap = 0;
    for (;;) {
        if (*n == cap) {
            CK_OBJECT_HANDLE *grown = realloc(*handles, (cap + 64) * sizeof *grown);
            if (!grown) {
                rv = CKR_HOST_MEMORY;
                break;
            }
            *handles = grown;
            cap += 64;
        }
        CK_ULONG got = 0;
        rv = P11_CALL(t->module, C_FindObjects, s, *handles + *n, cap - *n, &got);
        if (rv != CKR_OK)
            break;
        *n += got;
        if (*n < cap)
            break;
    }
    CK_RV fin = P11_CALL(t->module, C_FindObjectsFinal, s);
    return rv != CKR_OK ? rv : fin;
}

static int push_object(hsmtls_p11_object ***out, size_t *n, hsmtls_p11_object *o)
{
    hsmtls_p11_object **grown = realloc(*out, (*n + 1) * sizeof **out);
    if (!grown)
        return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
    grown[(*n)++] = o;
    *out = grown;
    return 0;
}

hsmtls_p11_object *hsmtls_p11_object_for_handle(hsmtls_p11_token *t, CK_SESSION_HANDLE s,
                                               CK_OBJECT_HANDLE h, int *failed)
{
    unsigned gen = hsmtls_p11_module_epoch(t->module);
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nobjects; i++)
        if (atomic_load(&t->objects[i]->handle) == h && atomic_load(&t->objects[i]->generation) == gen) {
            pthread_mutex_unlock(&t->lock);
            return t->objects[i];
        }
    pthread_mutex_unlock(&t->lock);

    hsmtls_p11_object *o = calloc(1, sizeof *o);
    if (!o) {
        *failed = hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
        return NULL;
    }
    o->token = t;
    atomic_store(&o->handle, h);
    atomic_store(&o->generation, gen);
    int known = hsmtls_p11_object_read_attributes(o, s);
    if (known <= 0) {
        if (known < 0)
            *failed = -1;
        hsmtls_p11_object_free(o);
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    hsmtls_p11_object **grown = realloc(t->objects, (t->nobjects + 1) * sizeof *grown);
    if (grown) {
        t->objects = grown;
        t->objects[t->nobjects++] = o;
    }
    pthread_mutex_unlock(&t->lock);
    if (!grown) {
        hsmtls_p11_object_free(o);
        *failed = hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
        return NULL;
    }
    return o;
}

static int cached(hsmtls_p11_token *t, const char *key, hsmtls_p11_object ***out, size_t *n)
{
    int hit = 0;
    unsigned gen = hsmtls_p11_module_epoch(t->module);
    pthread_mutex_lock(&t->lock);
    for (struct hsmtls_p11_query *q = t->queries; q && !hit; q = q->next)
        if (strcmp(q->key, key) == 0) {
            hit = 1;
            /* After a fork or a restart the handles are stale; the objects are still
             * the same ones. */
            for (size_t i = 0; i < q->n && hit; i++)
                if (atomic_load(&q->objects[i]->generation) != gen)
                    atomic_store(&q->objects[i]->generation, ~0u);
            for (size_t i = 0; i < q->n && hit; i++)
                if (push_object(out, n, q->objects[i]) < 0)
                    hit = -1;
        }
    pthread_mutex_unlock(&t->lock);
    return hit;
}

static void remember(hsmtls_p11_token *t, char *key, hsmtls_p11_object **objs, size_t n)
{
    struct hsmtls_p11_query *q = calloc(1, sizeof *q);
    hsmtls_p11_object **copy = malloc(n * sizeof *copy);
    if (!q || !copy) {
        free(q);
        free(copy);
        free(key);
        return;
    }
    memcpy(copy, objs, n * sizeof *copy);
    q->key = key;
    q->objects = copy;
    q->n = n;
    pthread_mutex_lock(&t->lock);
    q->next = t->queries;
    t->queries = q;
    pthread_mutex_unlock(&t->lock);
}

/* Objects on one token matching `q`, from the cache or the token. Appends to out. */
static int search_token(hsmtls_p11_token *t, const struct search *q,
                        hsmtls_p11_object ***out, size_t *n)
{
    char *key = query_key(q, hsmtls_p11_token_logged_in(t));
    if (!key)
        return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
    size_t before = *n;
    int hit = cached(t, key, out, n);
    if (hit) {
        free(key);
        return hit < 0 ? -1 : 0;
    }
    CK_RV rv;
    int failed = 0;
    /* Once more after a lost session or a module that went down (restarted by acquire). */
    for (int tries = 0; tries < 2; tries++) {
        CK_SESSION_HANDLE s;
        if (hsmtls_p11_session_acquire(t, &s) < 0) {
            free(key);
            return -1;
        }
        CK_OBJECT_HANDLE *handles;
        CK_ULONG nh;
        rv = find_handles(t, s, q, &handles, &nh);
        for (CK_ULONG i = 0; rv == CKR_OK && i < nh && !failed; i++) {
            hsmtls_p11_object *o = hsmtls_p11_object_for_handle(t, s, handles[i], &failed);
            if (o && push_object(out, n, o) < 0)
                failed = -1;
        }
        free(handles);
        /* A handle that went stale between the search and the reading of it (or a
         * session lost meanwhile) is worth one more search. */
        CK_RV why = rv != CKR_OK ? rv : failed ? hsmtls_p11_error_rv() : CKR_OK;
        enum hsmtls_p11_failure f = hsmtls_p11_classify(why);
        int lost = hsmtls_p11_session_is_lost(why);
        hsmtls_p11_session_release(t, s, lost);
        if (tries > 0 || (!lost && f != HSMTLS_P11_HANDLE_STALE && f != HSMTLS_P11_TRANSIENT))
            break;
        *n = before;
        failed = 0;
        rv = CKR_OK;
        if (!lost)
            continue;
        hsmtls_p11_token_drop_sessions(t);
        if (hsmtls_p11_token_ensure_login(t) < 0) {
            free(key);
            return -1;
        }
    }
    if (rv != CKR_OK) {
        free(key);
        return hsmtls_p11_error_set(rv, "searching token \"%s\": %s", t->label,
                                    hsmtls_p11_rv_name(rv));
    }
    if (failed) {
        free(key);
        return -1;
    }
    if (*n > before)
        remember(t, key, *out + before, *n - before); /* only hits are kept: a miss looks again */
    else
        free(key);
    return 0;
}

/* An EC or EdDSA private key has no CKA_EC_POINT: borrow it from its public key or
 * certificate, so the public half is known without a second lookup by the caller. */
void hsmtls_p11_object_complete_public(hsmtls_p11_object *o)
{
    if (o->cls != CKO_PRIVATE_KEY || o->key_type == CKK_RSA || o->ec_point)
        return;
    hsmtls_p11_object *pub = hsmtls_p11_object_sibling(o, CKO_PUBLIC_KEY);
    if (pub && pub->ec_point) {
        unsigned char *copy = malloc(pub->ec_point_len);
        if (copy) {
            memcpy(copy, pub->ec_point, pub->ec_point_len);
            o->ec_point_len = pub->ec_point_len;
            o->ec_point = copy;
        }
        return;
    }
    hsmtls_p11_object *cert = hsmtls_p11_object_sibling(o, CKO_CERTIFICATE);
    EVP_PKEY *pk = cert ? hsmtls_p11_object_public_key(cert, NULL, NULL) : NULL;
    size_t len = 0;
    if (pk && EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0, &len)) {
        unsigned char *point = malloc(len);
        if (point && EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                     point, len, &len)) {
            o->ec_point = point;
            o->ec_point_len = len;
        } else {
            free(point);
        }
    }
    EVP_PKEY_free(pk);
    hsmtls_p11_error_clear();
}

static int pin_written(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt)
{
    return (uri && (hsmtls_p11_uri_pin_value(uri) || hsmtls_p11_uri_pin_source(uri))) ||
           (opt && (opt->pin || opt->pin_source));
}

/* Of several tokens, the ones worth a login: those where the object's public half or
 * certificate is visible without one. A PIN is meant for one token; offering it to
 * every token a loose URI matches would spend other cards' retry counters. When no
 * token shows anything, all stay candidates. */
static void keep_tokens_with_public_match(hsmtls_p11_token **tokens, size_t *ntokens,
                                          const struct search *q)
{
    if (*ntokens < 2 || (!q->label && !q->id))
        return;
    size_t kept = 0;
    for (size_t i = 0; i < *ntokens; i++) {
        struct search pub = { HSMTLS_P11_ANY_CLASS, q->label, q->id, q->id_len };
        hsmtls_p11_object **found = NULL;
        size_t nfound = 0;
        if (search_token(tokens[i], &pub, &found, &nfound) == 0 && nfound > 0)
            tokens[kept++] = tokens[i];
        free(found);
    }
    hsmtls_p11_error_clear();
    if (kept > 0)
        *ntokens = kept;
}

int hsmtls_p11_objects_list(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                            CK_OBJECT_CLASS cls, hsmtls_p11_object ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    hsmtls_p11_token **tokens;
    size_t ntokens;
    if (hsmtls_p11_tokens_find(uri, opt, &tokens, &ntokens) < 0)
        return -1;
    /* An uninitialised token (SoftHSM2's free slot) holds nothing and refuses logins. */
    size_t usable = 0;
    for (size_t i = 0; i < ntokens; i++)
        if (tokens[i]->info.flags & CKF_TOKEN_INITIALIZED)
            tokens[usable++] = tokens[i];
    ntokens = usable;
    struct search q = { cls, NULL, NULL, 0 };
    if (uri) {
        if (q.cls == HSMTLS_P11_ANY_CLASS)
            q.cls = hsmtls_p11_uri_object_class(uri);
        q.label = hsmtls_p11_uri_object_label(uri);
        q.id = hsmtls_p11_uri_object_id(uri, &q.id_len);
    }
    enum hsmtls_p11_login_mode mode = opt ? opt->login : HSMTLS_P11_LOGIN_AUTO;
    /* A private key sought: log in, or fail saying how to give a PIN. Any class: log
     * in only when a PIN is written down (URI or configuration), never asking a
     * callback just to list what may be public. */
    int login = mode == HSMTLS_P11_LOGIN_ALWAYS ||
                (mode == HSMTLS_P11_LOGIN_AUTO &&
                 (q.cls == CKO_PRIVATE_KEY || (q.cls == HSMTLS_P11_ANY_CLASS && pin_written(uri, opt))));
    if (login)
        keep_tokens_with_public_match(tokens, &ntokens, &q);
    int ret = 0;
    for (size_t i = 0; i < ntokens && ret == 0; i++) {
        if (login && hsmtls_p11_token_login(tokens[i], uri, opt) < 0)
            ret = -1;
        if (ret == 0)
            ret = search_token(tokens[i], &q, out, n);
    }
    free(tokens);
    for (size_t i = 0; ret == 0 && i < *n; i++)
        hsmtls_p11_object_complete_public((*out)[i]);
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

/* The distinct labels of the objects known on a token, for "did you mean" errors. */
static void list_names(hsmtls_p11_token *t, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nobjects && used + 64 < cap; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(t->objects[k]->label, t->objects[i]->label) == 0;
        if (!seen)
            used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\"", used ? ", " : "",
                                     t->objects[i]->label);
    }
    pthread_mutex_unlock(&t->lock);
}

hsmtls_p11_object *hsmtls_p11_object_find(const hsmtls_p11_uri *uri,
                                          const hsmtls_p11_lookup *opt, CK_OBJECT_CLASS cls)
{
    hsmtls_p11_object **objs;
    size_t n;
    if (hsmtls_p11_objects_list(uri, opt, cls, &objs, &n) < 0)
        return NULL;
    hsmtls_p11_object *found = n ? objs[0] : NULL;
    free(objs);
    if (found)
        return found;

    /* Say what exists, so a typo in a label is obvious. */
    hsmtls_p11_token **tokens;
    size_t ntokens;
    char names[600] = "";
    if (hsmtls_p11_tokens_find(uri, opt, &tokens, &ntokens) == 0 && ntokens > 0) {
        hsmtls_p11_object **all;
        size_t nall;
        if (hsmtls_p11_objects_list(NULL, &(hsmtls_p11_lookup){ .module_path = opt ? opt->module_path : NULL,
                                                                .login = HSMTLS_P11_LOGIN_NEVER },
                                    HSMTLS_P11_ANY_CLASS, &all, &nall) == 0)
            free(all);
        list_names(tokens[0], names, sizeof names);
        free(tokens);
    }
    const char *what = cls == CKO_PRIVATE_KEY ? "private key" : cls == CKO_PUBLIC_KEY ? "public key" :
                       cls == CKO_CERTIFICATE ? "certificate" : "object";
    hsmtls_p11_error_set(CKR_OBJECT_HANDLE_INVALID, "no %s matches \"%s\"; labels on the token: %s",
                         what, uri ? hsmtls_p11_uri_masked(uri) : "pkcs11:",
                         names[0] ? names : "none visible");
    return NULL;
}

/* Whether `c` can be the other half of `o`'s pair: the same key type and curve. */
static int same_key(const hsmtls_p11_object *o, const hsmtls_p11_object *c)
{
    if (c->key_type != o->key_type)
        return 0;
    if (o->key_type == CKK_RSA) /* a certificate's modulus is not kept: it qualifies */
        return !o->modulus || !c->modulus ||
               (o->modulus_len == c->modulus_len && memcmp(o->modulus, c->modulus, o->modulus_len) == 0);
    return o->curve && c->curve && strcmp(o->curve, c->curve) == 0;
}

hsmtls_p11_object *hsmtls_p11_object_sibling(hsmtls_p11_object *o, CK_OBJECT_CLASS cls)
{
    /* An empty CKA_ID (what tokens give keys made without one) links nothing: every
     * id-less object shares it. Then the label does. */
    int has_id = o->id && o->id_len > 0;
    struct search q = { cls, has_id ? NULL : o->label, has_id ? o->id : NULL, has_id ? o->id_len : 0 };
    hsmtls_p11_object **objs = NULL;
    size_t n = 0;
    if (search_token(o->token, &q, &objs, &n) < 0) {
        hsmtls_p11_error_clear();
        return NULL;
    }
    /* Ids are not unique in practice (two keys made with the same id=): only an object
     * of the same key type and curve qualifies, one with the same label first. */
    hsmtls_p11_object *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!same_key(o, objs[i]))
            continue;
        if (!found || (strcmp(found->label, o->label) != 0 && strcmp(objs[i]->label, o->label) == 0))
            found = objs[i];
    }
    free(objs);
    return found;
}

CK_RV hsmtls_p11_object_relocate(hsmtls_p11_object *o, CK_SESSION_HANDLE s)
{
    struct search q = { o->cls, o->label, o->id, o->id_len };
    CK_OBJECT_HANDLE *handles;
    CK_ULONG n;
    CK_RV rv = find_handles(o->token, s, &q, &handles, &n);
    if (rv == CKR_OK && n > 0) {
        atomic_store(&o->handle, handles[0]);
        atomic_store(&o->generation, atomic_load(&o->token->module->epoch));
    }
    free(handles);
    if (rv != CKR_OK)
        return rv;
    return n > 0 ? CKR_OK : CKR_OBJECT_HANDLE_INVALID;
}

hsmtls_p11_token *hsmtls_p11_object_token(const hsmtls_p11_object *o) { return o->token; }
CK_OBJECT_CLASS hsmtls_p11_object_class(const hsmtls_p11_object *o) { return o->cls; }
CK_KEY_TYPE hsmtls_p11_object_key_type(const hsmtls_p11_object *o) { return o->key_type; }
const char *hsmtls_p11_object_label(const hsmtls_p11_object *o) { return o->label; }
unsigned hsmtls_p11_object_bits(const hsmtls_p11_object *o) { return o->bits; }
const char *hsmtls_p11_object_curve(const hsmtls_p11_object *o) { return o->curve; }
int hsmtls_p11_object_always_authenticate(const hsmtls_p11_object *o) { return o->always_authenticate; }

#define BYTES_GETTER(name, field)                                                          \
    const unsigned char *hsmtls_p11_object_##name(const hsmtls_p11_object *o, size_t *len) \
    {                                                                                      \
        *len = o->field##_len;                                                             \
        return o->field;                                                                   \
    }
BYTES_GETTER(id, id)
BYTES_GETTER(cert_der, cert)

char *hsmtls_p11_object_uri(const hsmtls_p11_object *o)
{
    return hsmtls_p11_uri_format_object(&o->token->info, o->label, o->id, o->id_len, o->cls);
}

hsmtls_p11_object *hsmtls_p11_object_twin(hsmtls_p11_object *o, hsmtls_p11_token *other)
{
    int has_id = o->id && o->id_len > 0;
    struct search q = { o->cls, o->label[0] ? o->label : NULL, has_id ? o->id : NULL,
                        has_id ? o->id_len : 0 };
    hsmtls_p11_object **objs = NULL;
    size_t n = 0;
    if (search_token(other, &q, &objs, &n) < 0)
        return NULL;
    hsmtls_p11_object *found = NULL;
    for (size_t i = 0; i < n && !found; i++)
        if (same_key(o, objs[i]))
            found = objs[i];
    free(objs);
    return found;
}
