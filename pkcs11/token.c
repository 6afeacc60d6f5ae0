/* Finding tokens and logging in to them once. */
#include "p11_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int push_token(hsmtls_p11_token ***out, size_t *n, hsmtls_p11_token *t)
{
    hsmtls_p11_token **grown = realloc(*out, (*n + 1) * sizeof **out);
    if (!grown)
        return hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
    grown[(*n)++] = t;
    *out = grown;
    return 0;
}

static int token_matches(const hsmtls_p11_uri *uri, hsmtls_p11_token *t)
{
    if (!uri)
        return 1;
    CK_SLOT_ID wanted;
    if (hsmtls_p11_uri_slot_id(uri, &wanted) && wanted != t->slot)
        return 0;
    return hsmtls_p11_uri_match_module(uri, &t->module->info) &&
           hsmtls_p11_uri_match_slot(uri, t->slot, &t->slot_info) &&
           hsmtls_p11_uri_match_token(uri, &t->info);
}

enum list_mode { LIST_KNOWN, LIST_REFRESH, LIST_REINIT };

static int list_tokens(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                       enum list_mode mode, hsmtls_p11_token ***out, size_t *n)
{
    hsmtls_p11_module **mods;
    size_t nmods;
    *out = NULL;
    *n = 0;
    if (hsmtls_p11_modules_resolve(uri, opt ? opt->module_path : NULL, &mods, &nmods) < 0)
        return -1;
    int ret = 0;
    for (size_t i = 0; i < nmods && ret == 0; i++) {
        hsmtls_p11_module *m = mods[i];
        if ((mode == LIST_REINIT && hsmtls_p11_module_reinit_idle(m) < 0) ||
            hsmtls_p11_module_tokens(m, mode != LIST_KNOWN) < 0) {
            ret = -1;
            break;
        }
        pthread_mutex_lock(&m->lock);
        for (size_t k = 0; k < m->ntokens && ret == 0; k++)
            if (m->tokens[k]->present && token_matches(uri, m->tokens[k]))
                ret = push_token(out, n, m->tokens[k]);
        pthread_mutex_unlock(&m->lock);
    }
    free(mods);
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

int hsmtls_p11_tokens_list(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                           hsmtls_p11_token ***out, size_t *n)
{
    return list_tokens(uri, opt, LIST_REFRESH, out, n);
}

/* Pauses (ms) before the looks after the first miss: 1 s in all, spent only when no
 * token matches. SoftHSM2 2.6 loses a token while another process logs in to it (every
 * C_Login rewrites token.object, truncating it first): C_GetTokenInfo fails for a moment,
 * or, when this process's C_Initialize read the file in that gap, the token is missing
 * from its slot list until the module is initialised again. */
static const long retry_pause_ms[] = { 10, 30, 60, 100, 200, 300, 300 };
#define RETRIES (sizeof retry_pause_ms / sizeof retry_pause_ms[0])

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int hsmtls_p11_tokens_find(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                           hsmtls_p11_token ***out, size_t *n)
{
    /* Known tokens first; a miss looks again at once, since a token may have been
     * inserted, then after growing pauses, re-initialising idle modules from the third
     * look on (see retry_pause_ms). */
    if (list_tokens(uri, opt, LIST_KNOWN, out, n) < 0)
        return -1;
    for (size_t i = 0; *n == 0 && i <= RETRIES; i++) {
        if (i > 0)
            pause_ms(retry_pause_ms[i - 1]);
        if (list_tokens(uri, opt, i >= 2 ? LIST_REINIT : LIST_REFRESH, out, n) < 0)
            return -1;
    }
    if (*n > 0)
        return 0;

    hsmtls_p11_token **all;
    size_t nall;
    char present[512] = "";
    size_t used = 0;
    if (list_tokens(NULL, opt, LIST_KNOWN, &all, &nall) == 0) {
        for (size_t i = 0; i < nall && used < sizeof present - 80; i++)
            used += (size_t)snprintf(present + used, sizeof present - used, "%s\"%s\" (%s, slot %lu)",
                                     i ? ", " : "", all[i]->label, all[i]->module->name,
                                     (unsigned long)all[i]->slot);
        free(all);
    }
    /* A module another user in the process holds could not be restarted to look again. */
    char shared[300] = "";
    hsmtls_p11_module **mods;
    size_t nmods;
    if (hsmtls_p11_modules_resolve(uri, opt ? opt->module_path : NULL, &mods, &nmods) == 0) {
        for (size_t i = 0; i < nmods && !*shared; i++)
            if (mods[i]->shared)
                snprintf(shared, sizeof shared, " (module %s is also initialised by another "
                         "PKCS#11 user in this process, so it could not be restarted to look "
                         "again)", mods[i]->name);
        free(mods);
    }
    return hsmtls_p11_error_set(CKR_TOKEN_NOT_PRESENT, "no token matches \"%s\"; tokens present: %s%s",
                                uri ? hsmtls_p11_uri_masked(uri) : "pkcs11:",
                                used ? present : "none", shared);
}

hsmtls_p11_module *hsmtls_p11_token_module(const hsmtls_p11_token *t) { return t->module; }
CK_SLOT_ID hsmtls_p11_token_slot(const hsmtls_p11_token *t) { return t->slot; }
const CK_TOKEN_INFO *hsmtls_p11_token_info(const hsmtls_p11_token *t) { return &t->info; }
const char *hsmtls_p11_token_label(const hsmtls_p11_token *t) { return t->label; }
unsigned long hsmtls_p11_token_signatures(const hsmtls_p11_token *t)
{
    return atomic_load_explicit(&t->signatures, memory_order_relaxed);
}

int hsmtls_p11_token_needs_login(const hsmtls_p11_token *t)
{
    return (t->info.flags & CKF_LOGIN_REQUIRED) != 0;
}

int hsmtls_p11_token_logged_in(hsmtls_p11_token *t)
{
    unsigned epoch = hsmtls_p11_module_epoch(t->module);
    pthread_mutex_lock(&t->lock);
    int yes = t->logged_in && t->generation == epoch;
    pthread_mutex_unlock(&t->lock);
    return yes;
}

/* One C_Login with `pin` (NULL: protected authentication path) on a pooled session. An
 * idle session the token closed meanwhile is replaced, once: the PIN was not checked. */
static CK_RV login_once(hsmtls_p11_token *t, const char *pin)
{
    CK_RV rv = CKR_OK;
    for (int tries = 0; tries < 2; tries++) {
        CK_SESSION_HANDLE s;
        int acquired = hsmtls_p11_session_acquire(t, &s);
        if (acquired < 0 && hsmtls_p11_classify(hsmtls_p11_error_rv()) == HSMTLS_P11_TRANSIENT)
            acquired = hsmtls_p11_session_acquire(t, &s); /* short of sessions: once more */
        if (acquired < 0)
            return hsmtls_p11_error_rv() ? hsmtls_p11_error_rv() : CKR_GENERAL_ERROR;
        rv = P11_CALL(t->module, C_Login, s, CKU_USER, (unsigned char *)pin, pin ? strlen(pin) : 0);
        if (rv == CKR_USER_ALREADY_LOGGED_IN)
            rv = CKR_OK;
        hsmtls_p11_session_release(t, s, hsmtls_p11_session_is_lost(rv) && rv != CKR_USER_NOT_LOGGED_IN);
        if (rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_SESSION_CLOSED)
            break;
        hsmtls_p11_token_drop_sessions(t);
    }
    return rv;
}

/* SoftHSM2 answers C_Login with CKR_USER_PIN_NOT_INITIALIZED (on a token whose PIN is
 * set) or CKR_GENERAL_ERROR while another process rewrites the token's file (see
 * retry_pause_ms). When its C_Initialize read the file in that gap it keeps answering so
 * until initialised again, hence the re-initialisation (this token's idle sessions
 * closed first) from the third try on; that C_Initialize can fall in such a gap too, and
 * the token is then missing for a while (CKR_SLOT_ID_INVALID). The PIN was not checked,
 * so offering it again spends nothing of the token's retry counter. */
static CK_RV login_retrying(hsmtls_p11_token *t, const char *pin)
{
    CK_RV rv = login_once(t, pin);
    int reinitialised = 0;
    for (size_t i = 0; i < RETRIES; i++) {
        int transient = rv == CKR_GENERAL_ERROR ||
            (rv == CKR_USER_PIN_NOT_INITIALIZED && (t->info.flags & CKF_USER_PIN_INITIALIZED)) ||
            (reinitialised && (rv == CKR_SLOT_ID_INVALID || rv == CKR_TOKEN_NOT_PRESENT));
        if (!transient)
            break;
        pause_ms(retry_pause_ms[i]);
        if (i >= 1) {
            hsmtls_p11_token_drop_sessions(t);
            int done = hsmtls_p11_module_reinit_idle(t->module);
            if (done < 0 || hsmtls_p11_module_tokens(t->module, 1) < 0)
                return hsmtls_p11_error_rv() ? hsmtls_p11_error_rv() : CKR_GENERAL_ERROR;
            reinitialised |= done;
        }
        rv = login_once(t, pin);
    }
    return rv;
}

int hsmtls_p11_token_login(hsmtls_p11_token *t, const hsmtls_p11_uri *uri,
                           const hsmtls_p11_lookup *opt)
{
    if (hsmtls_p11_token_logged_in(t) || !hsmtls_p11_token_needs_login(t))
        return 0;
    int none;
    char *pin = hsmtls_p11_pin_obtain(t, uri, opt, &none);
    int protected_path = (t->info.flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
    if (!pin && !(none && protected_path)) {
        if (none)
            return hsmtls_p11_error_set(CKR_USER_NOT_LOGGED_IN,
                "token \"%s\" needs a PIN: give pin-value or pin-source in the URI, or a PIN callback",
                t->label);
        return -1;
    }

    pthread_mutex_lock(&t->lock);
    int rejected_before = pin && t->rejected_pin && strcmp(pin, t->rejected_pin) == 0;
    pthread_mutex_unlock(&t->lock);
    if (rejected_before) {
        hsmtls_p11_pin_free(pin);
        return hsmtls_p11_error_set(CKR_PIN_INCORRECT,
            "logging in to token \"%s\": CKR_PIN_INCORRECT (this PIN was rejected before and is "
            "not offered again, so the token's retry counter is not spent)", t->label);
    }

    CK_RV rv = login_retrying(t, pin);
    pthread_mutex_lock(&t->lock);
    if (rv == CKR_OK) {
        t->logged_in = 1;
        hsmtls_p11_pin_free(t->pin);
        t->pin = pin;
        pin = NULL;
    } else if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE) {
        hsmtls_p11_pin_free(t->rejected_pin);
        t->rejected_pin = pin;
        pin = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    hsmtls_p11_pin_free(pin);
    if (rv != CKR_OK)
        return hsmtls_p11_error_set(rv, "logging in to token \"%s\": %s%s", t->label,
                                    hsmtls_p11_rv_name(rv), hsmtls_p11_unreachable_note(rv));
    return 0;
}

int hsmtls_p11_token_relogin(hsmtls_p11_token *t)
{
    if (!hsmtls_p11_token_needs_login(t))
        return 0;
    pthread_mutex_lock(&t->lock);
    char *pin = t->pin ? strdup(t->pin) : NULL;
    int had_login = t->pin != NULL || (t->info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
    pthread_mutex_unlock(&t->lock);
    if (!had_login)
        return 0; /* never logged in: nothing to restore */
    CK_RV rv = login_retrying(t, pin);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
        rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED) {
        /* Changed on the token meanwhile: the kept PIN is never offered again. */
        pthread_mutex_lock(&t->lock);
        if (t->pin && pin && strcmp(t->pin, pin) == 0) {
            hsmtls_p11_pin_free(t->rejected_pin);
            t->rejected_pin = t->pin;
            t->pin = NULL;
        }
        pthread_mutex_unlock(&t->lock);
    }
    hsmtls_p11_pin_free(pin);
    if (rv != CKR_OK)
        return hsmtls_p11_error_set(rv, "logging in again to token \"%s\": %s%s", t->label,
                                    hsmtls_p11_rv_name(rv), hsmtls_p11_unreachable_note(rv));
    pthread_mutex_lock(&t->lock);
    t->logged_in = 1;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

CK_RV hsmtls_p11_token_context_login(hsmtls_p11_token *t, CK_SESSION_HANDLE s)
{
    pthread_mutex_lock(&t->lock);
    char *pin = t->pin ? strdup(t->pin) : NULL;
    pthread_mutex_unlock(&t->lock);
    CK_RV rv = P11_CALL(t->module, C_Login, s, CKU_CONTEXT_SPECIFIC, (unsigned char *)pin,
                        pin ? strlen(pin) : 0);
    hsmtls_p11_pin_free(pin);
    return rv;
}

int hsmtls_p11_token_ensure_login(hsmtls_p11_token *t)
{
    pthread_mutex_lock(&t->lock);
    int needed = t->pin && !t->logged_in;
    pthread_mutex_unlock(&t->lock);
    return needed ? hsmtls_p11_token_relogin(t) : 0;
}

int hsmtls_p11_token_has_mechanism(hsmtls_p11_token *t, CK_MECHANISM_TYPE mech)
{
    CK_ULONG count = 0;
    CK_RV rv = P11_CALL(t->module, C_GetMechanismList, t->slot, NULL, &count);
    if (rv != CKR_OK || count == 0)
        return 0;
    /* Room to spare: p11-kit 0.24's RPC client can write more entries than the count
     * it reported (seen under ASan), and this path only runs after an error. */
    count = count * 2 + 16;
    CK_MECHANISM_TYPE *list = calloc(count, sizeof *list);
    if (!list)
        return 0;
    int found = 0;
    if (P11_CALL(t->module, C_GetMechanismList, t->slot, list, &count) == CKR_OK)
        for (CK_ULONG i = 0; i < count && !found; i++)
            found = list[i] == mech;
    free(list);
    return found;
}
