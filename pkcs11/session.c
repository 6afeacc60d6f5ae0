/* The per-token session pool. Sessions are opened on demand, returned after each
 * operation and reused: a warm operation costs no session call at all. A session the
 * module reports lost is closed, never returned to the pool. */
#include "p11_internal.h"

#include <stdlib.h>

enum hsmtls_p11_failure hsmtls_p11_classify(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
        return HSMTLS_P11_SESSION_LOST;
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
        return HSMTLS_P11_HANDLE_STALE;
    case CKR_DEVICE_ERROR:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return HSMTLS_P11_MODULE_DOWN;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SLOT_ID_INVALID:
        return HSMTLS_P11_TOKEN_GONE;
    case CKR_DEVICE_MEMORY:
    case CKR_SESSION_COUNT:
        return HSMTLS_P11_TRANSIENT;
    default:
        return HSMTLS_P11_FINE;
    }
}

const char *hsmtls_p11_unreachable_note(CK_RV rv)
{
    switch (hsmtls_p11_classify(rv)) {
    case HSMTLS_P11_TOKEN_GONE:
        return " (the token is unreachable: removed, or its slot went away)";
    case HSMTLS_P11_MODULE_DOWN:
        return " (the token is unreachable: its module went down)";
    default:
        return "";
    }
}

int hsmtls_p11_session_is_lost(CK_RV rv)
{
    enum hsmtls_p11_failure f = hsmtls_p11_classify(rv);
    return f == HSMTLS_P11_SESSION_LOST || f == HSMTLS_P11_MODULE_DOWN || f == HSMTLS_P11_TOKEN_GONE;
}

void hsmtls_p11_token_reset_locked(hsmtls_p11_token *t)
{
    /* Handles from before a fork belong to the parent, and a restarted module has none
     * left: forget them, do not close them. */
    t->nidle = 0;
    t->open_sessions = 0;
    t->logged_in = 0;
    atomic_store(&t->keeper_serial, 0);
}

static void check_epoch_locked(hsmtls_p11_token *t, unsigned epoch)
{
    if (t->generation != epoch) {
        hsmtls_p11_token_reset_locked(t);
        t->generation = epoch;
    }
}

/* A reset (new epoch, a token gone) zeroes the count while other threads may still be
 * returning sessions of the old one: never below zero. */
static void sessions_closed_locked(hsmtls_p11_token *t, size_t n)
{
    t->open_sessions = t->open_sessions > n ? t->open_sessions - n : 0;
}

void hsmtls_p11_token_sessions_opened(hsmtls_p11_token *t, size_t n)
{
    pthread_mutex_lock(&t->lock);
    t->open_sessions += n;
    pthread_mutex_unlock(&t->lock);
}

void hsmtls_p11_token_sessions_closed(hsmtls_p11_token *t, size_t n)
{
    pthread_mutex_lock(&t->lock);
    sessions_closed_locked(t, n);
    pthread_mutex_unlock(&t->lock);
}

/* The login is gone, and with it the handles of private objects on tokens that hand
 * them out per login (SoftHSM2 does): they are looked up again before their next use
 * rather than failing it once first. Caller holds t->lock. */
static void logged_out_locked(hsmtls_p11_token *t)
{
    t->logged_in = 0;
    for (size_t i = 0; i < t->nobjects; i++)
        if (t->objects[i]->cls == CKO_PRIVATE_KEY)
            atomic_store(&t->objects[i]->generation, ~0u);
}

CK_RV hsmtls_p11_session_open(hsmtls_p11_token *t, CK_SESSION_HANDLE *s)
{
    CK_RV rv = P11_CALL(t->module, C_OpenSession, t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                        NULL, NULL, s);
    if (rv == CKR_TOKEN_WRITE_PROTECTED)
        rv = P11_CALL(t->module, C_OpenSession, t->slot, CKF_SERIAL_SESSION, NULL, NULL, s);
    return rv;
}

