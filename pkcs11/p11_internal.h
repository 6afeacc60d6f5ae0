/* The core's private structures and its single PKCS#11 call point. */
#ifndef HSMTLS_P11_INTERNAL_H
#define HSMTLS_P11_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_uri.h"
#include "hsmtls/p11_module.h"
#include "hsmtls/p11_token.h"
#include "hsmtls/p11_object.h"

/* Every PKCS#11 function the core calls, for counting and tracing. */
#define HSMTLS_P11_FUNCTIONS(X) \
    X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetSlotList) X(C_GetSlotInfo) \
    X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_OpenSession) \
    X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_Login) X(C_Logout) \
    X(C_CreateObject) X(C_DestroyObject) X(C_GetAttributeValue) X(C_FindObjectsInit) \
    X(C_FindObjects) X(C_FindObjectsFinal) X(C_SignInit) X(C_Sign) X(C_DecryptInit) \
    X(C_Decrypt) X(C_DeriveKey) X(C_GenerateKeyPair) X(C_SetAttributeValue) X(C_CopyObject)

enum hsmtls_p11_fn {
#define HSMTLS_P11_ENUM(f) HSMTLS_P11_FN_##f,
    HSMTLS_P11_FUNCTIONS(HSMTLS_P11_ENUM)
#undef HSMTLS_P11_ENUM
    HSMTLS_P11_FN_COUNT
};

/* The start time goes to a thread-local: a PKCS#11 call never nests in another. */
void hsmtls_p11_call_start(enum hsmtls_p11_fn fn);
CK_RV hsmtls_p11_call_done(enum hsmtls_p11_fn fn, CK_RV rv);

