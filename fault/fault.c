/* hsmtls-fault: a PKCS#11 module that forwards every call to a real one
 * (HSMTLS_FAULT_MODULE) and misbehaves on purpose as a plan says (HSMTLS_FAULT):
 * latency, errors, hangs, a removed token, a device that stays down until it is
 * initialised again, lost sessions and stale object handles. docs/fault.md.
 *
 * Sessions and object handles: the module hands out handles of its own and keeps what
 * real handle each stands for, so a session it invalidated stays invalid even when the
 * real module reuses the number, and an object handle made stale stays stale while the
 * same object found again gets a new one. Object handles are translated only when the
 * plan has objects:stale; otherwise they pass through as they are.
 *
 * Threads: one mutex guards the state; calls that use a session hold a read lock on
 * `gate` while the real module runs, and whatever closes real sessions under a caller
 * (invalidation, removal, C_Finalize) takes it for writing, so no call runs on a real
 * session closed (and perhaps reused) under it. Sleeps happen outside both. */
#define _GNU_SOURCE /* pthread_rwlock writer preference */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plan.h"

enum sess_state { SESS_LIVE, SESS_REMOVED, SESS_LOST, SESS_CLOSED };

struct sess {
    CK_SESSION_HANDLE real;
    CK_SLOT_ID slot;
    unsigned char state;
};

static struct {
    pthread_mutex_t lock;
    pthread_rwlock_t gate;
    int initialised, real_owned;
    void *dl;
    CK_FUNCTION_LIST_PTR real;
    char *plan_text;
    struct fault_plan plan;
    int map_objects;
    uint64_t t0;
    int t0_set;
    int broken;  /* device:down happened: CKR_DEVICE_ERROR until C_Finalize + C_Initialize */
    int removed; /* token:remove holds now */
    /* Our session handle h stands for sessions[h - sess_base - 1]. */
    struct sess *sessions;
    size_t n_sess, cap_sess, lo_sess;
    CK_ULONG sess_base;
    /* With objects:stale, our object handle h stands for objects[h - obj_base - 1]
     * (0: destroyed); handles at or below obj_base are stale. */
    CK_OBJECT_HANDLE *objects;
    size_t n_obj, cap_obj;
    CK_ULONG obj_base;
    unsigned long opened, closed;
    int log_fd;
    char *control;
    char state[64];
    uint64_t state_read;
    int state_read_once;
    uint64_t rng;
} G = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP,
    .log_fd = -1,
};

static CK_FUNCTION_LIST function_list;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static double since_start(void)
{
    return G.t0_set ? (double)(now_ns() - G.t0) / 1e9 : 0.0;
}

/* One line to HSMTLS_FAULT_LOG, written at once (O_APPEND), so processes sharing the
 * file do not interleave: "hsmtls-fault[PID] +SECONDSs TEXT". */
static void log_line(const char *fmt, ...)
{
    int fd = G.log_fd;
    if (fd < 0)
        return;
    char line[700];
    int n = snprintf(line, sizeof line, "hsmtls-fault[%ld] +%.3fs ", (long)getpid(), since_start());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(fd, line, len);
    (void)w;
}

/* Called with the lock held. */
static void log_sessions(const char *why)
{
    log_line("sessions: opened %lu closed %lu open %lu (%s)", G.opened, G.closed, G.opened - G.closed, why);
}

static const char *rv_text(CK_RV rv, char *buf, size_t size)
{
    const char *name = fault_rv_name(rv);
    if (name)
        return name;
    snprintf(buf, size, "0x%lx", (unsigned long)rv);
    return buf;
}

