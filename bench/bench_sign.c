/* hsmtls-bench-sign: token signatures per second four ways, and TLS handshakes per
 * second with a token key, in one run, against the SoftHSM2 sandbox
 * (softhsm/sandbox DIR; . DIR/env.sh):
 *   raw       the module's own function list, one session per thread, key handle
 *             found once, C_SignInit + C_Sign in a loop: the token's own limit;
 *   core      hsmtls_p11_object_find once, then hsmtls_p11_sign: what the core costs;
 *   provider  EVP_DigestSign with the token key loaded by URI through OSSL_STORE from the
 *             hsmtls provider (its own library context, beside the default provider);
 *   software  EVP_DigestSign with the PEM copy of the key (default provider).
 * Also counts PKCS#11 calls per warm signature and per key load, through the core (its
 * counters) and through the provider (a short second run of this program with
 * HSMTLS_DEBUG=1: the provider links its own copy of the core, whose counters this
 * process cannot read); then handshakes against openssl s_server (bench_tls.c).
 * usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] [--keys rsa2048,ec-p256,ed25519]
 *                          [--provider PATH] [--no-tls] */
#include "hsmtls/p11_object.h"
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/store.h>

#ifndef HSMTLS_BENCH_PROVIDER
#define HSMTLS_BENCH_PROVIDER "hsmtls.so"
#endif

#define TOKEN "server"
#define PIN "1234"
#define MAX_THREADS 64
#define MAX_LIST 16
#define CALL_SIGNATURES 50 /* signatures in the provider's call count */
#define STR_(x) #x
#define STR(x) STR_(x)
/* The key-load count uses the first of these the run has not loaded yet. */
static const char *const load_probes[] = { "rsa3072", "ec-p384", "ec-p521", "rsa2048", "ec-p256" };

enum path { RAW, CORE, PROV, SOFT, NPATHS };

struct key {
    const char *label;
    CK_MECHANISM mech;
    unsigned char in[64];          /* what the token signs: digest, DigestInfo or message */
    CK_ULONG in_len;
    unsigned char msg[32];         /* what the software key signs (it hashes it itself) */
    CK_OBJECT_HANDLE raw;
    hsmtls_p11_object *core;
    EVP_PKEY *soft;
    EVP_MD *md;                    /* fetched once, not per signature; NULL for EdDSA */
    EVP_PKEY *prov;                /* the token key through the provider */
    EVP_MD *prov_md;               /* SHA256 in the provider's library context */
    double raw1, soft1;            /* 1-thread rates, for the handshake model */
};

