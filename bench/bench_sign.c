/* hsmtls-bench-sign: token signatures per second six ways, and TLS handshakes per
 * second with a token key, in one run, against the SoftHSM2 sandbox
 * (softhsm/sandbox DIR; . DIR/env.sh):
 *   raw       the module's own function list, one session per thread, the token key's
 *             handle found once, C_SignInit + C_Sign in a loop;
 *   raw-copy  the same loop on a session-object copy of the key that this program makes
 *             (C_CopyObject, CKA_TOKEN false): the token's own limit, since SoftHSM2 reads
 *             a token object's file again on every operation and a session object's never;
 *   core      hsmtls_p11_object_find once, then hsmtls_p11_sign (the core signs with a
 *             copy of its own when its key cache is on, the default);
 *   provider  EVP_DigestSign with the token key loaded by URI through OSSL_STORE from the
 *             hsmtls provider (its own library context, beside the default provider);
 *   peer      the same through another provider (--peer-provider: pkcs11-provider);
 *   software  EVP_DigestSign with the PEM copy of the key (default provider).
 * Also counts PKCS#11 calls per warm signature and per key load, through the core and
 * through the provider: both use the one core library of this process (since issue 11),
 * so its counters see both; then handshakes against openssl s_server (bench_tls.c).
 * usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] [--keys rsa2048,ec-p256,ed25519]
 *                          [--provider PATH] [--peer-provider PATH] [--no-tls] */
#include "hsmtls/p11_module.h"
#include "hsmtls/p11_object.h"
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#ifndef HSMTLS_BENCH_PROVIDER
#define HSMTLS_BENCH_PROVIDER "hsmtls.so"
#endif

#define TOKEN "server"
#define PIN "1234"
#define MAX_THREADS 64
#define MAX_LIST 16
#define CALL_SIGNATURES 50 /* signatures in the provider's call count */
/* The key-load counts use the first keys of these the run has not loaded yet. */
static const char *const load_probes[] = { "rsa3072", "ec-p384", "ec-p521", "rsa2048", "ec-p256" };

enum path { RAW, COPY, CORE, PROV, PEER, SOFT, NPATHS };

struct key {
    const char *label;
    CK_MECHANISM mech;
    unsigned char in[64];          /* what the token signs: digest, DigestInfo or message */
    CK_ULONG in_len;
    unsigned char msg[32];         /* what EVP_DigestSign signs (it hashes it itself) */
    CK_OBJECT_HANDLE raw, copy;    /* the token object, this program's session copy */
    hsmtls_p11_object *core;
    EVP_PKEY *pkey[NPATHS];        /* PROV, PEER, SOFT: the key in that library context */
    EVP_MD *md[NPATHS];            /* SHA256 fetched once there; NULL for EdDSA */
};

struct worker {
    struct run *run;
    CK_SESSION_HANDLE session;     /* raw paths only */
    unsigned long ops;
    struct timespec start, end;
    char err[512];
};

struct run {
    struct key *k;
    enum path path;
    pthread_barrier_t go;
    struct timespec deadline;
    struct worker w[MAX_THREADS];
};

static CK_FUNCTION_LIST *raw_fl;
static CK_SESSION_HANDLE raw_sessions[MAX_THREADS];
static CK_SESSION_HANDLE copy_session; /* holds the raw-copy keys, open for the whole run */
/* The library context of each EVP path: the hsmtls provider's, the peer's (NULL without
 * --peer-provider), and NULL (the default context, no openssl.cnf) for software. */
static OSSL_LIB_CTX *ctx_of[NPATHS];
static enum path paths[NPATHS];        /* the paths of this run, in round order */
static int npaths;
static unsigned long copy_calls;       /* C_CopyObject through the core, before the last reset */

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hsmtls-bench-sign: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(CK_RV rv, const char *what)
{
    if (rv != CKR_OK)
        die("%s: %s", what, hsmtls_p11_rv_name(rv));
}