/* The control file's word, re-read at most every 50 ms. Lock held. */
static const char *control_state(uint64_t now)
{
    if (!G.control)
        return "";
    if (G.state_read_once && now - G.state_read < 50000000ULL)
        return G.state;
    G.state_read_once = 1;
    G.state_read = now;
    G.state[0] = '\0';
    int fd = open(G.control, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return G.state;
    ssize_t n = read(fd, G.state, sizeof G.state - 1);
    close(fd);
    if (n < 0)
        n = 0;
    G.state[n] = '\0';
    char *s = G.state;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strcspn(s, " \t\r\n");
    memmove(G.state, s, len);
    G.state[len] = '\0';
    return G.state;
}

static uint64_t random_below(uint64_t bound)
{
    G.rng ^= G.rng << 13;
    G.rng ^= G.rng >> 7;
    G.rng ^= G.rng << 17;
    return bound ? G.rng % (bound + 1) : 0;
}

/* ---- sessions and objects ------------------------------------------------------------ */

static struct sess *sess_find(CK_SESSION_HANDLE h)
{
    if (h <= G.sess_base || h - G.sess_base > G.n_sess)
        return NULL;
    return &G.sessions[h - G.sess_base - 1];
}

/* Forgets every session and object handle: the ones given out before answer invalid. */
static void handles_reset(void)
{
    G.sess_base += G.n_sess;
    G.n_sess = G.lo_sess = 0;
    G.obj_base += G.n_obj;
    G.n_obj = 0;
}

/* Closes every live session in the real module (all slots, or only `slot` when
 * one_slot), marking them `to`. Takes the gate for writing: no call runs on them. */
static unsigned long close_sessions(enum sess_state to, int one_slot, CK_SLOT_ID slot, const char *why)
{
    pthread_rwlock_wrlock(&G.gate);
    pthread_mutex_lock(&G.lock);
    size_t cap = G.n_sess - G.lo_sess, k = 0;
    CK_SESSION_HANDLE *reals = cap ? malloc(cap * sizeof *reals) : NULL;
    for (size_t i = G.lo_sess; i < G.n_sess; i++) {
        struct sess *s = &G.sessions[i];
        if (s->state != SESS_LIVE || (one_slot && s->slot != slot))
            continue;
        s->state = (unsigned char)to;
        if (reals)
            reals[k++] = s->real;
    }
    while (G.lo_sess < G.n_sess && G.sessions[G.lo_sess].state == SESS_CLOSED)
        G.lo_sess++;
    G.closed += k;
    CK_FUNCTION_LIST_PTR real = G.real;
    if (k && why)
        log_sessions(why);
    pthread_mutex_unlock(&G.lock);
    for (size_t i = 0; i < k; i++)
        real->C_CloseSession(reals[i]);
    pthread_rwlock_unlock(&G.gate);
    free(reals);
    return k;
}

/* ---- a call's life ------------------------------------------------------------------- */

struct call {
    int fn;
    int gated;       /* holds the gate for reading */
    int removed;     /* token:remove held at the start of the call */
    int rule_error;  /* the answer is an error=... rule's */
    char fault[200]; /* what was injected, for the log; "" for nothing */
};

static CK_RV injected(struct call *c, CK_RV rv, const char *why)
{
    char buf[24];
    if (!c->fault[0])
        snprintf(c->fault, sizeof c->fault, "%s (%s)", rv_text(rv, buf, sizeof buf), why);
    return rv;
}

/* Everything the plan does before a call reaches the real module: counts the call for
 * every rule, handles state changes and events, sleeps, and answers an injected error.
 * CKR_OK: go on to the real module. */
static CK_RV call_begin(struct call *c, int fn)
{
    memset(c, 0, sizeof *c);
    c->fn = fn;
    pthread_mutex_lock(&G.lock);
    if (!G.initialised) {
        pthread_mutex_unlock(&G.lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    uint64_t now = now_ns(), t = now - G.t0, sleep = 0;
    const char *state = control_state(now);
    int remove = 0, down = 0, invalidate = 0, stale = 0;
    const struct fault_rule *error = NULL;
    for (size_t i = 0; i < G.plan.n; i++) {
        struct fault_rule *r = &G.plan.rules[i];
        if (!fault_rule_holds(r, fn, t, state))
            continue;
        switch (r->target) {
        case FAULT_T_TOKEN_REMOVE: remove = 1; break;
        case FAULT_T_DEVICE_DOWN: down = 1; break;
        case FAULT_T_SESSIONS: invalidate = r->position; break;
        case FAULT_T_OBJECTS: stale = r->position; break;
        case FAULT_T_FUNCTION:
        case FAULT_T_ALL:
            if (r->action == FAULT_A_ERROR && !error) {
                error = r;
            } else if (r->action == FAULT_A_DELAY || r->action == FAULT_A_HANG) {
                uint64_t d = r->delay_ns + random_below(r->jitter_ns);
                sleep += d;
                log_line("%s: %s %.1fms (rule %d)", fault_function_name(fn),
                         r->action == FAULT_A_HANG ? "hang" : "delay", (double)d / 1e6, r->position);
            }
            break;
        }
    }
    int remove_starts = 0;
    if (!fault_excluded_from_all(fn)) {
        remove_starts = remove && !G.removed;
        if (!remove && G.removed) {
            /* The token is back; the sessions it had are gone. */
            for (size_t i = G.lo_sess; i < G.n_sess; i++)
                if (G.sessions[i].state == SESS_REMOVED)
                    G.sessions[i].state = SESS_LOST;
            log_line("%s: token returned (sessions from before it was removed are invalid)", fault_function_name(fn));
        }
        G.removed = remove;
        if (down && !G.broken)
            log_line("%s: device down (CKR_DEVICE_ERROR until C_Finalize and C_Initialize)", fault_function_name(fn));
        G.broken |= down;
        if (stale && G.map_objects) {
            log_line("%s: objects stale: %zu object handles invalid (rule %d)", fault_function_name(fn), G.n_obj,
                     stale);
            G.obj_base += G.n_obj;
            G.n_obj = 0;
        }
    }
    pthread_mutex_unlock(&G.lock);
    if (remove_starts) {
        unsigned long k = close_sessions(SESS_REMOVED, 0, 0, "token removed");
        log_line("%s: token removed (%lu sessions lost)", fault_function_name(fn), k);
    }
    if (invalidate) {
        unsigned long k = close_sessions(SESS_LOST, 0, 0, "sessions invalidated");
        log_line("%s: sessions invalidated: %lu (rule %d)", fault_function_name(fn), k, invalidate);
    }
    if (sleep)
        sleep_ns(sleep);
    pthread_mutex_lock(&G.lock);
    int broken = G.broken;
    c->removed = G.removed;
    pthread_mutex_unlock(&G.lock);
    if (broken && fn != FAULT_FN_C_Initialize && fn != FAULT_FN_C_Finalize)
        return injected(c, CKR_DEVICE_ERROR, "device down");
    if (error) {
        char why[32];
        snprintf(why, sizeof why, "rule %d", error->position);
        c->rule_error = 1;
        return injected(c, error->error, why);
    }
    return CKR_OK;
}

static CK_RV call_end(struct call *c, CK_RV rv)
{
    if (c->gated)
        pthread_rwlock_unlock(&G.gate);
    if (c->fault[0])
        log_line("%s: %s", fault_function_name(c->fn), c->fault);
    return rv;
}

/* Takes the gate and replaces our session handle by the real one. */
static CK_RV session_in(struct call *c, CK_SESSION_HANDLE *h)
{
    pthread_rwlock_rdlock(&G.gate);
    c->gated = 1;
    pthread_mutex_lock(&G.lock);
    struct sess *s = sess_find(*h);
    CK_RV rv = CKR_OK;
    if (!s || s->state == SESS_CLOSED)
        rv = CKR_SESSION_HANDLE_INVALID;
    else if (s->state == SESS_REMOVED)
        rv = injected(c, G.removed ? CKR_DEVICE_REMOVED : CKR_SESSION_HANDLE_INVALID, "token removed");
    else if (s->state == SESS_LOST)
        rv = injected(c, CKR_SESSION_HANDLE_INVALID, "session lost");
    else
        *h = s->real;
    pthread_mutex_unlock(&G.lock);
    return rv;
}

/* Our object handle to the real one, when the plan translates them (0 passes). */
static CK_RV object_in(struct call *c, CK_OBJECT_HANDLE *h, CK_RV invalid)
{
    if (!G.map_objects || *h == CK_INVALID_HANDLE)
        return CKR_OK;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&G.lock);
    if (*h > G.obj_base && *h - G.obj_base <= G.n_obj && G.objects[*h - G.obj_base - 1])
        *h = G.objects[*h - G.obj_base - 1];
    else if (*h <= G.obj_base)
        rv = injected(c, invalid, "object handle stale");
    else
        rv = invalid;
    pthread_mutex_unlock(&G.lock);
    return rv;
}

/* The real module's object handles to ours: the same object keeps its handle until
 * the handles go stale, then gets a new one. */
static void objects_out(CK_OBJECT_HANDLE *h, CK_ULONG n)
{
    if (!G.map_objects)
        return;
    pthread_mutex_lock(&G.lock);
    for (CK_ULONG i = 0; i < n; i++) {
        size_t k;
        for (k = 0; k < G.n_obj && G.objects[k] != h[i]; k++)
            ;
        if (k == G.n_obj) {
            if (G.n_obj == G.cap_obj) {
                size_t cap = G.cap_obj ? 2 * G.cap_obj : 64;
                CK_OBJECT_HANDLE *more = realloc(G.objects, cap * sizeof *more);
                if (!more)
                    abort(); /* a test module out of memory: nothing sensible to answer */
                G.objects = more;
                G.cap_obj = cap;
            }
            G.objects[G.n_obj++] = h[i];
        }
        h[i] = G.obj_base + k + 1;
    }
    pthread_mutex_unlock(&G.lock);
}

static void object_forget(CK_OBJECT_HANDLE h)
{
    if (!G.map_objects)
        return;
    pthread_mutex_lock(&G.lock);
    if (h > G.obj_base && h - G.obj_base <= G.n_obj)
        G.objects[h - G.obj_base - 1] = 0;
    pthread_mutex_unlock(&G.lock);
}

/* A function that returns an error ends the operation it belonged to (PKCS#11 2.40,
 * 5.2: every error but CKR_BUFFER_TOO_SMALL ends it), so after an injected error the
 * caller may start another one on the same session. The real module never saw the
 * failed call, so its operation is ended here with scratch data: the multi-part final
 * call, else the single-part call on empty input (a mechanism that refuses empty input
 * may leave it active: docs/fault.md, limits). */
static int ends_operation(int fn)
{
    switch (fn) {
    case FAULT_FN_C_Sign: case FAULT_FN_C_SignUpdate: case FAULT_FN_C_SignFinal:
    case FAULT_FN_C_Encrypt: case FAULT_FN_C_EncryptUpdate: case FAULT_FN_C_EncryptFinal:
    case FAULT_FN_C_Decrypt: case FAULT_FN_C_DecryptUpdate: case FAULT_FN_C_DecryptFinal:
    case FAULT_FN_C_Digest: case FAULT_FN_C_DigestUpdate: case FAULT_FN_C_DigestKey: case FAULT_FN_C_DigestFinal:
    case FAULT_FN_C_Verify: case FAULT_FN_C_VerifyUpdate: case FAULT_FN_C_VerifyFinal:
    case FAULT_FN_C_SignRecover: case FAULT_FN_C_VerifyRecover:
        return 1;
    default:
        return 0;
    }
}

static void end_operation(int fn, CK_SESSION_HANDLE s)
{
    static const CK_BYTE none[1];
    CK_BYTE out[8192];
    CK_ULONG len = sizeof out;
    CK_FUNCTION_LIST_PTR f = G.real;
    CK_BYTE_PTR in = (CK_BYTE_PTR)none;
    switch (fn) {
    case FAULT_FN_C_Sign: case FAULT_FN_C_SignUpdate: case FAULT_FN_C_SignFinal:
        if (f->C_SignFinal(s, out, &len) != CKR_OK && (len = sizeof out))
            f->C_Sign(s, in, 0, out, &len);
        break;
    case FAULT_FN_C_Encrypt: case FAULT_FN_C_EncryptUpdate: case FAULT_FN_C_EncryptFinal:
        if (f->C_EncryptFinal(s, out, &len) != CKR_OK && (len = sizeof out))
            f->C_Encrypt(s, in, 0, out, &len);
        break;
    case FAULT_FN_C_Decrypt: case FAULT_FN_C_DecryptUpdate: case FAULT_FN_C_DecryptFinal:
        if (f->C_DecryptFinal(s, out, &len) != CKR_OK && (len = sizeof out))
            f->C_Decrypt(s, in, 0, out, &len);
        break;
    case FAULT_FN_C_Digest: case FAULT_FN_C_DigestUpdate: case FAULT_FN_C_DigestKey: case FAULT_FN_C_DigestFinal:
        if (f->C_DigestFinal(s, out, &len) != CKR_OK && (len = sizeof out))
            f->C_Digest(s, in, 0, out, &len);
        break;
    case FAULT_FN_C_Verify: case FAULT_FN_C_VerifyUpdate: case FAULT_FN_C_VerifyFinal:
        if (f->C_VerifyFinal(s, in, 0) == CKR_OPERATION_NOT_INITIALIZED)
            f->C_Verify(s, in, 0, in, 0);
        break;
    case FAULT_FN_C_SignRecover:
        f->C_SignRecover(s, in, 0, out, &len);
        break;
    case FAULT_FN_C_VerifyRecover:
        f->C_VerifyRecover(s, in, 0, out, &len);
        break;
    }
}

/* ---- the generic wrappers, from functions.h ------------------------------------------- */

#define IN_HANDLE(p, invalid) \
    if (rv == CKR_OK)         \
        rv = object_in(&c, &p, invalid);
#define IN_OBJ(p) IN_HANDLE(p, CKR_OBJECT_HANDLE_INVALID)
#define IN_KEY(p) IN_HANDLE(p, CKR_KEY_HANDLE_INVALID)
#define IN_DESTROYED(p)                 \
    CK_OBJECT_HANDLE ours_##p = p;      \
    IN_OBJ(p)
#define FORGET_OBJ(p) object_forget(ours_##p);
#define OUT_OBJ(p) objects_out(p, 1);
#define OUT_FOUND(p, n) objects_out(p, *n);

#define WRAP_S(name, decl, args, before, after)  \
    static CK_RV w_##name decl                   \
    {                                            \
        struct call c;                           \
        CK_RV rv = call_begin(&c, FAULT_FN_##name), answer = CKR_OK; \
        if (c.rule_error && ends_operation(FAULT_FN_##name)) { \
            answer = rv;                         \
            rv = CKR_OK;                         \
        }                                        \
        if (rv == CKR_OK)                        \
            rv = session_in(&c, &hSession);      \
        if (answer != CKR_OK) {                  \
            if (rv == CKR_OK)                    \
                end_operation(FAULT_FN_##name, hSession); \
            return call_end(&c, answer);         \
        }                                        \
        before                                   \
        if (rv == CKR_OK) {                      \
            rv = G.real->name args;              \
            if (rv == CKR_OK) {                  \
                after                            \
            }                                    \
        }                                        \
        return call_end(&c, rv);                 \
    }
#define WRAP_T(name, decl, args, before, after)                                \
    static CK_RV w_##name decl                                                 \
    {                                                                          \
        struct call c;                                                         \
        CK_RV rv = call_begin(&c, FAULT_FN_##name);                            \
        if (rv == CKR_OK && c.removed)                                         \
            rv = injected(&c, CKR_TOKEN_NOT_PRESENT, "token removed");         \
        if (rv == CKR_OK)                                                      \
            rv = G.real->name args;                                            \
        return call_end(&c, rv);                                               \
    }
#define WRAP_N(name, decl, args, before, after)     \
    static CK_RV w_##name decl                     \
    {                                              \
        struct call c;                             \
        CK_RV rv = call_begin(&c, FAULT_FN_##name); \
        if (rv == CKR_OK)                          \
            rv = G.real->name args;                \
        return call_end(&c, rv);                   \
    }
#define WRAP_CUSTOM(name, decl, args, before, after) static CK_RV w_##name decl;
#define WRAP(name, kind, decl, args, before, after) WRAP_##kind(name, decl, args, before, after)
HSMTLS_FAULT_FUNCTIONS(WRAP)

/* ---- the functions written by hand ---------------------------------------------------- */

static void after_fork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_rwlock_t fresh_gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
    G.lock = fresh;
    G.gate = fresh_gate;
    /* The parent's sessions are the parent's: forget them (nothing to close here), and
     * count this process from zero. The caller initialises us again, as PKCS#11 wants. */
    G.initialised = 0;
    G.broken = G.removed = 0;
    handles_reset();
    G.opened = G.closed = 0;
    for (size_t i = 0; i < G.plan.n; i++) {
        G.plan.rules[i].calls = 0;
        G.plan.rules[i].gate_open = 0;
    }
    G.rng ^= (uint64_t)getpid() << 32;
}

static void before_fork(void) { pthread_mutex_lock(&G.lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&G.lock); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void setup_once(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    G.rng = now_ns() ^ ((uint64_t)getpid() << 20) ^ 0x9e3779b97f4a7c15ULL;
}

static int same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Loads the real module once (never unloaded: callers may hold its pointers). Lock held. */
static CK_RV load_real(void)
{
    if (G.real)
        return CKR_OK;
    const char *path = getenv("HSMTLS_FAULT_MODULE");
    if (!path || !*path) {
        fprintf(stderr, "hsmtls-fault: HSMTLS_FAULT_MODULE is not set: name the real PKCS#11 module this one "
                        "wraps (e.g. HSMTLS_FAULT_MODULE=/usr/lib/softhsm/libsofthsm2.so)\n");
        return CKR_GENERAL_ERROR;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "hsmtls-fault: HSMTLS_FAULT_MODULE=%s: cannot load it: %s\n", path, dlerror());
        return CKR_GENERAL_ERROR;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR list = NULL;
    if (!get || get(&list) != CKR_OK || !list) {
        fprintf(stderr, "hsmtls-fault: HSMTLS_FAULT_MODULE=%s: no usable C_GetFunctionList: not a PKCS#11 module\n",
                path);
        dlclose(dl);
        return CKR_GENERAL_ERROR;
    }
    if (list == &function_list) {
        fprintf(stderr, "hsmtls-fault: HSMTLS_FAULT_MODULE=%s is hsmtls-fault itself: name the real module\n", path);
        dlclose(dl);
        return CKR_GENERAL_ERROR;
    }
    G.dl = dl;
    G.real = list;
    return CKR_OK;
}

static CK_RV w_C_Initialize(CK_VOID_PTR pInitArgs)
{
    pthread_once(&once, setup_once);
    pthread_mutex_lock(&G.lock);
    if (G.initialised) {
        pthread_mutex_unlock(&G.lock);
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    /* The plan, parsed again only when it changed: its counts go on across
     * C_Finalize + C_Initialize (so C_Initialize:error=...@n=1 fails only the first). */
    /* A variable that is unset keeps what an earlier C_Initialize of this process (or
     * of its parent, before a fork) read: nginx clears its workers' environment. */
    const char *text = getenv("HSMTLS_FAULT");
    if (!text && G.plan_text)
        text = G.plan_text;
    if (!G.plan_text || !same_text(text, G.plan_text)) {
        struct fault_plan plan;
        char err[600];
        if (fault_plan_parse(text, &plan, err, sizeof err) < 0) {
            pthread_mutex_unlock(&G.lock);
            fprintf(stderr, "hsmtls-fault: %s\n", err);
            return CKR_ARGUMENTS_BAD;
        }
        fault_plan_free(&G.plan);
        free(G.plan_text);
        G.plan = plan;
        G.plan_text = strdup(text ? text : "");
    }
    CK_RV rv = load_real();
    if (rv != CKR_OK) {
        pthread_mutex_unlock(&G.lock);
        return rv;
    }
    const char *log = getenv("HSMTLS_FAULT_LOG");
    if (log) {
        if (G.log_fd >= 0)
            close(G.log_fd);
        G.log_fd = *log ? open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
        if (*log && G.log_fd < 0)
            fprintf(stderr, "hsmtls-fault: HSMTLS_FAULT_LOG=%s: %s (logging nothing)\n", log, strerror(errno));
    }
    const char *control = getenv("HSMTLS_FAULT_CONTROL");
    if (control) {
        free(G.control);
        G.control = *control ? strdup(control) : NULL;
    }
    G.state_read_once = 0;
    if (!G.t0_set) {
        G.t0 = now_ns();
        G.t0_set = 1;
    }
    /* Rules aimed at C_Initialize itself (C_Initialize:error=CKR_DEVICE_ERROR@n=1). */
    uint64_t t = now_ns() - G.t0, sleep = 0;
    const struct fault_rule *error = NULL;
    for (size_t i = 0; i < G.plan.n; i++) {
        struct fault_rule *r = &G.plan.rules[i];
        if (fault_rule_holds(r, FAULT_FN_C_Initialize, t, control_state(now_ns()))) {
            if (r->action == FAULT_A_ERROR && !error)
                error = r;
            else if (r->action != FAULT_A_ERROR)
                sleep += r->delay_ns + random_below(r->jitter_ns);
        }
    }
    pthread_mutex_unlock(&G.lock);
    if (sleep)
        sleep_ns(sleep);
    if (error) {
        char buf[24];
        log_line("C_Initialize: %s (rule %d)", rv_text(error->error, buf, sizeof buf), error->position);
        return error->error;
    }
    rv = G.real->C_Initialize(pInitArgs);
    int owned = rv == CKR_OK;
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
        rv = CKR_OK; /* another user in the process holds the real module: never finalise it */
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&G.lock);
    G.real_owned = owned;
    G.map_objects = fault_plan_has(&G.plan, FAULT_T_OBJECTS);
    G.broken = G.removed = 0;
    handles_reset();
    G.initialised = 1;
    pthread_mutex_unlock(&G.lock);
    return CKR_OK;
}

static CK_RV w_C_Finalize(CK_VOID_PTR pReserved)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_Finalize);
    if (rv != CKR_OK)
        return call_end(&c, rv);
    close_sessions(SESS_CLOSED, 0, 0, NULL);
    pthread_rwlock_wrlock(&G.gate);
    pthread_mutex_lock(&G.lock);
    int owned = G.real_owned;
    G.initialised = 0;
    G.broken = G.removed = 0;
    handles_reset();
    log_sessions("C_Finalize");
    pthread_mutex_unlock(&G.lock);
    rv = owned ? G.real->C_Finalize(pReserved) : CKR_OK;
    pthread_rwlock_unlock(&G.gate);
    return call_end(&c, rv);
}

static CK_RV w_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_GetSlotList);
    if (rv == CKR_OK && c.removed && tokenPresent) {
        if (!pulCount)
            return call_end(&c, CKR_ARGUMENTS_BAD);
        *pulCount = 0;
        snprintf(c.fault, sizeof c.fault, "no slot with a token (token removed)");
        return call_end(&c, CKR_OK);
    }
    if (rv == CKR_OK)
        rv = G.real->C_GetSlotList(tokenPresent, pSlotList, pulCount);
    return call_end(&c, rv);
}

static CK_RV w_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_GetSlotInfo);
    if (rv == CKR_OK)
        rv = G.real->C_GetSlotInfo(slotID, pInfo);
    if (rv == CKR_OK && c.removed && (pInfo->flags & CKF_TOKEN_PRESENT)) {
        pInfo->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
        snprintf(c.fault, sizeof c.fault, "CKF_TOKEN_PRESENT cleared (token removed)");
    }
    return call_end(&c, rv);
}

static CK_RV w_C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                             CK_SESSION_HANDLE_PTR phSession)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_OpenSession);
    if (rv == CKR_OK && c.removed)
        rv = injected(&c, CKR_TOKEN_NOT_PRESENT, "token removed");
    if (rv == CKR_OK && !phSession)
        rv = CKR_ARGUMENTS_BAD;
    CK_SESSION_HANDLE real = 0;
    if (rv == CKR_OK)
        rv = G.real->C_OpenSession(slotID, flags, pApplication, Notify, &real);
    if (rv != CKR_OK)
        return call_end(&c, rv);
    pthread_mutex_lock(&G.lock);
    if (G.n_sess == G.cap_sess) {
        size_t cap = G.cap_sess ? 2 * G.cap_sess : 64;
        struct sess *more = realloc(G.sessions, cap * sizeof *more);
        if (!more) {
            pthread_mutex_unlock(&G.lock);
            G.real->C_CloseSession(real);
            return call_end(&c, CKR_HOST_MEMORY);
        }
        G.sessions = more;
        G.cap_sess = cap;
    }
    G.sessions[G.n_sess] = (struct sess){ real, slotID, SESS_LIVE };
    *phSession = G.sess_base + ++G.n_sess;
    G.opened++;
    log_sessions("C_OpenSession");
    pthread_mutex_unlock(&G.lock);
    return call_end(&c, CKR_OK);
}

