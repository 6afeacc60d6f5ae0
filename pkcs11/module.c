/* Loading modules (by path, from p11-kit's registry, from HSMTLS_PKCS11_MODULE),
 * initialising each once per process through p11-kit's managed loading, and
 * re-initialising after a fork. Modules are never finalised at exit: SoftHSM2 can crash
 * when finalised while its static destructors run. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/p11-kit.h>

#ifndef HSMTLS_DEFAULT_MODULE
#define HSMTLS_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

_Atomic unsigned hsmtls_p11_fork_generation;

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static hsmtls_p11_module *modules;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { atomic_fetch_add(&hsmtls_p11_fork_generation, 1); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static CK_RV initialize(hsmtls_p11_module *m)
{
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = P11_CALL(m, C_Initialize, &args);
    /* p11-kit answers OK when another user initialised the module first (and then never
     * finalises it for us); this only means our own view was initialised already. */
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
        rv = CKR_OK;
    return rv;
}

CK_RV hsmtls_p11_call_seen(hsmtls_p11_module *m, CK_RV rv)
{
    if (rv != CKR_OK && hsmtls_p11_classify(rv) == HSMTLS_P11_MODULE_DOWN)
        atomic_store(&m->lost, 1);
    return rv;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned hsmtls_p11_module_epoch(hsmtls_p11_module *m)
{
    hsmtls_p11_module_check_fork(m); /* a failure surfaces at the next call */
    return atomic_load(&m->epoch);
}

/* Forgets every token's sessions, login and handles: they belong to the old epoch. The
 * kept PIN stays, so the next operation logs in again with it. Caller holds m->lock. */
static void new_epoch_locked(hsmtls_p11_module *m)
{
    unsigned epoch = atomic_fetch_add(&m->epoch, 1) + 1;
    for (size_t i = 0; i < m->ntokens; i++) {
        hsmtls_p11_token *t = m->tokens[i];
        pthread_mutex_lock(&t->lock);
        hsmtls_p11_token_reset_locked(t);
        t->generation = epoch;
        pthread_mutex_unlock(&t->lock);
    }
}

/* After a restart attempt, the next one only after a pause: as long as the attempt
 * took while attempts are quick (p11-kit's client with its server away answers in
 * milliseconds: the next handshake after the HSM is back finds it), three times as long
 * (up to 4 s) once they are slow (a network HSM whose connection attempt takes seconds
 * must not stall every handshake: at most a quarter of the time goes to trying).
 * Meanwhile operations fail at once. Caller holds m->lock. */
static long pause_after_locked(hsmtls_p11_module *m, long long started, int failed)
{
    long long now = now_ms(), took = now - started;
    long long pause = took < 50 ? (took < 1 ? 1 : took) : (took * 3 > 4000 ? 4000 : took * 3);
    m->retry_at_ms = failed ? now + pause : 0;
    return (long)pause;
}

/* C_Finalize and C_Initialize; CKR_OK when the module runs again. Caller holds m->lock. */
static CK_RV start_again_locked(hsmtls_p11_module *m)
{
    /* Our view of it through p11-kit still counts as initialised: let it go first, so
     * that the C_Initialize reaches the module. */
    P11_CALL(m, C_Finalize, NULL);
    CK_RV rv = initialize(m);
    /* p11-kit still counts it initialised while another of its users holds it: then
     * only the module itself can be asked to start again. */
    CK_INFO info;
    if (rv == CKR_OK && P11_CALL_LIST(m->raw, C_GetInfo, &info) == CKR_CRYPTOKI_NOT_INITIALIZED) {
        CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
        rv = P11_CALL_LIST(m->raw, C_Initialize, &args);
    }
    if (rv == CKR_OK)
        new_epoch_locked(m);
    return rv;
}

/* Starts the module afresh and lists its tokens again (they follow it into whatever
 * slots it gives them now), when the pause after the last attempt is over. 1: done;
 * 0: not yet, *wait_ms to go; -1: failed, with a message. Caller holds restart_lock,
 * so threads wait for one attempt's outcome instead of restarting under it. */
static int restart_now(hsmtls_p11_module *m, long *wait_ms)
{
    long long started = now_ms();
    pthread_mutex_lock(&m->lock);
    *wait_ms = (long)(m->retry_at_ms - started);
    if (*wait_ms > 0) {
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    CK_RV rv = start_again_locked(m);
    if (rv != CKR_OK) {
        m->down_rv = rv;
        *wait_ms = pause_after_locked(m, started, 1);
        pthread_mutex_unlock(&m->lock);
        return hsmtls_p11_error_set(rv, "the token is unreachable: PKCS#11 module %s went down and "
                                    "did not start again (%s); next try in %ld ms", m->path,
                                    hsmtls_p11_rv_name(rv), *wait_ms);
    }
    pthread_mutex_unlock(&m->lock);
    int listed = hsmtls_p11_module_tokens(m, 1);
    pthread_mutex_lock(&m->lock);
    *wait_ms = pause_after_locked(m, started, listed != 0);
    if (listed == 0)
        atomic_store(&m->lost, 0);
    else
        m->down_rv = hsmtls_p11_error_rv() ? hsmtls_p11_error_rv() : CKR_DEVICE_ERROR;
    pthread_mutex_unlock(&m->lock);
    if (listed != 0)
        return hsmtls_p11_error_set(m->down_rv, "the token is unreachable: PKCS#11 module %s "
                                    "started again, but %s; next try in %ld ms", m->path,
                                    hsmtls_p11_error_message(), *wait_ms);
    return 1;
}

int hsmtls_p11_module_restart_if_lost(hsmtls_p11_module *m)
{
    if (!atomic_load(&m->lost))
        return 0;
    pthread_mutex_lock(&m->restart_lock);
    long wait_ms;
    int r = atomic_load(&m->lost) ? restart_now(m, &wait_ms) : 1;
    pthread_mutex_unlock(&m->restart_lock);
    if (r == 0)
        return hsmtls_p11_error_set(m->down_rv, "the token is unreachable: PKCS#11 module %s is "
                                    "down (%s); next try in %ld ms", m->path,
                                    hsmtls_p11_rv_name(m->down_rv), wait_ms);
    return r < 0 ? -1 : 0;
}

int hsmtls_p11_module_restart_for(hsmtls_p11_token *t)
{
    hsmtls_p11_module *m = t->module;
    pthread_mutex_lock(&m->restart_lock);
    long wait_ms;
    int r = restart_now(m, &wait_ms);
    pthread_mutex_unlock(&m->restart_lock);
    if (r < 0)
        return -1;
    if (r == 1 && t->present)
        return 0;
    if (r == 1) {
        /* Started, but still without it: the next look after the pause. */
        pthread_mutex_lock(&m->lock);
        m->retry_at_ms = now_ms() + wait_ms;
        pthread_mutex_unlock(&m->lock);
    }
    return hsmtls_p11_error_set(CKR_TOKEN_NOT_PRESENT, "the token is unreachable: PKCS#11 module %s "
                                "%s token \"%s\"; its module is started again to look for it in "
                                "%ld ms", m->path, r ? "started again without" : "does not list",
                                t->label, wait_ms);
}

int hsmtls_p11_module_check_fork(hsmtls_p11_module *m)
{
    unsigned gen = atomic_load(&hsmtls_p11_fork_generation);
    if (m->generation == gen)
        return 0;
    pthread_mutex_lock(&m->lock);
    int ret = 0, started = 0;
    if (m->generation != gen) {
        /* PKCS#11 says a child must C_Initialize before any use; handles from the
         * parent are meaningless in it. */
        CK_RV rv = initialize(m);
        if (rv != CKR_OK)
            ret = hsmtls_p11_error_set(rv, "re-initialising PKCS#11 module %s after fork: %s",
                                       m->path, hsmtls_p11_rv_name(rv));
        else {
            m->generation = gen;
            new_epoch_locked(m);
            started = 1;
        }
    }
    pthread_mutex_unlock(&m->lock);
    /* The child's module may number its slots otherwise (p11-kit's client, connected
     * anew to a server that restarted since the parent listed it): tokens follow. */
    if (started)
        hsmtls_p11_module_tokens(m, 1);
    return ret;
}

/* SoftHSM2 (2.6) reads its token directory once, in C_Initialize, and a C_Login in any
 * process rewrites that token's token.object (truncated under a lock, written after the
 * unlock): a process whose C_Initialize read it in that gap has no slot for the token
 * until C_Finalize and C_Initialize. Handles do not survive that, so it is done only
 * while the core holds no session or object of the module; the token locks are held so
 * no session opens meanwhile. The C_Finalize goes through p11-kit, which finalises the
 * module itself only when no other p11-kit user in the process holds it and p11-kit was
 * the one that initialised it: a restart never pulls the module from under GnuTLS, a
 * second provider or a library that initialised it before us. Whether it really
 * restarted is asked of the module itself. */
int hsmtls_p11_module_reinit_idle(hsmtls_p11_module *m)
{
    if (hsmtls_p11_module_check_fork(m) < 0)
        return -1;
    pthread_mutex_lock(&m->lock);
    int idle = 1;
    size_t locked = 0;
    while (idle && locked < m->ntokens) {
        hsmtls_p11_token *t = m->tokens[locked++];
        pthread_mutex_lock(&t->lock);
        idle = t->open_sessions == 0 && t->nidle == 0 && t->nobjects == 0;
    }
    CK_RV rv = CKR_OK;
    int restarted = 0;
    if (idle) {
        P11_CALL(m, C_Finalize, NULL);
        CK_INFO info;
        restarted = P11_CALL_LIST(m->raw, C_GetInfo, &info) == CKR_CRYPTOKI_NOT_INITIALIZED;
        m->shared = !restarted;
        rv = initialize(m);
        atomic_fetch_add(&m->epoch, 1); /* the tokens' locks are held: they reset lazily */
    }
    for (size_t i = 0; i < locked; i++)
        pthread_mutex_unlock(&m->tokens[i]->lock);
    pthread_mutex_unlock(&m->lock);
    if (rv != CKR_OK)
        return hsmtls_p11_error_set(rv, "re-initialising PKCS#11 module %s: %s", m->path,
                                    hsmtls_p11_rv_name(rv));
    return restarted;
}

static char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return strdup(slash ? slash + 1 : path);
}

/* p11-kit's last message, or a stand-in when it left none. */
static const char *p11_kit_reason(void)
{
    const char *msg = p11_kit_message();
    return msg && *msg ? msg : "not a loadable PKCS#11 module";
}

static hsmtls_p11_module *load_locked(const char *path, const char *name)
{
    for (hsmtls_p11_module *m = modules; m; m = m->next)
        if (strcmp(m->path, path) == 0)
            return m;

    /* Managed: p11-kit shares one loaded module among all its users in the process (it
     * finds an already loaded module by its function list) and counts initialisation. */
    CK_FUNCTION_LIST *fl = p11_kit_module_load(path, 0);
    if (!fl) {
        hsmtls_p11_error_set(CKR_GENERAL_ERROR, "cannot load PKCS#11 module %s: %s", path,
                             p11_kit_reason());
        return NULL;
    }
    CK_FUNCTION_LIST *raw = p11_kit_module_load(path, P11_KIT_MODULE_UNMANAGED);
    if (!raw) {
        hsmtls_p11_error_set(CKR_GENERAL_ERROR, "cannot load PKCS#11 module %s: %s", path,
                             p11_kit_reason());
        p11_kit_module_release(fl);
        return NULL;
    }
    hsmtls_p11_module *m = hsmtls_p11_module_open(path, name, fl, raw);
    if (!m) {
        p11_kit_module_release(raw);
        p11_kit_module_release(fl);
        return NULL;
    }
    m->next = modules;
    modules = m;
    return m;
}

hsmtls_p11_module *hsmtls_p11_module_open(const char *path, const char *name,
                                          CK_FUNCTION_LIST *fl, CK_FUNCTION_LIST *raw)
{
    hsmtls_p11_module *m = calloc(1, sizeof *m);
    if (!m) {
        hsmtls_p11_error_set(CKR_HOST_MEMORY, "cannot load PKCS#11 module %s: out of memory", path);
        return NULL;
    }
    m->path = strdup(path);
    m->name = name ? strdup(name) : base_name(path);
    m->fl = fl;
    m->raw = raw;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->restart_lock, NULL);
    pthread_mutex_init(&m->lanes_lock, NULL);
    m->generation = atomic_load(&hsmtls_p11_fork_generation);
    m->lanes_want = hsmtls_p11_lanes_wanted(m);
    CK_RV rv = initialize(m);
    if (rv == CKR_OK && (rv = P11_CALL(m, C_GetInfo, &m->info)) != CKR_OK)
        P11_CALL(m, C_Finalize, NULL);
    if (rv != CKR_OK) {
        hsmtls_p11_error_set(rv, "initialising PKCS#11 module %s: %s", path, hsmtls_p11_rv_name(rv));
        pthread_mutex_destroy(&m->lock);
        pthread_mutex_destroy(&m->restart_lock);
        pthread_mutex_destroy(&m->lanes_lock);
        free(m->path);
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

static hsmtls_p11_module *load_named(const char *path, const char *name)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&modules_lock);
    hsmtls_p11_module *m = load_locked(path, name);
    pthread_mutex_unlock(&modules_lock);
    if (m && hsmtls_p11_module_check_fork(m) < 0)
        return NULL;
    return m;
}

