/* Keys cached inside the token: each private key in use is copied once into a session
 * object held by a session kept for that purpose (the keeper), and operations use the
 * copy. SoftHSM2 opens, locks and re-reads a token object's file on every operation
 * (about six system calls per signature), a session object's never. The copy is made
 * by the token and stays in it; nothing secret passes through the core. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static _Atomic int cache_state = -1; /* -1: HSMTLS_KEY_CACHE not read yet */
static _Atomic unsigned last_serial;

int hsmtls_p11_key_cache_enabled(void)
{
    int state = atomic_load_explicit(&cache_state, memory_order_relaxed);
    if (state < 0) {
        const char *v = getenv("HSMTLS_KEY_CACHE");
        state = !(v && (strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
                        strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0));
        int unread = -1;
        atomic_compare_exchange_strong(&cache_state, &unread, state);
        state = atomic_load(&cache_state);
    }
    return state;
}

void hsmtls_p11_key_cache_set(int enabled)
{
    atomic_store(&cache_state, enabled ? 1 : 0);
}

static int copy_current(const hsmtls_p11_object *o)
{
    unsigned serial = atomic_load(&o->token->keeper_serial);
    return serial && atomic_load(&o->copy_serial) == serial;
}

int hsmtls_p11_object_cached(const hsmtls_p11_object *key)
{
    return hsmtls_p11_key_cache_enabled() && copy_current(key);
}

unsigned long hsmtls_p11_object_copies(const hsmtls_p11_object *key)
{
    return atomic_load(&key->copies);
}

void hsmtls_p11_key_copy_stale(hsmtls_p11_object *o)
{
    atomic_store(&o->copy_serial, 0);
}

int hsmtls_p11_token_holds_copies(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->lock);
    int yes = atomic_load(&t->keeper_serial) != 0 && t->generation == atomic_load(&t->module->epoch);
    pthread_mutex_unlock(&t->lock);
    return yes;
}

/* Closing the keeper destroys every copy it holds; the next operation makes them again. */
void hsmtls_p11_token_drop_keeper(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->copy_lock);
    unsigned serial = atomic_exchange(&t->keeper_serial, 0);
    int current = serial && t->keeper_epoch == atomic_load(&t->module->epoch);
    CK_SESSION_HANDLE s = t->keeper;
    pthread_mutex_unlock(&t->copy_lock);
    if (!current)
        return;
    hsmtls_p11_token_sessions_closed(t, 1);
    P11_CALL(t->module, C_CloseSession, s);
}

/* Caller holds copy_lock. The keeper counts among the token's open sessions. */
static CK_RV keeper_open(hsmtls_p11_token *t)
{
    CK_SESSION_HANDLE s;
    CK_RV rv = hsmtls_p11_session_open(t, &s);
    if (rv != CKR_OK)
        return rv;
    hsmtls_p11_token_sessions_opened(t, 1);
    t->keeper = s;
    t->keeper_epoch = atomic_load(&t->module->epoch);
    unsigned serial = atomic_fetch_add(&last_serial, 1) + 1;
    if (serial == 0)
        serial = atomic_fetch_add(&last_serial, 1) + 1;
    atomic_store(&t->keeper_serial, serial);
    return CKR_OK;
}

/* CKA_COPYABLE, CKA_SENSITIVE and CKA_EXTRACTABLE; an attribute the token does not know
 * (a PKCS#11 2.20 token has no CKA_COPYABLE) is left as unavailable. */
struct guards {
    CK_BBOOL copyable, sensitive, extractable;
    CK_ATTRIBUTE a[3];
};

static CK_RV guards_read(hsmtls_p11_token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, struct guards *g)
{
    g->a[0] = (CK_ATTRIBUTE){ CKA_COPYABLE, &g->copyable, sizeof g->copyable };
    g->a[1] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &g->sensitive, sizeof g->sensitive };
    g->a[2] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &g->extractable, sizeof g->extractable };
    CK_RV rv = P11_CALL(t->module, C_GetAttributeValue, s, h, g->a, 3);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE)
        rv = CKR_OK;
    return rv;
}

static int guard_same(const CK_ATTRIBUTE *a, const CK_ATTRIBUTE *b)
{
    if (a->ulValueLen != b->ulValueLen)
        return 0;
    return a->ulValueLen != sizeof(CK_BBOOL) ||
           *(CK_BBOOL *)a->pValue == *(CK_BBOOL *)b->pValue;
}

/* One copy in the keeper. CKR_ACTION_PROHIBITED: the key may not be copied, or the copy
 * did not keep its protection (then it is destroyed at once). The first copy of a key is
 * checked so; the token makes later ones the same way, so they cost one call. */