struct timespec after(struct timespec t, double s)
{
    long long ns = t.tv_nsec + (long long)(s * 1e9);
    t.tv_sec += ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    return t;
}

double seconds_between(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* Resets the core's call counters, keeping the C_CopyObject count of the run. */
static void calls_reset(void)
{
    copy_calls += hsmtls_p11_calls("C_CopyObject");
    hsmtls_p11_calls_reset();
}

/* One signature on the run's path; 0, or -1 with the reason in w->err. */
static int sign_once(struct worker *w, EVP_MD_CTX *ctx)
{
    struct key *k = w->run->k;
    enum path p = w->run->path;
    unsigned char sig[1024];
    if (p == RAW || p == COPY) {
        CK_ULONG len = sizeof sig;
        CK_RV rv = raw_fl->C_SignInit(w->session, &k->mech, p == RAW ? k->raw : k->copy);
        if (rv == CKR_OK && (rv = raw_fl->C_Sign(w->session, k->in, k->in_len, sig, &len)) == CKR_OK)
            return 0;
        snprintf(w->err, sizeof w->err, "raw signing with %s%s: %s", k->label,
                 p == COPY ? "'s session copy" : "", hsmtls_p11_rv_name(rv));
    } else if (p == CORE) {
        size_t len = sizeof sig;
        if (hsmtls_p11_sign(k->core, &k->mech, k->in, k->in_len, sig, &len) == 0)
            return 0;
        snprintf(w->err, sizeof w->err, "%s", hsmtls_p11_error_message());
    } else {
        /* Initialised for every signature, as a TLS handshake does; the same calls on
         * every EVP path. */
        size_t len = sizeof sig;
        if (EVP_DigestSignInit(ctx, NULL, k->md[p], NULL, k->pkey[p]) == 1 &&
            EVP_DigestSign(ctx, sig, &len, k->msg, sizeof k->msg) == 1)
            return 0;
        unsigned long e = ERR_peek_last_error();
        snprintf(w->err, sizeof w->err, "EVP_DigestSign with %s%s failed: %s",
                 p == PROV ? "the hsmtls provider's " : p == PEER ? "the peer provider's " : "soft/",
                 k->label, e ? ERR_error_string(e, NULL) : "no reason given");
    }
    return -1;
}

/* Counts signatures from the start barrier until the deadline. Each thread times itself
 * from its own wake-up: with rounds of 20 ms, a late wake-up would otherwise count. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    int evp = r->path >= PROV;
    EVP_MD_CTX *ctx = evp ? EVP_MD_CTX_new() : NULL;
    int failed = evp && !ctx;
    pthread_barrier_wait(&r->go); /* main has reset the call counters and set the deadline */
    clock_gettime(CLOCK_MONOTONIC, &w->start);
    while (!failed) {
        failed = sign_once(w, ctx) < 0;
        w->ops += !failed;
        clock_gettime(CLOCK_MONOTONIC, &w->end);
        if (seconds_between(r->deadline, w->end) >= 0)
            break;
    }
    if (failed && !w->err[0])
        snprintf(w->err, sizeof w->err, "out of memory");
    EVP_MD_CTX_free(ctx);
    return NULL;
}

/* One timed measurement on nthreads threads: the signatures made, the threads' mean
 * time from their start to the end of their last signature (*elapsed), and the core's
 * PKCS#11 calls (*calls). */