static CK_RV w_C_CloseSession(CK_SESSION_HANDLE hSession)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_CloseSession);
    if (rv != CKR_OK)
        return call_end(&c, rv);
    CK_SESSION_HANDLE ours = hSession;
    rv = session_in(&c, &hSession);
    if (rv == CKR_DEVICE_REMOVED) {
        /* Gone with the token (closed in the real module then): forget it. */
        pthread_mutex_lock(&G.lock);
        sess_find(ours)->state = SESS_CLOSED;
        pthread_mutex_unlock(&G.lock);
    }
    if (rv != CKR_OK)
        return call_end(&c, rv);
    rv = G.real->C_CloseSession(hSession);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&G.lock);
        struct sess *s = sess_find(ours);
        if (s && s->state == SESS_LIVE) {
            s->state = SESS_CLOSED;
            G.closed++;
            while (G.lo_sess < G.n_sess && G.sessions[G.lo_sess].state == SESS_CLOSED)
                G.lo_sess++;
        }
        log_sessions("C_CloseSession");
        pthread_mutex_unlock(&G.lock);
    }
    return call_end(&c, rv);
}

static CK_RV w_C_CloseAllSessions(CK_SLOT_ID slotID)
{
    struct call c;
    CK_RV rv = call_begin(&c, FAULT_FN_C_CloseAllSessions);
    if (rv != CKR_OK)
        return call_end(&c, rv);
    if (c.removed) {
        /* Its sessions went with the token: forget them. */
        pthread_mutex_lock(&G.lock);
        for (size_t i = G.lo_sess; i < G.n_sess; i++)
            if (G.sessions[i].slot == slotID && G.sessions[i].state == SESS_REMOVED)
                G.sessions[i].state = SESS_CLOSED;
        pthread_mutex_unlock(&G.lock);
        return call_end(&c, CKR_OK);
    }
    /* Ours one by one (counted), then the real call for any the module has besides. */
    close_sessions(SESS_CLOSED, 1, slotID, NULL);
    pthread_mutex_lock(&G.lock);
    log_sessions("C_CloseAllSessions");
    pthread_mutex_unlock(&G.lock);
    rv = G.real->C_CloseAllSessions(slotID);
    return call_end(&c, rv);
}

/* ---- the function list -------------------------------------------------------------------- */

#define ENTRY(name, kind, decl, args, before, after) .name = w_##name,
static CK_FUNCTION_LIST function_list = {
    .version = { 2, 40 },
    HSMTLS_FAULT_FUNCTIONS(ENTRY)
};

static CK_RV w_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &function_list;
    return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    pthread_once(&once, setup_once);
    return w_C_GetFunctionList(ppFunctionList);
}