struct worker {
    struct run *run;
    CK_SESSION_HANDLE session;     /* raw path only */
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
static OSSL_LIB_CTX *prov_ctx;     /* default + hsmtls providers, no openssl.cnf */

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

/* One signature on the run's path; 0, or -1 with the reason in w->err. */
static int sign_once(struct worker *w, EVP_MD_CTX *ctx)
{
    struct key *k = w->run->k;
    unsigned char sig[1024];
    if (w->run->path == RAW) {
        CK_ULONG len = sizeof sig;
        CK_RV rv = raw_fl->C_SignInit(w->session, &k->mech, k->raw);
        if (rv == CKR_OK && (rv = raw_fl->C_Sign(w->session, k->in, k->in_len, sig, &len)) == CKR_OK)
            return 0;
        snprintf(w->err, sizeof w->err, "raw signing with %s: %s", k->label, hsmtls_p11_rv_name(rv));
    } else if (w->run->path == CORE) {
        size_t len = sizeof sig;
        if (hsmtls_p11_sign(k->core, &k->mech, k->in, k->in_len, sig, &len) == 0)
            return 0;
        snprintf(w->err, sizeof w->err, "%s", hsmtls_p11_error_message());
    } else {
        /* Initialised for every signature, as a TLS handshake does; the same calls for
         * the provider's key and the software key. */
        size_t len = sizeof sig;
        int prov = w->run->path == PROV;
        if (EVP_DigestSignInit(ctx, NULL, prov ? k->prov_md : k->md, NULL,
                               prov ? k->prov : k->soft) == 1 &&
            EVP_DigestSign(ctx, sig, &len, k->msg, sizeof k->msg) == 1)
            return 0;
        snprintf(w->err, sizeof w->err, "EVP_DigestSign with %s%s failed",
                 prov ? "the provider's " : "soft/", k->label);
    }
    return -1;
}

/* Counts signatures from the start barrier until the deadline. Each thread times itself
 * from its own wake-up: with rounds of 20 ms, a late wake-up would otherwise count. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    int evp = r->path == SOFT || r->path == PROV;
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
    hsmtls_p11_calls_reset(); /* no signature is under way: the threads wait for go */
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

/* The raw path loads the module itself and calls its function list directly, so its
 * calls never pass through (or count in) the core. dlopen returns the library the core
 * also loads: whichever initialises second gets CKR_CRYPTOKI_ALREADY_INITIALIZED. */
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

static hsmtls_p11_object *core_find(const char *label)
{
    char text[256];
    snprintf(text, sizeof text, "pkcs11:token=%s;object=%s;type=private?pin-value=%s", TOKEN,
             label, PIN);
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    hsmtls_p11_object *o = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    hsmtls_p11_uri_free(uri);
    if (!o)
        die("%s", hsmtls_p11_error_message());
    return o;
}

/* The provider in a library context of its own, beside the default provider; no
 * openssl.cnf is read, so the module comes from HSMTLS_PKCS11_MODULE and the PIN from
 * the URI. Unqualified fetches (SHA256) go to the default provider, as in the
 * sandbox's openssl.cnf. */
static void provider_setup(const char *path)
{
    if (!(prov_ctx = OSSL_LIB_CTX_new()) || !OSSL_PROVIDER_load(prov_ctx, "default") ||
        !EVP_set_default_properties(prov_ctx, "?provider=default"))
        die("cannot make a library context with the default provider");
    if (access(path, R_OK) != 0)
        die("no provider module %s (build it, or name one with --provider or HSMTLS_PROVIDER)",
            path);
    if (!OSSL_PROVIDER_load(prov_ctx, path)) {
        unsigned long e = ERR_peek_last_error();
        die("cannot load the provider %s: %s", path, e ? ERR_error_string(e, NULL) : "?");
    }
}

/* The private key by URI through the provider's store loader, as `openssl -key` does:
 * open, load until the key comes, close. */
static EVP_PKEY *provider_load(const char *label)
{
    char uri[256];
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s;type=private?pin-value=%s", TOKEN,
             label, PIN);
    OSSL_STORE_CTX *store = OSSL_STORE_open_ex(uri, prov_ctx, NULL, NULL, NULL, NULL, NULL, NULL);
    EVP_PKEY *pkey = NULL;
    while (store && !pkey && !OSSL_STORE_eof(store)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(store);
        if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
        if (!info && OSSL_STORE_error(store))
            break;
    }
    OSSL_STORE_close(store);
    if (!pkey) {
        unsigned long e = ERR_peek_last_error();
        die("the provider did not load pkcs11:token=%s;object=%s;type=private: %s", TOKEN, label,
            e ? ERR_error_string(e, NULL) : "no key");
    }
    return pkey;
}

/* The key in its four forms, and what each signs: RSA PKCS#1 v1.5 over a SHA-256
 * DigestInfo, ECDSA over a SHA-256 digest, EdDSA over a 32-byte message. */
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
    CK_KEY_TYPE type = hsmtls_p11_object_key_type(k->core);
    size_t prefix = type == CKK_RSA ? sizeof digest_info : 0;
    k->mech.mechanism = type == CKK_RSA ? CKM_RSA_PKCS : type == CKK_EC ? CKM_ECDSA : CKM_EDDSA;
    if (type != CKK_RSA && type != CKK_EC && type != CKK_EC_EDWARDS)
        die("%s: %s keys are not benchmarked", label, hsmtls_p11_key_type_name(type));
    memcpy(k->in, digest_info, prefix);
    memcpy(k->in + prefix, type == CKK_EC_EDWARDS ? k->msg : digest, 32);
    k->in_len = prefix + 32;
    if (type != CKK_EC_EDWARDS && (!(k->md = EVP_MD_fetch(NULL, "SHA256", NULL)) ||
                                   !(k->prov_md = EVP_MD_fetch(prov_ctx, "SHA256", NULL))))
        die("cannot fetch SHA256");
    char path[4096];
    snprintf(path, sizeof path, "%s/soft/%s.key", sandbox, label);
    FILE *f = fopen(path, "r");
    k->soft = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k->soft)
        die("cannot read the software key %s", path);
    k->prov = provider_load(label);
    k->raw1 = k->soft1 = NAN;
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

