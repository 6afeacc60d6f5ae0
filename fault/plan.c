/* hsmtls-fault's plan language: parsing, validation with one clear message, and the
 * per-call decision of each rule (plan.h; the language is docs/fault.md). */
#include "plan.h"
#include "rv_names.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_NAME(name, kind, decl, call, before, after) #name,
static const char *const function_names[FAULT_FN_COUNT] = { HSMTLS_FAULT_FUNCTIONS(FAULT_NAME) };
#undef FAULT_NAME

static const struct {
    const char *name;
    CK_RV rv;
} rv_names[] = {
#define R(x) { #x, x },
    HSMTLS_FAULT_RVS(R)
#undef R
};

const char *fault_function_name(int fn)
{
    return fn >= 0 && fn < FAULT_FN_COUNT ? function_names[fn] : "?";
}

int fault_function_index(const char *name)
{
    for (int i = 0; i < FAULT_FN_COUNT; i++)
        if (strcmp(function_names[i], name) == 0)
            return i;
    return -1;
}

int fault_excluded_from_all(int fn)
{
    return fn == FAULT_FN_C_Initialize || fn == FAULT_FN_C_Finalize || fn == FAULT_FN_C_GetInfo ||
           fn == FAULT_FN_C_GetFunctionList;
}

const char *fault_rv_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++)
        if (rv_names[i].rv == rv)
            return rv_names[i].name;
    return NULL;
}

int fault_rv_parse(const char *s, CK_RV *rv)
{
    for (size_t i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++)
        if (strcmp(rv_names[i].name, s) == 0) {
            *rv = rv_names[i].rv;
            return 0;
        }
    if (!isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v > (CK_RV)-1)
        return -1;
    *rv = (CK_RV)v;
    return 0;
}

int fault_duration_parse(const char *s, uint64_t *ns)
{
    uint64_t whole = 0, frac = 0, scale = 1;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > 100000000ULL)
            return -1; /* far beyond any sane plan, and before overflow */
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++)
            if (scale < 1000000000ULL) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
    }
    uint64_t unit;
    if (strcmp(p, "ms") == 0)
        unit = 1000000ULL;
    else if (strcmp(p, "s") == 0)
        unit = 1000000000ULL;
    else
        return -1;
    *ns = whole * unit + frac * unit / scale;
    return 0;
}

/* ---- parsing ---------------------------------------------------------------------- */

struct parse {
    char *err;
    size_t errsize;
    int position;
    const char *rule_text; /* escaped, for the message */
};

static int fail(struct parse *ps, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errsize, "HSMTLS_FAULT rule %d \"%s\": %s", ps->position, ps->rule_text, what);
    return -1;
}

/* s with control characters and quotes escaped, cut to fit out (with "..."). */
static void escape(const char *s, size_t len, char *out, size_t outsize)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char piece[8];
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            snprintf(piece, sizeof piece, "\\x%02x", c);
        else
            snprintf(piece, sizeof piece, "%c", c);
        size_t n = strlen(piece);
        if (o + n + 4 > outsize) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
}

/* A value from the plan as a message may quote it: escaped, at most ~40 characters.
 * Four rotating buffers (a message quotes at most two values). */