int hsmtls_p11_session_acquire(hsmtls_p11_token *t, CK_SESSION_HANDLE *s)
{
    if (hsmtls_p11_module_check_fork(t->module) < 0 ||
        hsmtls_p11_module_restart_if_lost(t->module) < 0)
        return -1;
    unsigned epoch = atomic_load(&t->module->epoch);
    pthread_mutex_lock(&t->lock);
    check_epoch_locked(t, epoch);
    if (t->nidle > 0) {
        *s = t->idle[--t->nidle];
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    t->open_sessions++;
    pthread_mutex_unlock(&t->lock);

    /* Opened outside the lock: a slow token must not stall threads that have
     * sessions to return. */
    CK_RV rv = hsmtls_p11_session_open(t, s);
    if (hsmtls_p11_classify(rv) == HSMTLS_P11_TOKEN_GONE) {
        /* It may be back in another slot (a module that reconnected numbers them anew):
         * the sessions of the old one are gone, and a listing finds it again. */
        CK_SLOT_ID was = t->slot;
        pthread_mutex_lock(&t->lock);
        hsmtls_p11_token_reset_locked(t);
        pthread_mutex_unlock(&t->lock);
        int moved = hsmtls_p11_module_tokens(t->module, 1) == 0 && t->present && t->slot != was;
        pthread_mutex_lock(&t->lock);
        t->open_sessions++; /* this attempt's again */
        pthread_mutex_unlock(&t->lock);
        if (moved)
            rv = hsmtls_p11_session_open(t, s);
        else if (t->nobjects > 0) {
            /* We hold its keys: its module may have lost it (p11-kit's client started
             * while its server was away lists nothing until it starts again). */
            pthread_mutex_lock(&t->lock);
            sessions_closed_locked(t, 1);
            pthread_mutex_unlock(&t->lock);
            if (hsmtls_p11_module_restart_for(t) < 0)
                return -1;
            pthread_mutex_lock(&t->lock);
            t->open_sessions++;
            pthread_mutex_unlock(&t->lock);
            rv = hsmtls_p11_session_open(t, s);
        }
    }
    if (rv != CKR_OK) {
        pthread_mutex_lock(&t->lock);
        sessions_closed_locked(t, 1);
        pthread_mutex_unlock(&t->lock);
        return hsmtls_p11_error_set(rv, "opening a session on token \"%s\": %s%s", t->label,
                                    hsmtls_p11_rv_name(rv), hsmtls_p11_unreachable_note(rv));
    }
    return 0;
}

void hsmtls_p11_session_release(hsmtls_p11_token *t, CK_SESSION_HANDLE s, int broken)
{
    pthread_mutex_lock(&t->lock);
    if (t->generation != atomic_load(&t->module->epoch)) {
        pthread_mutex_unlock(&t->lock); /* from before a fork or a restart: gone already */
        return;
    }
    if (!broken && t->nidle == t->idle_cap) {
        size_t cap = t->idle_cap ? t->idle_cap * 2 : 8;
        CK_SESSION_HANDLE *grown = realloc(t->idle, cap * sizeof *grown);
        if (grown) {
            t->idle = grown;
            t->idle_cap = cap;
        } else {
            broken = 1;
        }
    }
    if (!broken) {
        t->idle[t->nidle++] = s;
        pthread_mutex_unlock(&t->lock);
        return;
    }
    sessions_closed_locked(t, 1);
    /* Closing the last session ends the login (PKCS#11: a login is the application's,
     * over all its sessions); the key cache's keeper is one of them. */
    if (t->open_sessions == 0)
        logged_out_locked(t);
    pthread_mutex_unlock(&t->lock);
    P11_CALL(t->module, C_CloseSession, s);
}

size_t hsmtls_p11_token_idle_sessions(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->nidle;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t hsmtls_p11_token_open_sessions(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->open_sessions;
    pthread_mutex_unlock(&t->lock);
    return n;
}

int hsmtls_p11_token_close_all_sessions(hsmtls_p11_token *t)
{
    CK_RV rv = P11_CALL(t->module, C_CloseAllSessions, t->slot);
    if (rv != CKR_OK)
        return hsmtls_p11_error_set(rv, "closing sessions on token \"%s\": %s", t->label,
                                    hsmtls_p11_rv_name(rv));
    return 0;
}

void hsmtls_p11_token_drop_sessions(hsmtls_p11_token *t)
{
    /* One lost session usually means all were lost (token reset, logout by another
     * application): close every idle one and the keeper so a retry starts fresh, and
     * log in again. */
    hsmtls_p11_token_drop_keeper(t);
    pthread_mutex_lock(&t->lock);
    CK_SESSION_HANDLE *idle = t->idle;
    size_t n = t->nidle;
    t->idle = NULL;
    t->nidle = t->idle_cap = 0;
    sessions_closed_locked(t, n);
    logged_out_locked(t);
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; i < n; i++)
        P11_CALL(t->module, C_CloseSession, idle[i]);
    free(idle);
}