static unsigned long measure(struct key *k, enum path p, int nthreads, double seconds,
                             double *elapsed, unsigned long *calls)
{
    static struct run r;
    pthread_t tid[MAX_THREADS];
    memset(&r, 0, sizeof r);
    r.k = k, r.path = p;
    pthread_barrier_init(&r.go, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        r.w[i].run = &r;
        r.w[i].session = raw_sessions[i];
        if (pthread_create(&tid[i], NULL, worker_main, &r.w[i]) != 0)
            die("cannot start a thread");
    }
    calls_reset(); /* no signature is under way: the threads wait for go */
    clock_gettime(CLOCK_MONOTONIC, &r.deadline);
    r.deadline = after(r.deadline, seconds);
    pthread_barrier_wait(&r.go);
    unsigned long ops = 0;
    *elapsed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (r.w[i].err[0])
            die("%s", r.w[i].err);
        ops += r.w[i].ops;
        *elapsed += seconds_between(r.w[i].start, r.w[i].end) / nthreads;
    }
    *calls = hsmtls_p11_calls_total();
    pthread_barrier_destroy(&r.go);
    return ops;
}

/* A blank-padded CK_* string without its padding, for printing with "%.*s". */
static int unpadded(const unsigned char *s, int size)
{
    while (size > 0 && s[size - 1] == ' ')
        size--;
    return size;
}

/* The raw paths load the module themselves and call its function list directly, so
 * their calls never pass through (or count in) the core. dlopen returns the library the
 * core also loads: whichever initialises second gets CKR_CRYPTOKI_ALREADY_INITIALIZED. */
static void raw_setup(const char *module, int nsessions, CK_INFO *info)
{
    void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        die("cannot load the PKCS#11 module: %s", dlerror());
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    if (!get_list || get_list(&raw_fl) != CKR_OK)
        die("%s is not a PKCS#11 module", module);
    CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
    CK_RV rv = raw_fl->C_Initialize(&args);
    check(rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv, "C_Initialize");
    check(raw_fl->C_GetInfo(info), "C_GetInfo");
    CK_SLOT_ID slots[64], slot = (CK_SLOT_ID)-1;
    CK_ULONG n = 64;
    check(raw_fl->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
    for (CK_ULONG i = 0; i < n && slot == (CK_SLOT_ID)-1; i++) {
        CK_TOKEN_INFO ti;
        if (raw_fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            unpadded(ti.label, 32) == (int)strlen(TOKEN) && memcmp(ti.label, TOKEN, strlen(TOKEN)) == 0)
            slot = slots[i];
    }
    if (slot == (CK_SLOT_ID)-1)
        die("no token \"%s\" (is SOFTHSM2_CONF the sandbox's?)", TOKEN);
    for (int i = 0; i < nsessions; i++)
        check(raw_fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &raw_sessions[i]),
              "C_OpenSession");
    check(raw_fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &copy_session),
          "C_OpenSession");
    /* Login belongs to the application, not the session: one serves every session. */
    rv = raw_fl->C_Login(raw_sessions[0], CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN));
    check(rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv, "C_Login");
}

/* The private key's handle, looked up once: C_FindObjects costs more than a signature. */
static CK_OBJECT_HANDLE raw_find(const char *label)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof cls },
                            { CKA_LABEL, (void *)label, strlen(label) } };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    check(raw_fl->C_FindObjectsInit(raw_sessions[0], tmpl, 2), "C_FindObjectsInit");
    check(raw_fl->C_FindObjects(raw_sessions[0], &h, 1, &n), "C_FindObjects");
    check(raw_fl->C_FindObjectsFinal(raw_sessions[0]), "C_FindObjectsFinal");
    if (n != 1)
        die("no private key \"%s\" on token \"%s\"", label, TOKEN);
    return h;
}

/* A session-object copy of the token key, made in copy_session, which stays open for the
 * run: a session object lives as long as the session that made it, and every session of
 * the application can use it, so the raw-copy threads sign with it in their own sessions. */
static CK_OBJECT_HANDLE raw_copy(const char *label, CK_OBJECT_HANDLE key)
{
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = { { CKA_TOKEN, &no, sizeof no } };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = raw_fl->C_CopyObject(copy_session, key, tmpl, 1, &h);
    if (rv != CKR_OK)
        die("C_CopyObject of %s with CKA_TOKEN false: %s", label, hsmtls_p11_rv_name(rv));
    return h;
}