static CK_RV copy_once(hsmtls_p11_object *o, CK_OBJECT_HANDLE *copy)
{
    hsmtls_p11_token *t = o->token;
    CK_SESSION_HANDLE s = t->keeper;
    int check = !o->copy_checked;
    struct guards key, made;
    CK_RV rv = check ? guards_read(t, s, atomic_load(&o->handle), &key) : CKR_OK;
    if (rv != CKR_OK)
        return rv;
    if (check && key.a[0].ulValueLen == sizeof(CK_BBOOL) && key.copyable == CK_FALSE)
        return CKR_ACTION_PROHIBITED;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = { { CKA_TOKEN, &no, sizeof no } };
    rv = P11_CALL(t->module, C_CopyObject, s, atomic_load(&o->handle), tmpl, 1, copy);
    if (rv != CKR_OK || !check)
        return rv;
    rv = guards_read(t, s, *copy, &made);
    if (rv == CKR_OK && (!guard_same(&key.a[1], &made.a[1]) || !guard_same(&key.a[2], &made.a[2])))
        rv = CKR_ACTION_PROHIBITED;
    if (rv != CKR_OK)
        P11_CALL(t->module, C_DestroyObject, s, *copy);
    else
        o->copy_checked = 1;
    return rv;
}

/* Makes the copy once, however many threads ask at the same time. A keeper lost to a
 * restart or a fork is opened again; one the token closed under us answers as a lost
 * session, which the operation recovers from like any other (drop_sessions closes it). */
static CK_RV copy_make(hsmtls_p11_object *o, CK_OBJECT_HANDLE *copy)
{
    hsmtls_p11_token *t = o->token;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&t->copy_lock);
    unsigned epoch = atomic_load(&t->module->epoch);
    int keeper_ok = atomic_load(&t->keeper_serial) && t->keeper_epoch == epoch;
    if (keeper_ok && copy_current(o)) {
        *copy = atomic_load(&o->copy);
        pthread_mutex_unlock(&t->copy_lock);
        return CKR_OK;
    }
    if (keeper_ok && o->copy_made_in == atomic_load(&t->keeper_serial))
        /* A copy the token called stale may still be there (a handle that went stale
         * without its object going away): not one copy more per failure. */
        P11_CALL(t->module, C_DestroyObject, t->keeper, atomic_load(&o->copy));
    if (keeper_ok || (rv = keeper_open(t)) == CKR_OK)
        rv = copy_once(o, copy);
    if (rv == CKR_OK) {
        atomic_store(&o->copy, *copy);
        o->copy_made_in = atomic_load(&t->keeper_serial);
        atomic_store(&o->copy_serial, o->copy_made_in);
        atomic_fetch_add(&o->copies, 1);
    } else if (hsmtls_p11_classify(rv) == HSMTLS_P11_FINE) {
        /* Not a failure recovery can change: this key is used as it is from now on. */
        atomic_store(&o->copy_refused, 1);
    }
    pthread_mutex_unlock(&t->copy_lock);
    return rv;
}

CK_RV hsmtls_p11_key_handle(hsmtls_p11_object *o, CK_SESSION_HANDLE s, int may_copy,
                            CK_OBJECT_HANDLE *h, int *on_copy)
{
    *on_copy = 0;
    int wanted = o->cls == CKO_PRIVATE_KEY && !atomic_load(&o->copy_refused) &&
                 hsmtls_p11_key_cache_enabled();
    if (wanted && copy_current(o)) {
        *h = atomic_load(&o->copy);
        *on_copy = 1;
        return CKR_OK;
    }
    wanted = wanted && may_copy;
    for (int tries = 0; tries < 2; tries++) {
        if (atomic_load(&o->generation) != atomic_load(&o->token->module->epoch)) {
            CK_RV rv = hsmtls_p11_object_relocate(o, s);
            if (rv != CKR_OK)
                return rv;
        }
        *h = atomic_load(&o->handle);
        if (!wanted)
            return CKR_OK;
        CK_OBJECT_HANDLE copy;
        CK_RV rv = copy_make(o, &copy);
        if (rv == CKR_OK) {
            *h = copy;
            *on_copy = 1;
            return CKR_OK;
        }
        if (hsmtls_p11_session_is_lost(rv))
            return rv; /* the operation's session is most likely gone too: recover now */
        if (hsmtls_p11_classify(rv) != HSMTLS_P11_HANDLE_STALE)
            break;
        atomic_store(&o->generation, ~0u); /* the key's own handle went stale: find it again */
    }
    /* No copy (refused, or the token short of memory): the key itself serves. */
    return CKR_OK;
}
