/* hsmtls-fault's plan (HSMTLS_FAULT): rules separated by ';', each TARGET:ACTION[@WHEN].
 * The parser and the per-call decision, with no state of the module itself, so the unit
 * tier tests them alone (tests/unit/unit_fault_plan.c). The language is docs/fault.md. */
#ifndef HSMTLS_FAULT_PLAN_H
#define HSMTLS_FAULT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "functions.h"

enum fault_target {
    FAULT_T_FUNCTION,      /* one PKCS#11 function (rule.function) */
    FAULT_T_ALL,           /* '*': every function but the four of fault_excluded_from_all */
    FAULT_T_TOKEN_REMOVE,  /* token:remove: the module's tokens are away while it holds */
    FAULT_T_DEVICE_DOWN,   /* device:down: CKR_DEVICE_ERROR until C_Finalize + C_Initialize */
    FAULT_T_SESSIONS,      /* sessions:invalidate: an event, every open session lost */
    FAULT_T_OBJECTS,       /* objects:stale: an event, every object handle handed out lost */
};

enum fault_action { FAULT_A_NONE, FAULT_A_DELAY, FAULT_A_ERROR, FAULT_A_HANG };

struct fault_rule {
    int position;            /* 1-based, as written (empty rules count) */
    char text[96];           /* the rule as written, shortened and escaped, for messages */
    enum fault_target target;
    int function;            /* FAULT_T_FUNCTION: FAULT_FN_... */
    enum fault_action action;
    uint64_t delay_ns, jitter_ns; /* delay (and its jitter) or hang */
    CK_RV error;
    /* WHEN: every condition given must hold. The time window and the state gate the
     * call; nth/every count only the calls the gate let through. */
    unsigned long nth, every;
    int has_from, has_for, has_state;
    uint64_t from_ns, for_ns;
    char state[64];
    /* At run time. */
    unsigned long calls;     /* calls of the target that passed the gate */
    int gate_open;           /* the gate was open at the previous call of the target */
};

struct fault_plan {
    struct fault_rule *rules;
    size_t n;
};

/* Parses text (NULL or "" is the empty plan: pass everything through). Returns 0, or -1
 * with err holding `HSMTLS_FAULT rule N "RULE": what is wrong` and plan empty. */
int fault_plan_parse(const char *text, struct fault_plan *plan, char *err, size_t errsize);
void fault_plan_free(struct fault_plan *plan);
/* 1 when plan has a rule of that target. */
int fault_plan_has(const struct fault_plan *plan, enum fault_target target);

/* Whether rule r holds for this call of function fn, at t_ns since the module started,
 * with the control file saying state ("" for none); counts the call. A function rule or
 * a state (token:remove, device:down) holds on every call its WHEN lets through; an
 * event (sessions:invalidate, objects:stale) without n= or every= holds once each time
 * its gate opens (without any WHEN: at the first call). */
int fault_rule_holds(struct fault_rule *r, int fn, uint64_t t_ns, const char *state);

/* C_Initialize, C_Finalize, C_GetInfo and C_GetFunctionList: not part of '*' nor of
 * the special targets' calls. */
int fault_excluded_from_all(int fn);
const char *fault_function_name(int fn);
int fault_function_index(const char *name);   /* -1 when unknown */
/* CKR_ names of p11-kit's header; NULL for a code it does not name. */
const char *fault_rv_name(CK_RV rv);
/* A CKR_ name or a number (decimal or 0x hex); 0 or -1. */
int fault_rv_parse(const char *s, CK_RV *rv);
/* Parses "5ms", "2s", "1.5s" into nanoseconds; 0 or -1. */
int fault_duration_parse(const char *s, uint64_t *ns);

#endif