/* P11_CALL(module, C_Sign, session, ...): the only way the core calls a module. */
#define P11_CALL(mod, fn, ...) hsmtls_p11_call_seen((mod), P11_CALL_LIST((mod)->fl, fn, __VA_ARGS__))
#define P11_CALL_LIST(list, fn, ...) \
    hsmtls_p11_call_done(HSMTLS_P11_FN_##fn, \
        (hsmtls_p11_call_start(HSMTLS_P11_FN_##fn), (list)->fn(__VA_ARGS__)))

/* The most connections (lanes.c) the core opens to one module. */
#define HSMTLS_P11_MAX_LANES 16

struct hsmtls_p11_module {
    char *path;
    char *name;
    /* p11-kit's managed view of the module: C_Initialize and C_Finalize are counted
     * across every p11-kit user in the process (GnuTLS, another provider), and the
     * module itself is finalised only when the last of them lets go, and only if p11-kit
     * initialised it. */
    CK_FUNCTION_LIST *fl;
    /* The module's own functions, only to ask whether it is still initialised after our
     * C_Finalize (another user keeps it up: then it cannot be restarted from here). */
    CK_FUNCTION_LIST *raw;
    CK_INFO info;
    unsigned generation;          /* fork generation it was initialised in */
    int shared;                   /* a restart found another user holding the module */
    /* Bumped each time the module starts afresh here (after a fork, a restart):
     * sessions, logins and object handles of an older epoch are gone. */
    _Atomic unsigned epoch;
    /* A call said the module must be started afresh (hsmtls_p11_classify: the device
     * failed, or another user in the process finalised it under us). */
    _Atomic int lost;
    /* After a restart attempt: when the next may be made (CLOCK_MONOTONIC ms), and what
     * the last failing one answered; operations meanwhile fail at once. */
    long long retry_at_ms;
    CK_RV down_rv;
    pthread_mutex_t restart_lock; /* one restart at a time; taken before lock */
    pthread_mutex_t lock;         /* guards tokens[] and re-initialisation */
    hsmtls_p11_token **tokens;    /* every token ever seen, kept for the process */
    size_t ntokens;
    struct hsmtls_p11_module *next;

    /* Lanes (lanes.c): more connections to a module whose connection serves one call at
     * a time (p11-kit's client). Each lane is a module of its own, with its own sessions,
     * login and handles, and is never in the module list (nothing lists it twice). */
    pthread_mutex_t lanes_lock;
    _Atomic int lanes_state;      /* 0: not opened yet; 1: open; -1: none */
    size_t lanes_want;            /* connections wanted in all (1: no lanes) */
    struct hsmtls_p11_module *lanes[HSMTLS_P11_MAX_LANES];
    size_t nlanes;
};

struct hsmtls_p11_token {
    hsmtls_p11_module *module;
    CK_SLOT_ID slot;
    CK_SLOT_INFO slot_info;
    CK_TOKEN_INFO info;
    char label[33];               /* info.label without its padding */
    int present;
    /* Successful C_Sign calls that produced a signature (length queries excluded), for
     * hsmtls_p11_token_signatures: the demo and applications show what a token did. */
    _Atomic unsigned long signatures;

    pthread_mutex_t lock;         /* guards everything below */
    unsigned generation;          /* fork generation of sessions, login and handles */
    CK_SESSION_HANDLE *idle;      /* session pool */
    size_t nidle, idle_cap;
    size_t open_sessions;
    int logged_in;
    char *pin;                    /* kept to log in again after a lost session or a fork */
    char *rejected_pin;           /* never offered twice: a retry loop can lock a card */

    hsmtls_p11_object **objects;  /* every object loaded from this token, kept */
    size_t nobjects;
    struct hsmtls_p11_query *queries; /* the lookup cache */

    /* The key cache (key_cache.c): the keeper is a session outside the pool that holds
     * the session copies of this token's keys (closing it destroys them). keeper_serial
     * names the keeper now open (0: none; never reused), so a copy is current while its
     * copy_serial matches. copy_lock makes copies one at a time; taken before lock. */
    pthread_mutex_t copy_lock;
    CK_SESSION_HANDLE keeper;
    unsigned keeper_epoch;
    _Atomic unsigned keeper_serial;

    /* Lanes: on a lane's token, the token it stands in for (signatures count there); on
     * that token, its stand-in on each lane (the module's lanes_lock). */
    hsmtls_p11_token *primary;
    hsmtls_p11_token *lane_tokens[HSMTLS_P11_MAX_LANES];
};

struct hsmtls_p11_object {
    hsmtls_p11_token *token;
    _Atomic CK_OBJECT_HANDLE handle;
    _Atomic unsigned generation;  /* fork generation of the handle; ~0u: stale */
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE key_type;
    char *label;
    unsigned char *id;
    size_t id_len;
    int always_authenticate;
    unsigned bits;
    unsigned char *modulus, *exponent, *ec_params, *ec_point, *cert;
    size_t modulus_len, exponent_len, ec_params_len, ec_point_len, cert_len;
    const char *curve;            /* "P-256", "ED25519" ...; NULL for RSA */
    /* Its copy inside the token (key_cache.c), current while copy_serial equals the
     * token's keeper_serial; copy_refused: the token will not copy it, so never again. */
    _Atomic CK_OBJECT_HANDLE copy;
    _Atomic unsigned copy_serial;
    _Atomic int copy_refused;
    int copy_checked;             /* a copy was seen to keep the key's protection */
    unsigned copy_made_in;        /* the keeper the last copy was made in (copy_lock) */
    _Atomic unsigned long copies;
    /* The same key on each lane of its module (lanes.c), found on first use there. */
    _Atomic(hsmtls_p11_object *) lane_objs[HSMTLS_P11_MAX_LANES];
};

/* Core functions the fronts do not need (kept out of the public headers and so out of
 * the shared library's exported symbols). */
/* Sets the thread's message (printf-style) and its CK_RV; returns -1 so callers can
 * `return hsmtls_p11_error_set(...)`. */
int hsmtls_p11_error_set(CK_RV rv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "CKM_ECDSA", "CKO_PRIVATE_KEY": names for messages. */
const char *hsmtls_p11_mechanism_name(CK_MECHANISM_TYPE m);
const char *hsmtls_p11_class_name(CK_OBJECT_CLASS c);
/* The public key or certificate on the same token with the same CKA_ID (or label when
 * there is no id), NULL when none. */
hsmtls_p11_object *hsmtls_p11_object_sibling(hsmtls_p11_object *o, CK_OBJECT_CLASS cls);
/* Exactly the tokens `uri` names; none is an error that says what was searched and
 * which tokens exist. */
int hsmtls_p11_tokens_find(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                           hsmtls_p11_token ***out, size_t *n);
/* Logs in as the user once; later calls return at once. The PIN comes from the URI's
 * pin-value or pin-source, then opt->pin, opt->pin_source, then opt->pin_cb. Exactly
 * one C_Login per call, and a PIN the token rejected is never offered again.
 * Returns 0, or -1 with a message naming the token and the PKCS#11 reason. */
int hsmtls_p11_token_login(hsmtls_p11_token *t, const hsmtls_p11_uri *uri,
                           const hsmtls_p11_lookup *opt);
int hsmtls_p11_token_needs_login(const hsmtls_p11_token *t);
/* Whether the token offers a mechanism (asks C_GetMechanismList each time: not for hot paths). */
int hsmtls_p11_token_has_mechanism(hsmtls_p11_token *t, CK_MECHANISM_TYPE mech);

extern _Atomic unsigned hsmtls_p11_fork_generation;

/* module.c */
/* A module struct over function lists already loaded, initialised (not in the list). */
hsmtls_p11_module *hsmtls_p11_module_open(const char *path, const char *name,
                                          CK_FUNCTION_LIST *fl, CK_FUNCTION_LIST *raw);
int hsmtls_p11_module_check_fork(hsmtls_p11_module *m);
/* The module's epoch, after starting it afresh in a forked child. */
unsigned hsmtls_p11_module_epoch(hsmtls_p11_module *m);
/* Notes an answer that says the module must start afresh; returns rv. */
CK_RV hsmtls_p11_call_seen(hsmtls_p11_module *m, CK_RV rv);
/* Starts a module that went down afresh, in a new epoch (sessions, logins and handles of
 * the old one are forgotten; keys are found again by what identified them). Only a
 * module that is down is restarted, so no other user loses anything. Between attempts
 * (module.c, pause_after_locked) it fails at once, with a message that says the token is
 * unreachable. 0 when it was not lost or runs again. */
int hsmtls_p11_module_restart_if_lost(hsmtls_p11_module *m);
/* A token whose keys this process holds is not in its slot any more: starts its module
 * afresh to look for it (a remote module lists no token until it is started again once
 * its server is back), with the same pauses. 0 when it is back. */
int hsmtls_p11_module_restart_for(hsmtls_p11_token *t);
int hsmtls_p11_module_tokens(hsmtls_p11_module *m, int refresh);
/* Starts the module afresh (C_Finalize and C_Initialize through p11-kit), when the core
 * holds no session or object of it (SoftHSM2 lists only the tokens it read at
 * C_Initialize). 1: the module really restarted; 0: skipped, or another user in the
 * process keeps it initialised so it could not restart (m->shared says which); -1:
 * failed (the module is then unusable). */
int hsmtls_p11_module_reinit_idle(hsmtls_p11_module *m);

/* session.c: the pool. acquire may open a session; release returns it, or closes
 * it when `broken`. */
int hsmtls_p11_session_acquire(hsmtls_p11_token *t, CK_SESSION_HANDLE *s);
/* A new R/W session (read-only when the token is write-protected), outside the pool. */
CK_RV hsmtls_p11_session_open(hsmtls_p11_token *t, CK_SESSION_HANDLE *s);
void hsmtls_p11_session_release(hsmtls_p11_token *t, CK_SESSION_HANDLE s, int broken);
/* Forgets sessions, login and handles of an older epoch (caller holds lock). */
void hsmtls_p11_token_reset_locked(hsmtls_p11_token *t);
/* What a PKCS#11 answer means for recovery (session.c). */
enum hsmtls_p11_failure {
    HSMTLS_P11_FINE = 0,          /* CKR_OK, or nothing recovery can change */
    HSMTLS_P11_SESSION_LOST,      /* the session (or its login) is gone: a new one */
    HSMTLS_P11_HANDLE_STALE,      /* the object handle is gone: look the object up again */
    HSMTLS_P11_MODULE_DOWN,       /* the module must be started afresh (a remote HSM that
                                     restarted: p11-kit's client answers CKR_DEVICE_ERROR
                                     until then; another user finalised it) */
    HSMTLS_P11_TOKEN_GONE,        /* removed, or its slot went away: sessions are gone,
                                     and it may come back */
    HSMTLS_P11_TRANSIENT,         /* the token is short of memory or sessions: once more */
};
enum hsmtls_p11_failure hsmtls_p11_classify(CK_RV rv);
/* " (the token is unreachable: ...)" for an answer that means so, else "": for messages. */
const char *hsmtls_p11_unreachable_note(CK_RV rv);
/* A session that must not go back to the pool after this answer. */
int hsmtls_p11_session_is_lost(CK_RV rv);

/* token.c */
int hsmtls_p11_token_relogin(hsmtls_p11_token *t);
CK_RV hsmtls_p11_token_context_login(hsmtls_p11_token *t, CK_SESSION_HANDLE s);
/* Logs in again with the kept PIN when a fork or a lost session dropped the login. */
int hsmtls_p11_token_ensure_login(hsmtls_p11_token *t);
void hsmtls_p11_token_drop_sessions(hsmtls_p11_token *t);
void hsmtls_p11_token_free_queries(hsmtls_p11_token *t);

/* pin.c: the PIN for a login, from the URI, the lookup options or the callback, in
 * that order. Returns a malloc'd string (cleanse and free), NULL with *none set when
 * no source gave one, NULL with a message on error. */
char *hsmtls_p11_pin_obtain(hsmtls_p11_token *t, const hsmtls_p11_uri *uri,
                            const hsmtls_p11_lookup *opt, int *none);
void hsmtls_p11_pin_free(char *pin);

/* key_cache.c. The handle an operation on `o` uses in session `s`: its copy inside the
 * token when the cache has one (or, when `may_copy`, now makes one), else its own (found
 * again first when stale). *on_copy says which, for a stale answer to drop the right
 * one. An operation's retry passes may_copy 0: recovering costs no more calls than
 * without the cache, and the next operation makes the copy. */
CK_RV hsmtls_p11_key_handle(hsmtls_p11_object *o, CK_SESSION_HANDLE s, int may_copy,
                            CK_OBJECT_HANDLE *h, int *on_copy);
void hsmtls_p11_key_copy_stale(hsmtls_p11_object *o);
/* session.c: the count of open sessions, kept by whoever opens or closes one. */
void hsmtls_p11_token_sessions_opened(hsmtls_p11_token *t, size_t n);
void hsmtls_p11_token_sessions_closed(hsmtls_p11_token *t, size_t n);
/* Closes the keeper, destroying the copies (caller holds no lock). */
void hsmtls_p11_token_drop_keeper(hsmtls_p11_token *t);

/* lanes.c: the object an operation on `key` runs on in this thread: `key` itself, or
 * the same key on one of its module's lanes. */
hsmtls_p11_object *hsmtls_p11_object_lane(hsmtls_p11_object *key);
/* How many connections the module should have (HSMTLS_P11_LANES, or 4 for p11-kit's
 * client), read when it is opened. */
size_t hsmtls_p11_lanes_wanted(const hsmtls_p11_module *m);
/* object.c: the object on `other` (a lane's token) with `o`'s class, label, id and key. */
hsmtls_p11_object *hsmtls_p11_object_twin(hsmtls_p11_object *o, hsmtls_p11_token *other);

/* attrs.c */
int hsmtls_p11_object_read_attributes(hsmtls_p11_object *o, CK_SESSION_HANDLE s);
void hsmtls_p11_object_free(hsmtls_p11_object *o);

/* object.c */
CK_RV hsmtls_p11_object_relocate(hsmtls_p11_object *o, CK_SESSION_HANDLE s);
/* The kept object with this handle, or a new one read from the token. Caller holds
 * no lock: reading attributes talks to the token. NULL without *failed set: a kind of
 * object the core skips. */
hsmtls_p11_object *hsmtls_p11_object_for_handle(hsmtls_p11_token *t, CK_SESSION_HANDLE s,
                                               CK_OBJECT_HANDLE h, int *failed);
/* An EC or EdDSA private key has no CKA_EC_POINT: borrows it from its public key or
 * certificate. */
void hsmtls_p11_object_complete_public(hsmtls_p11_object *o);
/* Drops the lookup cache after the token's contents changed (caller holds no lock). */
void hsmtls_p11_token_forget_queries(hsmtls_p11_token *t);

#endif