/* p11-kit's registry, read once: name and file of every configured module. */
struct registry_entry { char *name, *path; };
static struct registry_entry *registry;
static size_t registry_len;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void read_registry(void)
{
    /* Unmanaged and uninitialised: p11-kit only tells us what is configured; the
     * modules are loaded again, by path, through our own call layer. */
    CK_FUNCTION_LIST **list = p11_kit_modules_load(NULL, P11_KIT_MODULE_UNMANAGED);
    if (!list)
        return;
    size_t n = 0;
    while (list[n])
        n++;
    registry = calloc(n ? n : 1, sizeof *registry);
    for (size_t i = 0; registry && i < n; i++) {
        char *name = p11_kit_module_get_name(list[i]);
        char *file = p11_kit_module_get_filename(list[i]);
        if (name && file) {
            registry[registry_len].name = strdup(name);
            registry[registry_len].path = strdup(file);
            registry_len++;
        }
        free(name);
        free(file);
    }
    p11_kit_modules_release(list);
}

static int push(hsmtls_p11_module ***out, size_t *n, hsmtls_p11_module *m)
{
    for (size_t i = 0; i < *n; i++)
        if ((*out)[i] == m)
            return 0;
    hsmtls_p11_module **grown = realloc(*out, (*n + 1) * sizeof **out);
    if (!grown)
        return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
    grown[(*n)++] = m;
    *out = grown;
    return 0;
}

