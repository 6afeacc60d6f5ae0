/* The single call point: counters per PKCS#11 function and the HSMTLS_DEBUG trace.
 * Benchmarks read the counters to report round trips per operation. */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const fn_names[HSMTLS_P11_FN_COUNT] = {
#define HSMTLS_P11_NAME(f) #f,
    HSMTLS_P11_FUNCTIONS(HSMTLS_P11_NAME)
#undef HSMTLS_P11_NAME
};

static _Atomic unsigned long counts[HSMTLS_P11_FN_COUNT];
static _Thread_local struct timespec call_started;
static int trace_state = -1; /* -1: not read yet */

static int tracing(void)
{
    if (trace_state < 0) {
        const char *v = getenv("HSMTLS_DEBUG");
        trace_state = v && *v && strcmp(v, "0") != 0;
    }
    return trace_state;
}

void hsmtls_p11_call_start(enum hsmtls_p11_fn fn)
{
    (void)fn;
    if (tracing())
        clock_gettime(CLOCK_MONOTONIC, &call_started);
}

CK_RV hsmtls_p11_call_done(enum hsmtls_p11_fn fn, CK_RV rv)
{
    atomic_fetch_add_explicit(&counts[fn], 1, memory_order_relaxed);
    if (tracing()) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long us = (long)((now.tv_sec - call_started.tv_sec) * 1000000L +
                         (now.tv_nsec - call_started.tv_nsec) / 1000L);
        /* Arguments are not printed: they may hold a PIN. */
        fprintf(stderr, "hsmtls: %s = %s (%ld us)\n", fn_names[fn], hsmtls_p11_rv_name(rv), us);
    }
    return rv;
}

unsigned long hsmtls_p11_calls(const char *fn)
{
    for (int i = 0; i < HSMTLS_P11_FN_COUNT; i++)
        if (strcmp(fn_names[i], fn) == 0)
            return atomic_load(&counts[i]);
    return 0;
}

unsigned long hsmtls_p11_calls_total(void)
{
    unsigned long total = 0;
    for (int i = 0; i < HSMTLS_P11_FN_COUNT; i++)
        total += atomic_load(&counts[i]);
    return total;
}

void hsmtls_p11_calls_reset(void)
{
    for (int i = 0; i < HSMTLS_P11_FN_COUNT; i++)
        atomic_store(&counts[i], 0);
}

void hsmtls_p11_calls_print(FILE *out)
{
    for (int i = 0; i < HSMTLS_P11_FN_COUNT; i++) {
        unsigned long c = atomic_load(&counts[i]);
        if (c)
            fprintf(out, "%s %lu\n", fn_names[i], c);
    }
}