/* Each path's time is cut into rounds of about 20 ms, run raw core provider soft, then
 * soft provider core raw, and so on; rates are totals, ratios the median of the rounds'
 * ratios. A shared VM's speed swings by ±20% within a quarter second (other guests,
 * other work): with rounds of 0.25 s and ratios of totals, core/raw came out 92-107% for
 * the same build; short paired rounds put the paths through the same swings, and the
 * median ignores bursts. */
static void bench_key(struct key *k, int nthreads, double seconds)
{
    int rounds = 2 * (seconds > 0.06 ? (int)(seconds / 0.04 + 0.5) : 1);
    unsigned long ops[NPATHS] = { 0 }, core_calls = 0, calls;
    double time[NPATHS] = { 0 }, rate[NPATHS], t;
    double *core_raw = calloc(3 * (size_t)rounds, sizeof *core_raw);
    double *prov_raw = core_raw + rounds, *raw_soft = prov_raw + rounds;
    if (!core_raw)
        die("out of memory");
    /* The first signatures after a pause run slow (caches, clock ramp-up, the module's
     * first use of the key), and the core's pools (this process's and the provider's)
     * grow to a session per thread: a discarded 0.1 s on each path takes both. */
    for (int p = 0; p < NPATHS; p++)
        measure(k, (enum path)p, nthreads, 0.1, &t, &calls);
    for (int i = 0; i < rounds * NPATHS; i++) {
        int round = i / NPATHS;
        enum path p = (enum path)(round % 2 ? NPATHS - 1 - i % NPATHS : i % NPATHS);
        unsigned long n = measure(k, p, nthreads, seconds / rounds, &t, &calls);
        ops[p] += n;
        time[p] += t;
        core_calls += p == CORE ? calls : 0;
        rate[p] = (double)n / t; /* this round's; t > 0: every thread signs at least once */
        if (i % NPATHS == NPATHS - 1) {
            core_raw[round] = rate[CORE] / rate[RAW];
            prov_raw[round] = rate[PROV] / rate[RAW];
            raw_soft[round] = rate[RAW] / rate[SOFT];
        }
    }
    for (int p = 0; p < NPATHS; p++)
        rate[p] = (double)ops[p] / time[p];
    if (nthreads == 1)
        k->raw1 = rate[RAW], k->soft1 = rate[SOFT];
    printf("%-9s %7d %8.0f %8.0f %8.0f %8.0f %8.1f%% %8.1f%% %9.1f%% %9.3f\n", k->label,
           nthreads, rate[RAW], rate[CORE], rate[PROV], rate[SOFT], 100 * median(core_raw, rounds),
           100 * median(prov_raw, rounds), 100 * median(raw_soft, rounds),
           (double)core_calls / (double)ops[CORE]);
    fflush(stdout);
    free(core_raw);
}

/* Prints the core's calls since the last reset: total, then "C_FindObjects 1, ...". */
static void print_calls(const char *what, const char *label)
{
    char *buf = NULL, *save = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        die("out of memory");
    hsmtls_p11_calls_print(mem);
    fclose(mem);
    printf("  per key load (%s, %s): %lu (", label, what, hsmtls_p11_calls_total());
    const char *sep = "";
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), sep = ", ")
        printf("%s%s", sep, line);
    printf("%s)\n", *buf ? "" : "none");
    free(buf);
}

/* The first key of load_probes the run has not loaded. */
static const char *probe_key(char **labels, int nkeys)
{
    for (size_t i = 0; i < sizeof load_probes / sizeof load_probes[0]; i++) {
        int used = 0;
        for (int j = 0; j < nkeys; j++)
            used |= strcmp(labels[j], load_probes[i]) == 0;
        if (!used)
            return load_probes[i];
    }
    return NULL;
}