/* The URI of a key on the sandbox token, with the PIN when `pin`. */
static const char *key_uri(const char *label, int pin)
{
    static char uri[256];
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s;type=private%s", TOKEN, label,
             pin ? "?pin-value=" PIN : "");
    return uri;
}

static hsmtls_p11_object *core_find(const char *label)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(key_uri(label, 1));
    hsmtls_p11_object *o = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    hsmtls_p11_uri_free(uri);
    if (!o)
        die("%s", hsmtls_p11_error_message());
    return o;
}

/* The key in its forms, and what each signs: RSA PKCS#1 v1.5 over a SHA-256 DigestInfo,
 * ECDSA over a SHA-256 digest, EdDSA over a 32-byte message. */
static void key_setup(struct key *k, const char *label, const char *sandbox)
{
    static const unsigned char digest_info[19] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
        0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
    unsigned char digest[32];
    k->label = label;
    memset(k->msg, 'm', sizeof k->msg);
    EVP_Digest(k->msg, sizeof k->msg, digest, NULL, EVP_sha256(), NULL);
    k->core = core_find(label);
    k->raw = raw_find(label);
    k->copy = raw_copy(label, k->raw);
    CK_KEY_TYPE type = hsmtls_p11_object_key_type(k->core);
    size_t prefix = type == CKK_RSA ? sizeof digest_info : 0;
    k->mech.mechanism = type == CKK_RSA ? CKM_RSA_PKCS : type == CKK_EC ? CKM_ECDSA : CKM_EDDSA;
    if (type != CKK_RSA && type != CKK_EC && type != CKK_EC_EDWARDS)
        die("%s: %s keys are not benchmarked", label, hsmtls_p11_key_type_name(type));
    memcpy(k->in, digest_info, prefix);
    memcpy(k->in + prefix, type == CKK_EC_EDWARDS ? k->msg : digest, 32);
    k->in_len = prefix + 32;
    char path[4096];
    snprintf(path, sizeof path, "%s/soft/%s.key", sandbox, label);
    FILE *f = fopen(path, "r");
    k->pkey[SOFT] = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k->pkey[SOFT])
        die("cannot read the software key %s", path);
    k->pkey[PROV] = store_load(ctx_of[PROV], key_uri(label, 1), "the hsmtls provider");
    if (ctx_of[PEER]) /* its PIN comes from its openssl.cnf */
        k->pkey[PEER] = store_load(ctx_of[PEER], key_uri(label, 0), "the peer provider");
    for (enum path p = PROV; p <= SOFT; p++)
        if (k->pkey[p] && type != CKK_EC_EDWARDS &&
            !(k->md[p] = EVP_MD_fetch(ctx_of[p], "SHA256", NULL)))
            die("cannot fetch SHA256");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "copy" when the core signs with a copy of the key inside the token (its key cache,
 * pkcs11/include/hsmtls/p11_object.h), "token" when with the token object. */
static const char *core_key(const struct key *k)
{
    return hsmtls_p11_object_cached(k->core) ? "copy" : "token";
}

/* The ratios of the table: each the median of the rounds' ratios. */
enum ratio { COPY_RAW, CORE_COPY, PROV_COPY, PROV_PEER, NRATIOS };
static const enum path ratio_of[NRATIOS][2] = {
    { COPY, RAW }, { CORE, COPY }, { PROV, COPY }, { PROV, PEER } };

/* Each path's time is cut into rounds of about 20 ms, run in the order of paths[], then
 * in reverse, and so on; rates are totals, ratios the median of the rounds' ratios. A
 * shared VM's speed swings by ±20% within a quarter second (other guests, other work):
 * with rounds of 0.25 s and ratios of totals, core/raw came out 92-107% for the same
 * build; short paired rounds put the paths through the same swings, and the median
 * ignores bursts. */