static int push_path(hsmtls_p11_module ***out, size_t *n, const char *path, const char *name)
{
    hsmtls_p11_module *m = load_named(path, name);
    return m ? push(out, n, m) : -1;
}

int hsmtls_p11_modules_resolve(const hsmtls_p11_uri *uri, const char *configured_path,
                               hsmtls_p11_module ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *env = getenv("HSMTLS_PKCS11_MODULE");
    const char *uri_path = uri ? hsmtls_p11_uri_module_path(uri) : NULL;
    const char *uri_name = uri ? hsmtls_p11_uri_module_name(uri) : NULL;
    int ret;

    if (env && *env)
        ret = push_path(out, n, env, NULL);
    else if (uri_path)
        ret = push_path(out, n, uri_path, NULL);
    else if (configured_path && *configured_path)
        ret = push_path(out, n, configured_path, NULL);
    else {
        pthread_once(&registry_once, read_registry);
        ret = 0;
        for (size_t i = 0; i < registry_len && ret == 0; i++) {
            char *file = base_name(registry[i].path);
            int wanted = !uri_name || strcmp(uri_name, registry[i].name) == 0 ||
                         strcmp(uri_name, file) == 0;
            free(file);
            if (wanted && push_path(out, n, registry[i].path, registry[i].name) < 0) {
                /* A broken registry entry must not hide the others unless it was named. */
                if (uri_name)
                    ret = -1;
            }
        }
        if (ret == 0 && *n == 0) {
            if (uri_name)
                ret = hsmtls_p11_error_set(CKR_ARGUMENTS_BAD,
                    "no PKCS#11 module named \"%s\" in p11-kit's registry (%zu module%s registered)",
                    uri_name, registry_len, registry_len == 1 ? "" : "s");
            else
                ret = push_path(out, n, HSMTLS_DEFAULT_MODULE, NULL);
        }
    }
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

static void trim_copy(char *dst, const unsigned char *src, size_t len)
{
    while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\0'))
        len--;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int has_serial(const CK_TOKEN_INFO *info)
{
    for (size_t i = 0; i < sizeof info->serialNumber; i++)
        if (info->serialNumber[i] != ' ' && info->serialNumber[i] != '\0')
            return 1;
    return 0;
}

/* The kept token for what a slot shows: the one seen in that slot before, or (`moved`)
 * one with the same serial number and label that no slot claimed in this listing and
 * that has no session. SoftHSM2 numbers a token whose file it read half-written at
 * C_Initialize by its position (slot 0) instead of by its serial number, and a later
 * C_Initialize moves it to its real slot: callers hold pointers to the token. */
static hsmtls_p11_token *known_token(hsmtls_p11_module *m, CK_SLOT_ID slot,
                                     const CK_TOKEN_INFO *info, int moved)
{
    for (size_t k = 0; k < m->ntokens; k++) {
        hsmtls_p11_token *t = m->tokens[k];
        if (memcmp(t->info.serialNumber, info->serialNumber, sizeof info->serialNumber) != 0)
            continue;
        if (!moved && t->slot == slot)
            return t;
        if (moved && !t->present && has_serial(info) &&
            memcmp(t->info.label, info->label, sizeof info->label) == 0) {
            pthread_mutex_lock(&t->lock);
            int idle = t->open_sessions == 0;
            pthread_mutex_unlock(&t->lock);
            if (idle)
                return t;
        }
    }
    return NULL;
}

/* Finds the module's tokens, adding new ones to m->tokens and refreshing the
 * presence of known ones. Tokens are never freed before shutdown: objects and
 * callers keep pointers to them. */
int hsmtls_p11_module_tokens(hsmtls_p11_module *m, int refresh)
{
    if (hsmtls_p11_module_check_fork(m) < 0)
        return -1;
    pthread_mutex_lock(&m->lock);
    if (m->ntokens > 0 && !refresh) {
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    CK_ULONG count = 0;
    CK_SLOT_ID *slots = NULL;
    CK_RV rv = P11_CALL(m, C_GetSlotList, CK_TRUE, NULL, &count);
    if (rv == CKR_OK && count > 0) {
        slots = calloc(count, sizeof *slots);
        rv = slots ? P11_CALL(m, C_GetSlotList, CK_TRUE, slots, &count) : CKR_HOST_MEMORY;
    }
    if (rv != CKR_OK) {
        free(slots);
        pthread_mutex_unlock(&m->lock);
        return hsmtls_p11_error_set(rv, "listing slots of PKCS#11 module %s: %s", m->path,
                                    hsmtls_p11_rv_name(rv));
    }
    struct seen { CK_TOKEN_INFO info; CK_SLOT_INFO sinfo; hsmtls_p11_token *t; int ok; } *seen =
        count ? calloc(count, sizeof *seen) : NULL;
    if (count && !seen) {
        free(slots);
        pthread_mutex_unlock(&m->lock);
        return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory listing tokens");
    }
    for (size_t i = 0; i < m->ntokens; i++)
        m->tokens[i]->present = 0;
    for (CK_ULONG i = 0; i < count; i++) {
        /* A failure: a slot that went away between the calls, or SoftHSM2 with the
         * token's file half-written by another process (CKR_GENERAL_ERROR). */
        seen[i].ok = P11_CALL(m, C_GetTokenInfo, slots[i], &seen[i].info) == CKR_OK &&
                     P11_CALL(m, C_GetSlotInfo, slots[i], &seen[i].sinfo) == CKR_OK;
        if (seen[i].ok && (seen[i].t = known_token(m, slots[i], &seen[i].info, 0)))
            seen[i].t->present = 1;
    }
    for (CK_ULONG i = 0; i < count; i++) {
        if (!seen[i].ok)
            continue;
        hsmtls_p11_token *t = seen[i].t;
        if (!t && (t = known_token(m, slots[i], &seen[i].info, 1)))
            t->slot = slots[i];
        if (!t) {
            hsmtls_p11_token **grown = realloc(m->tokens, (m->ntokens + 1) * sizeof *grown);
            t = grown ? calloc(1, sizeof *t) : NULL;
            if (!t) {
                if (grown)
                    m->tokens = grown;
                continue;
            }
            m->tokens = grown;
            m->tokens[m->ntokens++] = t;
            t->module = m;
            t->slot = slots[i];
            t->generation = atomic_load(&m->epoch);
            pthread_mutex_init(&t->lock, NULL);
            pthread_mutex_init(&t->copy_lock, NULL);
        }
        t->info = seen[i].info;
        t->slot_info = seen[i].sinfo;
        trim_copy(t->label, seen[i].info.label, sizeof seen[i].info.label);
        t->present = 1;
    }
    free(seen);
    free(slots);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void hsmtls_p11_tokens_each(void (*fn)(const hsmtls_p11_token *t, void *arg), void *arg)
{
    pthread_mutex_lock(&modules_lock);
    for (hsmtls_p11_module *m = modules; m; m = m->next) {
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->ntokens; i++)
            fn(m->tokens[i], arg);
        pthread_mutex_unlock(&m->lock);
    }
    pthread_mutex_unlock(&modules_lock);
}

const char *hsmtls_p11_module_path(const hsmtls_p11_module *m) { return m->path; }
const char *hsmtls_p11_module_name(const hsmtls_p11_module *m) { return m->name; }
const CK_INFO *hsmtls_p11_module_info(const hsmtls_p11_module *m) { return &m->info; }