static const char *shown(const char *s)
{
    static char buf[4][64];
    static int k;
    k = (k + 1) % 4;
    escape(s, strlen(s), buf[k], sizeof buf[k]);
    return buf[k];
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int parse_count(struct parse *ps, const char *key, const char *value, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = isdigit((unsigned char)value[0]) ? strtoul(value, &end, 10) : 0;
    if (!isdigit((unsigned char)value[0]) || errno || *end || v == 0)
        return fail(ps, "%s=%s: expected a whole number from 1", shown(key), shown(value));
    *out = v;
    return 0;
}

static int parse_when(struct parse *ps, char *when, struct fault_rule *r)
{
    if (!*when)
        return fail(ps, "nothing after '@': expected n=, every=, from=, for= or state=");
    for (char *save = NULL, *cond = strtok_r(when, ",", &save); cond; cond = strtok_r(NULL, ",", &save)) {
        cond = trim(cond);
        char *eq = strchr(cond, '=');
        if (!eq)
            return fail(ps, "condition \"%s\" has no '=': expected n=, every=, from=, for= or state=", shown(cond));
        *eq = '\0';
        char *key = trim(cond), *value = trim(eq + 1);
        if (strcmp(key, "n") == 0) {
            if (parse_count(ps, key, value, &r->nth) < 0)
                return -1;
        } else if (strcmp(key, "every") == 0) {
            if (parse_count(ps, key, value, &r->every) < 0)
                return -1;
        } else if (strcmp(key, "from") == 0 || strcmp(key, "for") == 0) {
            int is_from = key[1] == 'r';
            if (fault_duration_parse(value, is_from ? &r->from_ns : &r->for_ns) < 0)
                return fail(ps, "%s=%s: bad duration: expected a number and a unit, ms or s (500ms, 2s, 1.5s)",
                            shown(key), shown(value));
            if (is_from)
                r->has_from = 1;
            else
                r->has_for = 1;
        } else if (strcmp(key, "state") == 0) {
            size_t n = strlen(value);
            if (n == 0 || n >= sizeof r->state || strpbrk(value, " \t"))
                return fail(ps, "state=%s: expected one word of 1 to %zu characters", shown(value), sizeof r->state - 1);
            memcpy(r->state, value, n + 1);
            r->has_state = 1;
        } else {
            return fail(ps, "unknown condition \"%s\": expected n, every, from, for or state", shown(key));
        }
    }
    if (r->nth && r->every)
        return fail(ps, "n= and every= exclude each other");
    if (r->has_for && r->for_ns == 0)
        return fail(ps, "for=0: the window would never be open");
    return 0;
}

static int parse_action(struct parse *ps, char *action, struct fault_rule *r)
{
    char *eq = strchr(action, '=');
    if (!eq)
        return fail(ps, "action \"%s\": expected delay=TIME[~JITTER], error=CKR_NAME or hang=TIME", shown(action));
    *eq = '\0';
    char *key = trim(action), *value = trim(eq + 1);
    if (strcmp(key, "delay") == 0) {
        char *tilde = strchr(value, '~');
        if (tilde)
            *tilde = '\0';
        if (fault_duration_parse(trim(value), &r->delay_ns) < 0)
            return fail(ps, "delay=%s: bad duration: expected a number and a unit, ms or s (20ms, 1.5s)", shown(value));
        if (tilde && fault_duration_parse(trim(tilde + 1), &r->jitter_ns) < 0)
            return fail(ps, "delay jitter ~%s: bad duration: expected a number and a unit, ms or s (5ms~2ms)",
                        shown(tilde + 1));
        r->action = FAULT_A_DELAY;
    } else if (strcmp(key, "hang") == 0) {
        if (fault_duration_parse(value, &r->delay_ns) < 0)
            return fail(ps, "hang=%s: bad duration: expected a number and a unit, ms or s (10s)", shown(value));
        r->action = FAULT_A_HANG;
    } else if (strcmp(key, "error") == 0) {
        if (fault_rv_parse(value, &r->error) < 0)
            return fail(ps, "unknown return code \"%s\": expected a CKR_ name (CKR_DEVICE_ERROR) or a number",
                        shown(value));
        if (r->error == CKR_OK)
            return fail(ps, "error=%s: CKR_OK is no error", shown(value));
        r->action = FAULT_A_ERROR;
    } else {
        return fail(ps, "unknown action \"%s\": expected delay, error or hang", shown(key));
    }
    return 0;
}

static const struct {
    const char *target, *action;
    enum fault_target kind;
} specials[] = {
    { "token", "remove", FAULT_T_TOKEN_REMOVE },
    { "device", "down", FAULT_T_DEVICE_DOWN },
    { "sessions", "invalidate", FAULT_T_SESSIONS },
    { "objects", "stale", FAULT_T_OBJECTS },
};

static int parse_rule(struct parse *ps, char *text, struct fault_rule *r)
{
    char *at = strchr(text, '@');
    if (at)
        *at = '\0';
    char *colon = strchr(text, ':');
    if (!colon)
        return fail(ps, "expected TARGET:ACTION (C_Sign:delay=20ms, token:remove)");
    *colon = '\0';
    char *target = trim(text), *action = trim(colon + 1);
    int special = -1;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        if (strcmp(target, specials[i].target) == 0)
            special = (int)i;
    if (special >= 0) {
        if (strcmp(action, specials[special].action) != 0)
            return fail(ps, "unknown action \"%s\" for %s: expected %s:%s", shown(action), shown(target),
                        specials[special].target, specials[special].action);
        r->target = specials[special].kind;
    } else {
        if (strcmp(target, "*") == 0) {
            r->target = FAULT_T_ALL;
        } else if (strncmp(target, "C_", 2) == 0) {
            r->function = fault_function_index(target);
            if (r->function < 0)
                return fail(ps, "unknown function \"%s\"", shown(target));
            if (r->function == FAULT_FN_C_GetFunctionList)
                return fail(ps, "C_GetFunctionList cannot be faulted (it is how the module is found)");
            r->target = FAULT_T_FUNCTION;
        } else {
            return fail(ps, "unknown target \"%s\": expected a PKCS#11 function (C_Sign), *, token:remove, "
                            "device:down, sessions:invalidate or objects:stale", shown(target));
        }
        if (parse_action(ps, action, r) < 0)
            return -1;
    }
    return at ? parse_when(ps, at + 1, r) : 0;
}

void fault_plan_free(struct fault_plan *plan)
{
    free(plan->rules);
    plan->rules = NULL;
    plan->n = 0;
}

int fault_plan_parse(const char *text, struct fault_plan *plan, char *err, size_t errsize)
{
    plan->rules = NULL;
    plan->n = 0;
    if (err && errsize)
        err[0] = '\0';
    if (!text)
        return 0;
    char *copy = strdup(text);
    if (!copy) {
        snprintf(err, errsize, "HSMTLS_FAULT: out of memory");
        return -1;
    }
    size_t max = 1;
    for (const char *p = text; *p; p++)
        max += *p == ';';
    plan->rules = calloc(max, sizeof *plan->rules);
    if (!plan->rules) {
        free(copy);
        snprintf(err, errsize, "HSMTLS_FAULT: out of memory");
        return -1;
    }
    struct parse ps = { .err = err, .errsize = errsize };
    int position = 0, rc = 0;
    char *p = copy;
    while (p && rc == 0) {
        char *semi = strchr(p, ';');
        if (semi)
            *semi = '\0';
        position++;
        char *rule = trim(p);
        if (*rule) {
            struct fault_rule *r = &plan->rules[plan->n];
            r->position = position;
            escape(rule, strlen(rule), r->text, sizeof r->text);
            ps.position = position;
            ps.rule_text = r->text;
            rc = parse_rule(&ps, rule, r);
            plan->n++;
        }
        p = semi ? semi + 1 : NULL;
    }
    free(copy);
    if (rc < 0)
        fault_plan_free(plan);
    return rc;
}

int fault_plan_has(const struct fault_plan *plan, enum fault_target target)
{
    for (size_t i = 0; i < plan->n; i++)
        if (plan->rules[i].target == target)
            return 1;
    return 0;
}

/* ---- the decision at each call ------------------------------------------------------ */

int fault_rule_holds(struct fault_rule *r, int fn, uint64_t t_ns, const char *state)
{
    if (r->target == FAULT_T_FUNCTION ? fn != r->function : fault_excluded_from_all(fn))
        return 0;
    int open = (!r->has_from || t_ns >= r->from_ns) &&
               (!r->has_for || t_ns - (r->has_from ? r->from_ns : 0) < r->for_ns) &&
               (!r->has_state || strcmp(state ? state : "", r->state) == 0);
    if (r->has_for && r->has_from && t_ns < r->from_ns)
        open = 0;
    int opened = open && !r->gate_open;
    r->gate_open = open;
    if (!open)
        return 0;
    r->calls++;
    if (r->nth)
        return r->calls == r->nth;
    if (r->every)
        return r->calls % r->every == 0;
    if (r->target == FAULT_T_SESSIONS || r->target == FAULT_T_OBJECTS)
        return opened;
    return 1;
}