static void bench_key(struct key *k, int nthreads, double seconds)
{
    int rounds = 2 * (seconds > 0.06 ? (int)(seconds / 0.04 + 0.5) : 1);
    unsigned long ops[NPATHS] = { 0 }, core_calls = 0, calls;
    double time[NPATHS] = { 0 }, rate[NPATHS], t;
    double *ratio = calloc(NRATIOS * (size_t)rounds, sizeof *ratio);
    if (!ratio)
        die("out of memory");
    /* The first signatures after a pause run slow (caches, clock ramp-up, the module's
     * first use of the key), the core's pool grows to a session per thread, and the core
     * copies the key into the token: a discarded 0.1 s on each path takes all that. */
    for (int i = 0; i < npaths; i++)
        measure(k, paths[i], nthreads, 0.1, &t, &calls);
    for (int i = 0; i < rounds * npaths; i++) {
        int round = i / npaths;
        enum path p = paths[round % 2 ? npaths - 1 - i % npaths : i % npaths];
        unsigned long n = measure(k, p, nthreads, seconds / rounds, &t, &calls);
        ops[p] += n;
        time[p] += t;
        core_calls += p == CORE ? calls : 0;
        rate[p] = (double)n / t; /* this round's; t > 0: every thread signs at least once */
        if (i % npaths == npaths - 1)
            for (int r = 0; r < NRATIOS; r++)
                ratio[r * rounds + round] = rate[ratio_of[r][0]] / rate[ratio_of[r][1]];
    }
    printf("%-9s %7d", k->label, nthreads);
    for (enum path p = RAW; p < NPATHS; p++) {
        if (ops[p])
            printf(" %8.0f", (double)ops[p] / time[p]);
        else
            printf(" %8s", "-");
    }
    for (int r = 0; r < NRATIOS; r++) {
        if (ops[ratio_of[r][0]] && ops[ratio_of[r][1]])
            printf(" %8.1f%%", 100 * median(ratio + r * rounds, rounds));
        else
            printf(" %9s", "-");
    }
    printf(" %9.3f %8s\n", (double)core_calls / (double)ops[CORE], core_key(k));
    fflush(stdout);
    free(ratio);
}

/* Prints the core's calls since the last reset: the total (per signature when `per` > 1),
 * then "C_FindObjects 1, ...". */
static void print_calls(const char *what, unsigned long per)
{
    char *buf = NULL, *save = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        die("out of memory");
    hsmtls_p11_calls_print(mem);
    fclose(mem);
    if (per > 1)
        printf("  %s: %.3f (", what, (double)hsmtls_p11_calls_total() / (double)per);
    else
        printf("  %s: %lu (", what, hsmtls_p11_calls_total());
    const char *sep = "";
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), sep = ", ")
        printf("%s%s", sep, line);
    printf("%s", *buf ? "" : "none");
    if (per > 1)
        printf(" in %lu signatures", per);
    printf(")\n");
    free(buf);
}

/* The n-th key of load_probes (from 0) that the run has not loaded. */
static const char *probe_key(char **labels, int nkeys, int n)
{
    for (size_t i = 0; i < sizeof load_probes / sizeof load_probes[0]; i++) {
        int used = 0;
        for (int j = 0; j < nkeys; j++)
            used |= strcmp(labels[j], load_probes[i]) == 0;
        if (!used && n-- == 0)
            return load_probes[i];
    }
    return NULL;
}

/* PKCS#11 calls by key load and warm signature, through the core and through the
 * provider. The token is logged in by now. A key nobody has asked for yet is looked up
 * through the core, twice (the second from the core's cache), another one loaded through
 * the provider, twice; then warm signatures through the provider. Last, the C_CopyObject
 * calls of the whole run: the core's key cache copies a key once per process. */
