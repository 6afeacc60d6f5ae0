/* Lanes: several connections to one module. p11-kit's client module forwards every call
 * over one connection, served on the other side by one single-threaded process, so a
 * server signing on several threads waits in line however many sessions it opens. Each
 * p11_kit_module_load of the client is a connection of its own, with its own sessions,
 * login and object handles: the core opens a few and gives each thread one of them. The
 * first lane is the module itself; keys are found and logged in to on the others on
 * first use there, with the PIN the token was logged in with. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <p11-kit/p11-kit.h>

#define CLIENT_LANES 4 /* p11-kit's client; as many connections, and server processes */

/* Where a key cannot be used on a lane (no PIN to log in with, not found there): the
 * key itself serves that lane's threads. */
static hsmtls_p11_object no_lane;
static _Atomic unsigned threads_seen;
static _Thread_local unsigned thread_number; /* 0: this thread has no lane yet */

size_t hsmtls_p11_lanes_wanted(const hsmtls_p11_module *m)
{
    const char *v = getenv("HSMTLS_P11_LANES");
    if (v && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n >= 1)
            return n > HSMTLS_P11_MAX_LANES ? HSMTLS_P11_MAX_LANES : (size_t)n;
    }
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    return strncmp(base, "p11-kit-client", 14) == 0 ? CLIENT_LANES : 1;
}

/* Whether loading the module again gives another instance: a local library answers
 * with the same function list every time (one instance, one login: lanes would only
 * share it), p11-kit's client with a new one, which is a new connection. */
static int separate_instances(hsmtls_p11_module *m)
{
    CK_FUNCTION_LIST *again = p11_kit_module_load(m->path, P11_KIT_MODULE_UNMANAGED);
    int separate = again && again != m->raw;
    if (again)
        p11_kit_module_release(again);
    return separate;
}

/* Caller holds lanes_lock. */
static void lanes_open_locked(hsmtls_p11_module *m)
{
    size_t want = m->lanes_want;
    for (size_t k = 1; k < want && (k > 1 || separate_instances(m)); k++) {
        CK_FUNCTION_LIST *fl = p11_kit_module_load(m->path, 0);
        if (!fl)
            break;
        hsmtls_p11_module *lane = hsmtls_p11_module_open(m->path, m->name, fl, m->raw);
        if (!lane) {
            p11_kit_module_release(fl);
            break;
        }
        atomic_store(&lane->lanes_state, -1);
        lane->lanes_want = 1;
        m->lanes[m->nlanes++] = lane;
    }
    hsmtls_p11_error_clear(); /* a lane that did not open costs only its speed */
    atomic_store(&m->lanes_state, m->nlanes ? 1 : -1);
}

/* The token on lane i that `t` is (the same serial number and label). lanes_lock held. */
static hsmtls_p11_token *lane_token_locked(hsmtls_p11_token *t, size_t i)
{
    if (t->lane_tokens[i])
        return t->lane_tokens[i];
    hsmtls_p11_module *lane = t->module->lanes[i];
    if (hsmtls_p11_module_tokens(lane, 0) < 0)
        return NULL;
    hsmtls_p11_token *found = NULL;
    pthread_mutex_lock(&lane->lock);
    for (size_t k = 0; k < lane->ntokens && !found; k++) {
        hsmtls_p11_token *c = lane->tokens[k];
        if (memcmp(c->info.serialNumber, t->info.serialNumber, sizeof c->info.serialNumber) == 0 &&
            memcmp(c->info.label, t->info.label, sizeof c->info.label) == 0)
            found = c;
    }
    pthread_mutex_unlock(&lane->lock);
    if (found) {
        found->primary = t;
        t->lane_tokens[i] = found;
    }
    return found;
}

/* Logs in on the lane with the PIN the token was logged in with; lanes_lock held, so
 * lanes log in one after another (SoftHSM2 can fail logins made at the same moment by
 * several processes, and each connection is one on the server's side). */
static int lane_login_locked(hsmtls_p11_token *t, hsmtls_p11_token *lane)
{
    if (!hsmtls_p11_token_needs_login(t) || hsmtls_p11_token_logged_in(lane))
        return 0;
    pthread_mutex_lock(&t->lock);
    char *pin = t->pin ? strdup(t->pin) : NULL;
    pthread_mutex_unlock(&t->lock);
    if (!pin)
        return -1;
    hsmtls_p11_lookup opt = { .pin = pin, .login = HSMTLS_P11_LOGIN_ALWAYS };
    int rc = hsmtls_p11_token_login(lane, NULL, &opt);
    hsmtls_p11_pin_free(pin);
    return rc;
}

static hsmtls_p11_object *lane_object(hsmtls_p11_object *key, size_t i)
{
    hsmtls_p11_module *m = key->token->module;
    pthread_mutex_lock(&m->lanes_lock);
    hsmtls_p11_object *o = atomic_load(&key->lane_objs[i]);
    if (!o) {
        hsmtls_p11_token *lane = lane_token_locked(key->token, i);
        if (lane && lane_login_locked(key->token, lane) == 0)
            o = hsmtls_p11_object_twin(key, lane);
        if (!o)
            o = &no_lane;
        atomic_store(&key->lane_objs[i], o);
        hsmtls_p11_error_clear();
    }
    pthread_mutex_unlock(&m->lanes_lock);
    return o;
}

hsmtls_p11_object *hsmtls_p11_object_lane(hsmtls_p11_object *key)
{
    hsmtls_p11_module *m = key->token->module;
    int state = atomic_load(&m->lanes_state);
    if (state < 0 || m->lanes_want < 2 || key->cls != CKO_PRIVATE_KEY)
        return key;
    if (!thread_number)
        thread_number = atomic_fetch_add(&threads_seen, 1) + 1;
    /* The first thread keeps the module's own connection: a program that signs on one
     * thread never opens another. */
    size_t k = (thread_number - 1) % m->lanes_want;
    if (k == 0)
        return key;
    if (state == 0) {
        pthread_mutex_lock(&m->lanes_lock);
        if (atomic_load(&m->lanes_state) == 0)
            lanes_open_locked(m);
        pthread_mutex_unlock(&m->lanes_lock);
        if (atomic_load(&m->lanes_state) < 0)
            return key;
    }
    k %= m->nlanes + 1; /* fewer lanes opened than wanted */
    if (k == 0)
        return key;
    hsmtls_p11_object *o = atomic_load(&key->lane_objs[k - 1]);
    if (!o)
        o = lane_object(key, k - 1);
    return o == &no_lane ? key : o;
}

size_t hsmtls_p11_module_lanes(hsmtls_p11_module *m)
{
    return atomic_load(&m->lanes_state) > 0 ? m->nlanes + 1 : 1;
}