/* Loads a key nobody has asked for yet (the token is logged in by now), then looks it
 * up again, which the core's cache should answer. */
static void bench_key_load(char **labels, int nkeys)
{
    const char *probe = probe_key(labels, nkeys);
    if (!probe)
        return;
    hsmtls_p11_calls_reset();
    core_find(probe);
    print_calls("first lookup, after login", probe);
    hsmtls_p11_calls_reset();
    core_find(probe);
    print_calls("cached second lookup", probe);
}

/* --provider-calls: what this program runs in a child with HSMTLS_DEBUG=1 (see
 * provider_calls). It uses the provider alone, never this process's core, so every
 * "hsmtls: C_... = ..." trace line on stderr is the provider's; "#phase ..." lines
 * mark where each step begins. */
static int provider_calls_child(char **labels, int nkeys, const char *provider)
{
    provider_setup(provider);
    const char *probe = probe_key(labels, nkeys);
    EVP_PKEY *pkeys[MAX_LIST];
    for (int i = 0; i < nkeys; i++) {
        fprintf(stderr, "#phase load %s %s\n", labels[i], i == 0 ? "with-login" : "after-login");
        pkeys[i] = provider_load(labels[i]);
    }
    if (probe) {
        fprintf(stderr, "#phase load %s after-login\n", probe);
        EVP_PKEY_free(provider_load(probe));
        fprintf(stderr, "#phase load %s again\n", probe);
        EVP_PKEY_free(provider_load(probe));
    }
    EVP_MD *md = EVP_MD_fetch(prov_ctx, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char msg[32], sig[1024];
    memset(msg, 'm', sizeof msg);
    for (int i = 0; i < nkeys; i++) {
        int eddsa = EVP_PKEY_is_a(pkeys[i], "ED25519") || EVP_PKEY_is_a(pkeys[i], "ED448");
        for (int j = 0; j <= CALL_SIGNATURES; j++) {
            if (j < 2)
                fprintf(stderr, "#phase sign %s %s\n", labels[i], j == 0 ? "first" : "warm");
            size_t len = sizeof sig;
            if (!ctx || !md || EVP_DigestSignInit(ctx, NULL, eddsa ? NULL : md, NULL, pkeys[i]) != 1 ||
                EVP_DigestSign(ctx, sig, &len, msg, sizeof msg) != 1)
                die("EVP_DigestSign with the provider's %s failed", labels[i]);
        }
        EVP_PKEY_free(pkeys[i]);
    }
    fprintf(stderr, "#phase end\n");
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return 0;
}

#define MAX_FNS 64
struct phase {
    char name[128];
    unsigned long total, n[MAX_FNS];
};
static char fn_names[MAX_FNS][40];
static int nfns;

static void phase_print(const struct phase *ph, const char *what, unsigned long per)
{
    if (per > 1)
        printf("  %s: %.3f (", what, (double)ph->total / (double)per);
    else
        printf("  %s: %lu (", what, ph->total);
    const char *sep = "";
    for (int f = 0; f < nfns; f++)
        if (ph->n[f]) {
            printf("%s%s %lu", sep, fn_names[f], ph->n[f]);
            sep = ", ";
        }
    printf("%s%s)\n", ph->total ? "" : "none", per > 1 ? " in " STR(CALL_SIGNATURES) " signatures" : "");
}

/* Runs this program again with --provider-calls and HSMTLS_DEBUG=1, and sorts the
 * provider's trace lines by step. Tracing costs time, hence the separate run. */
static void provider_calls(char **labels, int nkeys, const char *provider)
{
    char keys[1024] = "";
    for (int i = 0; i < nkeys; i++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", i ? "," : "", labels[i]);
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("HSMTLS_DEBUG", "1", 1);
        execl("/proc/self/exe", "hsmtls-bench-sign", "--provider-calls", "1", "--keys", keys,
              "--provider", provider, (char *)NULL);
        dprintf(2, "cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    static struct phase phases[3 * MAX_LIST + 8];
    int nph = 0;
    struct phase *cur = NULL;
    char line[1024];
    while (in && fgets(line, sizeof line, in)) {
        char fn[40];
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "#phase ", 7) == 0 && nph < (int)(sizeof phases / sizeof phases[0])) {
            cur = &phases[nph++];
            snprintf(cur->name, sizeof cur->name, "%.120s", line + 7);
        } else if (sscanf(line, "hsmtls: %39[A-Za-z_] = ", fn) == 1 && strncmp(fn, "C_", 2) == 0) {
            int f = 0;
            while (f < nfns && strcmp(fn_names[f], fn) != 0)
                f++;
            if (f == nfns && nfns < MAX_FNS)
                snprintf(fn_names[nfns++], sizeof fn_names[0], "%s", fn);
            if (cur && f < MAX_FNS)
                cur->total++, cur->n[f]++;
        } else {
            fprintf(stderr, "%s\n", line); /* the child's errors, sanitizer reports */
        }
    }
    if (in)
        fclose(in);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || nph == 0 ||
        strcmp(phases[nph - 1].name, "end") != 0)
        die("the provider's call count (hsmtls-bench-sign --provider-calls) failed");
    printf("\nPKCS#11 calls through the provider (goals: exactly 2 per warm signature, at most "
           "12 per key load after login):\n"
           "  counted in a second run of this program with HSMTLS_DEBUG=1, from the provider's "
           "trace lines\n");
    for (int i = 0; i < nph - 1; i++) {
        char label[64], kind[32], what[160];
        if (sscanf(phases[i].name, "sign %63s %31s", label, kind) == 2 && strcmp(kind, "warm") == 0) {
            snprintf(what, sizeof what, "per warm signature (%s, EVP_DigestSign)", label);
            phase_print(&phases[i], what, CALL_SIGNATURES);
        } else if (sscanf(phases[i].name, "sign %63s %31s", label, kind) == 2) {
            snprintf(what, sizeof what, "first signature (%s)", label);
            phase_print(&phases[i], what, 1);
        } else if (sscanf(phases[i].name, "load %63s %31s", label, kind) == 2) {
            snprintf(what, sizeof what, "per key load (%s, %s)", label,
                     strcmp(kind, "with-login") == 0 ? "provider start and login"
                     : strcmp(kind, "again") == 0    ? "same URI again"
                                                     : "after login");
            phase_print(&phases[i], what, 1);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] "
                    "[--keys rsa2048,ec-p256,ed25519]\n"
                    "                         [--provider PATH] [--no-tls]\n"
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

static void bench_tls(struct key *keys, int nkeys, const char *sandbox, double seconds)
{
    const char *conf = getenv("OPENSSL_CONF");
    if (!conf || !*conf)
        die("OPENSSL_CONF is not set: openssl s_server needs the sandbox's openssl.cnf, which "
            "loads the provider (make the sandbox after building it), or run with --no-tls");
    printf("\nTLS handshakes per second against openssl s_server on 127.0.0.1 "
           "(OPENSSL_CONF=%s):\n"
           "one client in this process, one connection at a time, full handshakes "
           "(no resumption, no tickets), no certificate verification;\n"
           "token: -key pkcs11:token=%s;object=LABEL;type=private; soft: -key soft/LABEL.key; "
           "both -cert certs/LABEL.pem;\n"
           "rates: totals over interleaved ~0.1 s rounds; token/soft: median of the rounds' "
           "ratios;\ntoken/ideal: the token rate over the rate if a token handshake cost only "
           "the software one plus\n(1/raw - 1/soft) of the 1-thread signature rates above "
           "(100%%: the provider adds nothing);\ncalls/hs: the token server's PKCS#11 calls per "
           "handshake, from its trace lines in a separate short run with HSMTLS_DEBUG=1\n\n",
           conf, TOKEN);
    printf("%-9s %-8s %9s %9s %10s %11s %8s\n", "key", "version", "token/s", "soft/s", "token/soft",
           "token/ideal", "calls/hs");
    fflush(stdout);
    for (int i = 0; i < nkeys; i++) {
        struct tls_result r[2];
        tls_bench_key(sandbox, keys[i].label, seconds, r);
        for (int v = 0; v < 2; v++) {
            double ideal = 1 / (1 / r[v].soft_rate + 1 / keys[i].raw1 - 1 / keys[i].soft1);
            char ideal_text[32] = "-";
            if (isfinite(ideal) && ideal > 0)
                snprintf(ideal_text, sizeof ideal_text, "%.1f%%", 100 * r[v].token_rate / ideal);
            printf("%-9s %-8s %9.0f %9.0f %9.1f%% %11s %8.3f\n", keys[i].label, r[v].version,
                   r[v].token_rate, r[v].soft_rate, 100 * r[v].ratio, ideal_text, r[v].calls);
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    /* The sandbox's env.sh may set OPENSSL_CONF to load the hsmtls provider: the software
     * reference and the TLS client must be OpenSSL's default provider alone, so no
     * configuration is read. The provider gets a library context of its own. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    double seconds = 2;
    int tls = 1, calls_child = 0;
    char threads_arg[] = "1,2", keys_arg[] = "rsa2048,ec-p256,ed25519";
    char *tlist = threads_arg, *klist = keys_arg, *labels[MAX_LIST], *counts[MAX_LIST], *end;
    const char *provider = getenv("HSMTLS_PROVIDER");
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
        else if (strcmp(argv[i], "--provider-calls") == 0)
            calls_child = 1;
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
    if (calls_child)
        return provider_calls_child(labels, nkeys, provider);
    const char *module = getenv("HSMTLS_PKCS11_MODULE"), *sandbox = getenv("HSMTLS_SANDBOX");

    CK_INFO info;
    raw_setup(module, max_threads, &info);
    provider_setup(provider);
    struct key keys[MAX_LIST] = { 0 };
    for (int i = 0; i < nkeys; i++)
        key_setup(&keys[i], labels[i], sandbox);

    printf("hsmtls-bench-sign: signatures per second, %g s per measurement, %ld CPUs online\n",
           seconds, sysconf(_SC_NPROCESSORS_ONLN));
    printf("module %s (%.*s %u.%u), token \"%s\"; %s\n", module,
           unpadded(info.libraryDescription, 32), (const char *)info.libraryDescription,
           info.libraryVersion.major,
           info.libraryVersion.minor, TOKEN, OpenSSL_version(OPENSSL_VERSION));
    printf("provider %s\n", provider);
    printf("raw: the module's function list, a session per thread, the key handle found once\n"
           "core: hsmtls_p11_sign; prov: EVP_DigestSign with the key loaded through the "
           "provider by URI;\nsoft: EVP_DigestSign with the PEM key\n"
           "rates: totals over interleaved ~20 ms rounds; core/raw, prov/raw and token/soft "
           "(raw/soft): median of the rounds' ratios;\ncalls/sig: the core's PKCS#11 calls "
           "per signature on the core path\n\n");
    printf("%-9s %7s %8s %8s %8s %8s %9s %9s %10s %9s\n", "key", "threads", "raw/s", "core/s",
           "prov/s", "soft/s", "core/raw", "prov/raw", "token/soft", "calls/sig");
    for (int i = 0; i < nkeys; i++)
        for (int j = 0; j < ntc; j++)
            bench_key(&keys[i], threads[j], seconds);

    printf("\nPKCS#11 calls through the core (goals: exactly 2 per warm signature, "
           "at most 12 per key load):\n");
    printf("  per warm signature: the calls/sig column (C_SignInit + C_Sign)\n");
    bench_key_load(labels, nkeys);
    provider_calls(labels, nkeys, provider);
    fflush(stdout);

    if (tls)
        bench_tls(keys, nkeys, sandbox, seconds);
    for (int i = 0; i < nkeys; i++) {
        EVP_PKEY_free(keys[i].soft);
        EVP_PKEY_free(keys[i].prov);
        EVP_MD_free(keys[i].md);
        EVP_MD_free(keys[i].prov_md);
    }
    /* No C_Finalize and no session teardown: SoftHSM2 can crash when finalised while its
     * static destructors run at exit. */
    return 0;
}