static void bench_calls(struct key *keys, char **labels, int nkeys)
{
    const char *probe = probe_key(labels, nkeys, 0), *probe2 = probe_key(labels, nkeys, 1);
    char what[160];
    printf("\nPKCS#11 calls, counted by the core library that this program and the hsmtls "
           "provider share\n(goals: exactly 2 per warm signature, at most 12 per key load "
           "after login, at most one C_CopyObject per key):\n");
    printf("  per warm signature through the core: the calls/sig column (C_SignInit + C_Sign)\n");
    if (probe) {
        calls_reset();
        core_find(probe);
        snprintf(what, sizeof what, "per key load through the core (%s, first lookup)", probe);
        print_calls(what, 1);
        calls_reset();
        core_find(probe);
        snprintf(what, sizeof what, "per key load through the core (%s, cached second lookup)", probe);
        print_calls(what, 1);
    }
    if (probe2) {
        for (int again = 0; again < 2; again++) {
            calls_reset();
            EVP_PKEY_free(store_load(ctx_of[PROV], key_uri(probe2, 1), "the hsmtls provider"));
            snprintf(what, sizeof what, "per key load through the provider (%s, %s)", probe2,
                     again ? "same URI again" : "first load");
            print_calls(what, 1);
        }
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024];
    for (int i = 0; i < nkeys; i++) {
        struct key *k = &keys[i];
        calls_reset();
        for (int j = 0; j < CALL_SIGNATURES; j++) {
            size_t len = sizeof sig;
            if (!ctx || EVP_DigestSignInit(ctx, NULL, k->md[PROV], NULL, k->pkey[PROV]) != 1 ||
                EVP_DigestSign(ctx, sig, &len, k->msg, sizeof k->msg) != 1)
                die("EVP_DigestSign with the hsmtls provider's %s failed", k->label);
        }
        snprintf(what, sizeof what, "per warm signature through the provider (%s, EVP_DigestSign)",
                 k->label);
        print_calls(what, CALL_SIGNATURES);
    }
    EVP_MD_CTX_free(ctx);
    calls_reset();
    printf("  C_CopyObject through the core in this run: %lu for %d key%s signed with", copy_calls,
           nkeys, nkeys == 1 ? "" : "s");
    for (int i = 0; i < nkeys; i++)
        printf("%s %s %lu", i ? "," : " (copies per key:", keys[i].label,
               hsmtls_p11_object_copies(keys[i].core));
    printf(")\n");
}

static void usage(void)
{
    fprintf(stderr, "usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] "
                    "[--keys rsa2048,ec-p256,ed25519]\n"
                    "                         [--provider PATH] [--peer-provider PATH] [--no-tls]\n"
                    "Run it in a SoftHSM2 sandbox: softhsm/sandbox DIR && . DIR/env.sh\n");
    exit(2);
}

/* Splits a comma-separated list in place. */
static int split(char *list, char **out)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && n < MAX_LIST; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

/* A number with `decimals` and `unit` in `width` columns, "-" when the server did not run
 * (0). */
static void print_num(double v, int width, int decimals, const char *unit)
{
    if (v > 0)
        printf(" %*.*f%s", width - (int)strlen(unit), decimals, v, unit);
    else
        printf(" %*s", width, "-");
}

