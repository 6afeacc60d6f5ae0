/* Unit tests of hsmtls-fault's plan language (fault/plan.c, compiled in alone): every
 * target, action and condition parses to what it says; each malformed rule is refused
 * with one message naming its position, its text and what is wrong; and the per-call
 * decision (n=, every=, time windows, control-file states, events once per window). */
#include "check.h"
#include "plan.h"

#include <stdio.h>
#include <string.h>

#define MS 1000000ULL
#define S 1000000000ULL

static struct fault_plan plan;
static char err[600];

static int parses(const char *text)
{
    fault_plan_free(&plan);
    int rc = fault_plan_parse(text, &plan, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", text, err);
    return rc == 0;
}

/* The plan is refused with a message containing each of want (NULL-terminated). */
static void refused(const char *text, const char *want1, const char *want2)
{
    fault_plan_free(&plan);
    int rc = fault_plan_parse(text, &plan, err, sizeof err);
    CHECK_MSG(rc == -1 && plan.n == 0 && plan.rules == NULL, text);
    CHECK_MSG(check_contains(err, want1), err);
    if (want2)
        CHECK_MSG(check_contains(err, want2), err);
    CHECK_MSG(!strchr(err, '\n'), err);
}

static void test_actions(void)
{
    CHECK(parses(NULL) && plan.n == 0);
    CHECK(parses("") && plan.n == 0);
    CHECK(parses(" ; ;") && plan.n == 0);
    CHECK(parses("C_Sign:delay=5ms") && plan.n == 1);
    struct fault_rule *r = &plan.rules[0];
    CHECK(r->target == FAULT_T_FUNCTION && r->function == FAULT_FN_C_Sign && r->action == FAULT_A_DELAY);
    CHECK(r->delay_ns == 5 * MS && r->jitter_ns == 0 && r->position == 1);
    CHECK(parses("C_Sign:delay=5ms~2ms") && plan.rules[0].delay_ns == 5 * MS && plan.rules[0].jitter_ns == 2 * MS);
    CHECK(parses("C_Sign:delay=1.5s") && plan.rules[0].delay_ns == 1500 * MS);
    CHECK(parses("C_Sign:delay=0.25ms") && plan.rules[0].delay_ns == 250000);
    CHECK(parses("C_Login:hang=10s") && plan.rules[0].action == FAULT_A_HANG && plan.rules[0].delay_ns == 10 * S);
    CHECK(parses("C_Login:error=CKR_PIN_INCORRECT@n=1"));
    CHECK(plan.rules[0].action == FAULT_A_ERROR && plan.rules[0].error == CKR_PIN_INCORRECT && plan.rules[0].nth == 1);
    CHECK(parses("*:error=0x30") && plan.rules[0].target == FAULT_T_ALL && plan.rules[0].error == CKR_DEVICE_ERROR);
    CHECK(parses("*:error=48") && plan.rules[0].error == CKR_DEVICE_ERROR);
    CHECK(parses(" token:remove @ state=remove ; device:down@from=2s,for=1s;sessions:invalidate@every=5;"
                 "objects:stale@n=3"));
    CHECK(plan.n == 4);
    CHECK(plan.rules[0].target == FAULT_T_TOKEN_REMOVE && plan.rules[0].has_state &&
          strcmp(plan.rules[0].state, "remove") == 0);
    CHECK(plan.rules[1].target == FAULT_T_DEVICE_DOWN && plan.rules[1].from_ns == 2 * S &&
          plan.rules[1].for_ns == 1 * S && plan.rules[1].has_from && plan.rules[1].has_for);
    CHECK(plan.rules[2].target == FAULT_T_SESSIONS && plan.rules[2].every == 5 && plan.rules[2].position == 3);
    CHECK(plan.rules[3].target == FAULT_T_OBJECTS && plan.rules[3].nth == 3);
    CHECK(fault_plan_has(&plan, FAULT_T_OBJECTS) && !fault_plan_has(&plan, FAULT_T_ALL));
    /* Every function of the table is a target, by its name. */
    for (int fn = 0; fn < FAULT_FN_COUNT; fn++) {
        char rule[80];
        snprintf(rule, sizeof rule, "%s:delay=1ms", fault_function_name(fn));
        if (fn == FAULT_FN_C_GetFunctionList)
            continue;
        CHECK_MSG(parses(rule) && plan.rules[0].function == fn, rule);
    }
    CHECK(FAULT_FN_COUNT == 68);
    CHECK(fault_function_index("C_WaitForSlotEvent") == FAULT_FN_C_WaitForSlotEvent);
    CHECK(strcmp(fault_rv_name(CKR_DEVICE_REMOVED), "CKR_DEVICE_REMOVED") == 0 && fault_rv_name(0x7fff) == NULL);
}

static void test_errors(void)
{
    refused("C_Sign:delay=1ms;C_Sing:error=CKR_DEVICE_ERROR",
            "HSMTLS_FAULT rule 2 \"C_Sing:error=CKR_DEVICE_ERROR\": unknown function \"C_Sing\"", NULL);
    refused("C_Sign:error=CKR_NOPE", "rule 1 ", "unknown return code \"CKR_NOPE\"");
    refused("C_Sign:error=CKR_OK", "CKR_OK is no error", NULL);
    refused("C_Sign:delay=5", "rule 1", "bad duration");
    refused("C_Sign:delay=5min", "delay=5min: bad duration", NULL);
    refused("C_Sign:delay=5ms~2", "jitter", "bad duration");
    refused("C_Sign:hang=", "hang=: bad duration", NULL);
    refused("C_Sign:delay=5ms@from=1h", "from=1h: bad duration", NULL);
    refused("C_Sign:delay=5ms@for=0s", "never be open", NULL);
    refused("C_Sign:slow=5ms", "unknown action \"slow\"", NULL);
    refused("C_Sign:delay", "action \"delay\"", NULL);
    refused("C_Sign", "expected TARGET:ACTION", NULL);
    refused("tokn:remove", "unknown target \"tokn\"", NULL);
    refused("token:vanish", "unknown action \"vanish\" for token", "token:remove");
    refused(";;C_Sign:delay=1ms@n=0", "rule 3", "n=0: expected a whole number");
    refused("C_Sign:delay=1ms@every=x", "every=x", NULL);
    refused("C_Sign:delay=1ms@n=1,every=2", "exclude each other", NULL);
    refused("C_Sign:delay=1ms@when=2", "unknown condition \"when\"", NULL);
    refused("C_Sign:delay=1ms@", "nothing after '@'", NULL);
    refused("C_Sign:delay=1ms@n", "has no '='", NULL);
    refused("C_GetFunctionList:delay=1ms", "cannot be faulted", NULL);
    /* Control characters are escaped; a long rule is shortened. */
    refused("C_\x01Sign:delay=1ms", "\"C_\\x01Sign:delay=1ms\"", NULL);
    char longrule[400];
    memset(longrule, 'x', sizeof longrule - 1);
    longrule[sizeof longrule - 1] = '\0';
    memcpy(longrule, "C_Sign:delay=", 13);
    refused(longrule, "...\"", "bad duration");
}

static int holds(struct fault_rule *r, int fn, uint64_t t, const char *state)
{
    return fault_rule_holds(r, fn, t, state);
}

static void test_when(void)
{
    /* n=3: the third call of the target only; other functions are not counted. */
    CHECK(parses("C_Sign:error=CKR_DEVICE_ERROR@n=3"));
    struct fault_rule *r = &plan.rules[0];
    int got[6];
    for (int i = 0; i < 6; i++) {
        CHECK(!holds(r, FAULT_FN_C_SignInit, 0, ""));
        got[i] = holds(r, FAULT_FN_C_Sign, 0, "");
    }
    CHECK(!got[0] && !got[1] && got[2] && !got[3] && !got[4] && !got[5]);
    /* every=2 */
    CHECK(parses("*:delay=1ms@every=2"));
    r = &plan.rules[0];
    CHECK(!holds(r, FAULT_FN_C_Sign, 0, "") && holds(r, FAULT_FN_C_Login, 0, "") && !holds(r, FAULT_FN_C_Sign, 0, "") &&
          holds(r, FAULT_FN_C_Sign, 0, ""));
    /* '*' leaves out the four functions around initialisation. */
    CHECK(!holds(r, FAULT_FN_C_GetInfo, 0, "") && !holds(r, FAULT_FN_C_Initialize, 0, "") &&
          !holds(r, FAULT_FN_C_Finalize, 0, "") && !holds(r, FAULT_FN_C_GetInfo, 0, ""));
    /* A window from 2 s for 1 s. */
    CHECK(parses("token:remove@from=2s,for=1s"));
    r = &plan.rules[0];
    CHECK(!holds(r, FAULT_FN_C_Sign, 1999 * MS, "") && holds(r, FAULT_FN_C_Sign, 2 * S, "") &&
          holds(r, FAULT_FN_C_Sign, 2999 * MS, "") && !holds(r, FAULT_FN_C_Sign, 3 * S, ""));
    CHECK(parses("C_Sign:delay=1ms@for=1s"));
    CHECK(holds(&plan.rules[0], FAULT_FN_C_Sign, 0, "") && !holds(&plan.rules[0], FAULT_FN_C_Sign, 1 * S, ""));
    CHECK(parses("C_Sign:delay=1ms@from=1s"));
    CHECK(!holds(&plan.rules[0], FAULT_FN_C_Sign, 0, "") && holds(&plan.rules[0], FAULT_FN_C_Sign, 100 * S, ""));
    /* A state; n= counts only the calls the state let through. */
    CHECK(parses("C_Sign:error=CKR_DEVICE_ERROR@state=down,n=2"));
    r = &plan.rules[0];
    CHECK(!holds(r, FAULT_FN_C_Sign, 0, "") && !holds(r, FAULT_FN_C_Sign, 0, "up") && !holds(r, FAULT_FN_C_Sign, 0, "down") &&
          holds(r, FAULT_FN_C_Sign, 0, "down") && !holds(r, FAULT_FN_C_Sign, 0, "down"));
    /* An event without n= or every= fires once each time its gate opens. */
    CHECK(parses("sessions:invalidate@state=flip"));
    r = &plan.rules[0];
    CHECK(!holds(r, FAULT_FN_C_Sign, 0, "") && holds(r, FAULT_FN_C_Sign, 0, "flip") && !holds(r, FAULT_FN_C_Sign, 0, "flip") &&
          !holds(r, FAULT_FN_C_Sign, 0, "") && holds(r, FAULT_FN_C_Sign, 0, "flip"));
    CHECK(parses("objects:stale"));
    r = &plan.rules[0];
    CHECK(holds(r, FAULT_FN_C_Sign, 0, "") && !holds(r, FAULT_FN_C_Sign, 0, ""));
    /* A state target holds on every call while its gate is open. */
    CHECK(parses("device:down@state=down"));
    r = &plan.rules[0];
    CHECK(holds(r, FAULT_FN_C_Sign, 0, "down") && holds(r, FAULT_FN_C_Sign, 0, "down") && !holds(r, FAULT_FN_C_Sign, 0, ""));
}

int main(void)
{
    test_actions();
    test_errors();
    test_when();
    fault_plan_free(&plan);
    return check_finish();
}