static void bench_tls(struct key *keys, int nkeys, const char *sandbox, double seconds, int peer)
{
    const char *conf = getenv("OPENSSL_CONF");
    if (!conf || !*conf)
        die("OPENSSL_CONF is not set: openssl s_server needs the sandbox's openssl.cnf, which "
            "loads the provider (make the sandbox after building it), or run with --no-tls");
    printf("\nTLS handshakes per second against openssl s_server on 127.0.0.1, all with -cert "
           "certs/LABEL.pem:\n"
           "ours: -key pkcs11:token=%s;object=LABEL;type=private, OPENSSL_CONF=%s (the hsmtls "
           "provider);\nsoft: -key soft/LABEL.key; peer: ",
           TOKEN, conf);
    if (peer)
        printf("the same URI, OPENSSL_CONF=%s (the peer provider);\n", peer_conf_path());
    else
        printf("not run (--peer-provider PATH);\n");
    printf("one client in this process, one connection at a time, full handshakes (no "
           "resumption, no tickets), no certificate verification;\n"
           "rates: totals over interleaved ~0.1 s rounds; ours/soft, peer/soft: median of the "
           "rounds' ratios;\nus:X: server X's CPU time (utime+stime from /proc/PID/stat) per "
           "handshake in microseconds over the timed rounds;\n+us:X: us:X minus us:soft, what "
           "the token key costs that server per handshake;\ncalls/hs: our server's PKCS#11 "
           "calls per handshake, from its trace lines in a separate short run with "
           "HSMTLS_DEBUG=1\n\n");
    printf("%-9s %-8s %7s %7s %7s %9s %9s %7s %7s %7s %8s %8s %8s\n", "key", "version", "ours/s",
           "soft/s", "peer/s", "ours/soft", "peer/soft", "us:ours", "us:soft", "us:peer", "+us:ours",
           "+us:peer", "calls/hs");
    fflush(stdout);
    for (int i = 0; i < nkeys; i++) {
        struct tls_result r[2];
        tls_bench_key(sandbox, keys[i].label, seconds, peer ? peer_conf_path() : NULL, r);
        for (int v = 0; v < 2; v++) {
            const double *u = r[v].cpu_us;
            printf("%-9s %-8s", keys[i].label, r[v].version);
            for (int s = 0; s < TLS_NSERVERS; s++)
                print_num(r[v].rate[s], 7, 0, "");
            printf(" %8.1f%%", 100 * r[v].ratio[TLS_OURS]);
            print_num(100 * r[v].ratio[TLS_PEER], 9, 1, "%");
            for (int s = 0; s < TLS_NSERVERS; s++)
                print_num(u[s], 7, 0, "");
            printf(" %8.0f", u[TLS_OURS] - u[TLS_SOFT]);
            if (peer)
                printf(" %8.0f", u[TLS_PEER] - u[TLS_SOFT]);
            else
                printf(" %8s", "-");
            printf(" %8.3f\n", r[v].calls);
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    /* The sandbox's env.sh may set OPENSSL_CONF to load the hsmtls provider: the software
     * reference and the TLS client must be OpenSSL's default provider alone, so no
     * configuration is read. Each provider gets a library context of its own. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    double seconds = 2;
    int tls = 1;
    char threads_arg[] = "1,2", keys_arg[] = "rsa2048,ec-p256,ed25519";
    char *tlist = threads_arg, *klist = keys_arg, *labels[MAX_LIST], *counts[MAX_LIST], *end;
    const char *provider = getenv("HSMTLS_PROVIDER"), *peer = NULL;
    if (!provider || !*provider)
        provider = HSMTLS_BENCH_PROVIDER;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--no-tls") == 0) {
            tls = 0, i--;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--seconds") == 0 && (seconds = strtod(argv[i + 1], &end)) > 0 && !*end)
            continue;
        else if (strcmp(argv[i], "--threads") == 0)
            tlist = argv[i + 1];
        else if (strcmp(argv[i], "--keys") == 0)
            klist = argv[i + 1];
        else if (strcmp(argv[i], "--provider") == 0)
            provider = argv[i + 1];
        else if (strcmp(argv[i], "--peer-provider") == 0 && *argv[i + 1])
            peer = argv[i + 1];
        else
            usage();
    }
    int nkeys = split(klist, labels), ntc = split(tlist, counts), threads[MAX_LIST], max_threads = 0;
    for (int i = 0; i < ntc; i++) {
        threads[i] = atoi(counts[i]);
        if (threads[i] < 1 || threads[i] > MAX_THREADS)
            die("--threads: a count is 1 to %d, not \"%s\"", MAX_THREADS, counts[i]);
        max_threads = threads[i] > max_threads ? threads[i] : max_threads;
    }
    if (nkeys == 0 || ntc == 0)
        usage();

    /* The sandbox's env.sh sets all three; without them the numbers would come from
     * whatever token the system has, or none. */
    const char *vars[] = { "HSMTLS_SANDBOX", "SOFTHSM2_CONF", "HSMTLS_PKCS11_MODULE" };
    for (size_t i = 0; i < 3; i++)
        if (!getenv(vars[i]) || !*getenv(vars[i])) {
            fprintf(stderr, "hsmtls-bench-sign: %s is not set: the SoftHSM2 sandbox environment "
                    "is missing.\nMake a sandbox and source it: softhsm/sandbox DIR && "
                    ". DIR/env.sh\n", vars[i]);
            return 2;
        }
    const char *module = getenv("HSMTLS_PKCS11_MODULE"), *sandbox = getenv("HSMTLS_SANDBOX");

    CK_INFO info;
    raw_setup(module, max_threads, &info);
    ctx_of[PROV] = provider_ctx(provider);
    if (peer)
        ctx_of[PEER] = peer_ctx(peer, sandbox);
    for (enum path p = RAW; p < NPATHS; p++)
        if (p != PEER || peer)
            paths[npaths++] = p;
    struct key keys[MAX_LIST] = { 0 };
    for (int i = 0; i < nkeys; i++)
        key_setup(&keys[i], labels[i], sandbox);

    printf("hsmtls-bench-sign: signatures per second, %g s per measurement, %ld CPUs online\n",
           seconds, sysconf(_SC_NPROCESSORS_ONLN));
    printf("module %s (%.*s %u.%u), token \"%s\"; %s\n", module,
           unpadded(info.libraryDescription, 32), (const char *)info.libraryDescription,
           info.libraryVersion.major,
           info.libraryVersion.minor, TOKEN, OpenSSL_version(OPENSSL_VERSION));
    printf("provider %s\npeer %s\n", provider, peer ? peer : "- (--peer-provider PATH)");
    printf("raw: the module's function list, a session per thread, the token key's handle found "
           "once;\ncopy: the same on a session-object copy of the key (C_CopyObject, CKA_TOKEN "
           "false) that this program made: the token's limit;\ncore: hsmtls_p11_sign (core-key: "
           "whether the core signed with a copy in the token, \"copy\", or the token object);\n"
           "prov, peer: EVP_DigestSign with the key loaded by URI through the hsmtls provider, "
           "the peer provider;\nsoft: EVP_DigestSign with the PEM key\n"
           "rates: totals over interleaved ~20 ms rounds; ratios: median of the rounds' ratios;\n"
           "calls/sig: the core's PKCS#11 calls per signature on the core path\n\n");
    printf("%-9s %7s %8s %8s %8s %8s %8s %8s %9s %9s %9s %9s %9s %8s\n", "key", "threads",
           "raw/s", "copy/s", "core/s", "prov/s", "peer/s", "soft/s", "copy/raw", "core/copy",
           "prov/copy", "prov/peer", "calls/sig", "core-key");
    for (int i = 0; i < nkeys; i++)
        for (int j = 0; j < ntc; j++)
            bench_key(&keys[i], threads[j], seconds);
    bench_calls(keys, labels, nkeys);
    fflush(stdout);

    if (tls)
        bench_tls(keys, nkeys, sandbox, seconds, peer != NULL);
    for (int i = 0; i < nkeys; i++)
        for (enum path p = PROV; p <= SOFT; p++) {
            EVP_PKEY_free(keys[i].pkey[p]);
            EVP_MD_free(keys[i].md[p]);
        }
    /* No C_Finalize, no session teardown, the providers' library contexts not freed:
     * SoftHSM2 can crash when finalised while its static destructors run at exit. */
    return 0;
}
