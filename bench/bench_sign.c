/* hsmtls-bench-sign: token signatures per second three ways, in one run, against the
 * SoftHSM2 sandbox (softhsm/sandbox DIR; . DIR/env.sh):
 *   raw       the module's own function list, one session per thread, key handle
 *             found once, C_SignInit + C_Sign in a loop: the token's own limit;
 *   core      hsmtls_p11_object_find once, then hsmtls_p11_sign: what the core costs;
 *   software  EVP_DigestSign with the PEM copy of the key (default provider).
 * Also counts the core's PKCS#11 calls per warm signature and per key load.
 * usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] [--keys rsa2048,ec-p256,ed25519] */
#include "hsmtls/p11_object.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define TOKEN "server"
#define PIN "1234"
#define MAX_THREADS 64
#define SIG_MAX 1024
/* Keys a key-load count may use: the first one not benchmarked is still unloaded. */
static const char *const load_probes[] = { "rsa3072", "ec-p384", "ec-p521", "rsa2048", "ec-p256" };

enum path { RAW, CORE, SOFT, NPATHS };

struct key {
    const char *label;
    CK_MECHANISM mech;
    unsigned char in[64];          /* what the token signs: digest, DigestInfo or message */
    CK_ULONG in_len;
    unsigned char msg[32];         /* what the software key signs (it hashes itself) */
    CK_OBJECT_HANDLE raw;
    hsmtls_p11_object *core;
    EVP_PKEY *soft;
    EVP_MD *md;                    /* NULL for EdDSA; fetched once, not per signature */
};

struct worker {
    struct run *run;
    CK_SESSION_HANDLE session;     /* raw only */
    unsigned long ops;
    struct timespec end;
    char err[512];
};

struct run {
    struct key *k;
    enum path path;
    int nthreads;
    double seconds;
    pthread_barrier_t ready, warm, go;
    struct timespec warm_until, start, deadline;
    struct worker w[MAX_THREADS];
};

static CK_FUNCTION_LIST *raw_fl;
static CK_SESSION_HANDLE raw_sessions[MAX_THREADS];

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "hsmtls-bench-sign: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static struct timespec after(struct timespec t, double s)
{
    long long ns = t.tv_nsec + (long long)(s * 1e9);
    t.tv_sec += ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    return t;
}

static int passed(const struct timespec *now, const struct timespec *t)
{
    return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static double seconds_between(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* One signature on the given path; 0, or -1 with the reason in w->err. */
static int sign_once(struct worker *w, EVP_MD_CTX *ctx)
{
    struct key *k = w->run->k;
    unsigned char sig[SIG_MAX];
    switch (w->run->path) {
    case RAW: {
        CK_ULONG len = sizeof sig;
        CK_RV rv = raw_fl->C_SignInit(w->session, &k->mech, k->raw);
        if (rv == CKR_OK)
            rv = raw_fl->C_Sign(w->session, k->in, k->in_len, sig, &len);
        if (rv == CKR_OK)
            return 0;
        snprintf(w->err, sizeof w->err, "raw C_SignInit/C_Sign with %s: %s", k->label,
                 hsmtls_p11_rv_name(rv));
        return -1;
    }
    case CORE: {
        size_t len = sizeof sig;
        if (hsmtls_p11_sign(k->core, &k->mech, k->in, k->in_len, sig, &len) == 0)
            return 0;
        snprintf(w->err, sizeof w->err, "%s", hsmtls_p11_error_message());
        return -1;
    }
    default: {
        /* Initialised per signature, as a TLS handshake does. */
        size_t len = sizeof sig;
        if (EVP_DigestSignInit(ctx, NULL, k->md, NULL, k->soft) == 1 &&
            EVP_DigestSign(ctx, sig, &len, k->msg, sizeof k->msg) == 1)
            return 0;
        snprintf(w->err, sizeof w->err, "EVP_DigestSign with soft/%s.key failed", k->label);
        return -1;
    }
    }
}

/* Warms up until warm_until (all threads at once, so the core's pool grows to one
 * session per thread before counting starts), then counts signatures until the deadline. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    EVP_MD_CTX *ctx = r->path == SOFT ? EVP_MD_CTX_new() : NULL;
    struct timespec now;
    int failed = r->path == SOFT && !ctx;
    if (failed)
        snprintf(w->err, sizeof w->err, "out of memory");
    pthread_barrier_wait(&r->ready);
    do {
        failed = failed || sign_once(w, ctx) < 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!failed && !passed(&now, &r->warm_until));
    pthread_barrier_wait(&r->warm); /* main now resets the call counters, sets the deadline */
    pthread_barrier_wait(&r->go);
    while (!failed) {
        failed = sign_once(w, ctx) < 0;
        w->ops += !failed;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (passed(&now, &r->deadline))
            break;
    }
    w->end = now;
    EVP_MD_CTX_free(ctx);
    return NULL;
}

/* One timed measurement; returns the operations done and the elapsed time in *elapsed,
 * and the core's PKCS#11 calls during it in *calls. */
static unsigned long measure(struct key *k, enum path p, int nthreads, double seconds,
                             double *elapsed, unsigned long *calls)
{
    static struct run r;
    pthread_t tid[MAX_THREADS];
    memset(&r, 0, sizeof r);
    r.k = k, r.path = p, r.nthreads = nthreads, r.seconds = seconds;
    pthread_barrier_init(&r.ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&r.warm, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&r.go, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        r.w[i].run = &r;
        r.w[i].session = raw_sessions[i];
        if (pthread_create(&tid[i], NULL, worker_main, &r.w[i]) != 0)
            die("cannot start a thread%s", "");
    }
    clock_gettime(CLOCK_MONOTONIC, &r.warm_until);
    r.warm_until = after(r.warm_until, seconds / 10 < 0.05 ? seconds / 10 : 0.05);
    pthread_barrier_wait(&r.ready);
    pthread_barrier_wait(&r.warm); /* every thread warm; none counting yet */
    hsmtls_p11_calls_reset();
    clock_gettime(CLOCK_MONOTONIC, &r.start);
    r.deadline = after(r.start, seconds);
    pthread_barrier_wait(&r.go);   /* the workers read the deadline only after this */
    unsigned long ops = 0;
    struct timespec end = r.start;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (r.w[i].err[0])
            die("%s", r.w[i].err);
        ops += r.w[i].ops;
        if (seconds_between(end, r.w[i].end) > 0) /* the last thread to finish */
            end = r.w[i].end;
    }
    *calls = hsmtls_p11_calls_total();
    *elapsed = seconds_between(r.start, end);
    pthread_barrier_destroy(&r.ready);
    pthread_barrier_destroy(&r.warm);
    pthread_barrier_destroy(&r.go);
    return ops;
}

static int label_is(const unsigned char padded[32], const char *want)
{
    size_t n = strlen(want);
    if (n > 32 || memcmp(padded, want, n) != 0)
        return 0;
    while (n < 32 && padded[n] == ' ')
        n++;
    return n == 32;
}

/* The raw path loads the module itself and uses its function list directly, so its
 * calls never pass through (or count in) the core. dlopen gives the same library the
 * core loads, so one of the two C_Initialize calls finds it already initialised. */
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
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
        die("C_Initialize: %s", hsmtls_p11_rv_name(rv));
    raw_fl->C_GetInfo(info);
    CK_SLOT_ID slots[64], slot = 0;
    CK_ULONG n = 64;
    int found = 0;
    if ((rv = raw_fl->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
        die("C_GetSlotList: %s", hsmtls_p11_rv_name(rv));
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        if (raw_fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && label_is(ti.label, TOKEN))
            slot = slots[i], found = 1;
    }
    if (!found)
        die("no token \"%s\" in the sandbox (is SOFTHSM2_CONF right?)", TOKEN);
    for (int i = 0; i < nsessions; i++)
        if ((rv = raw_fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &raw_sessions[i])) != CKR_OK)
            die("C_OpenSession: %s", hsmtls_p11_rv_name(rv));
    /* Login is per application, not per session: one serves every session. */
    rv = raw_fl->C_Login(raw_sessions[0], CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        die("C_Login: %s", hsmtls_p11_rv_name(rv));
}

/* The private key's handle, looked up once: C_FindObjects costs more than a signature. */
static CK_OBJECT_HANDLE raw_find(const char *label)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof cls },
                            { CKA_LABEL, (void *)label, strlen(label) } };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    CK_SESSION_HANDLE s = raw_sessions[0];
    if (raw_fl->C_FindObjectsInit(s, tmpl, 2) == CKR_OK) {
        raw_fl->C_FindObjects(s, &h, 1, &n);
        raw_fl->C_FindObjectsFinal(s);
    }
    if (n != 1)
        die("no private key \"%s\" on the token", label);
    return h;
}

static hsmtls_p11_object *core_find(const char *label)
{
    char text[256];
    snprintf(text, sizeof text, "pkcs11:token=%s;object=%s;type=private?pin-value=%s", TOKEN, label, PIN);
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    hsmtls_p11_object *o = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    hsmtls_p11_uri_free(uri);
    if (!o)
        die("%s", hsmtls_p11_error_message());
    return o;
}

/* The key in all three forms, and what each form signs: RSA PKCS#1 v1.5 over a SHA-256
 * DigestInfo, ECDSA over a SHA-256 digest, EdDSA over a 32-byte message. */
static void key_setup(struct key *k, const char *label, const char *sandbox)
{
    static const unsigned char sha256_prefix[19] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
        0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
    unsigned char digest[32];
    unsigned int dlen = 0;
    memset(k, 0, sizeof *k);
    k->label = label;
    memset(k->msg, 'm', sizeof k->msg);
    EVP_Digest(k->msg, sizeof k->msg, digest, &dlen, EVP_sha256(), NULL);
    k->core = core_find(label);
    k->raw = raw_find(label);
    switch (hsmtls_p11_object_key_type(k->core)) {
    case CKK_RSA:
        k->mech.mechanism = CKM_RSA_PKCS;
        memcpy(k->in, sha256_prefix, sizeof sha256_prefix);
        memcpy(k->in + sizeof sha256_prefix, digest, 32);
        k->in_len = sizeof sha256_prefix + 32;
        break;
    case CKK_EC:
        k->mech.mechanism = CKM_ECDSA;
        memcpy(k->in, digest, 32);
        k->in_len = 32;
        break;
    case CKK_EC_EDWARDS:
        k->mech.mechanism = CKM_EDDSA;
        memcpy(k->in, k->msg, 32);
        k->in_len = 32;
        break;
    default:
        die("%s: key type not benchmarked", label);
    }
    if (k->mech.mechanism != CKM_EDDSA && !(k->md = EVP_MD_fetch(NULL, "SHA256", NULL)))
        die("cannot fetch SHA256%s", "");
    char path[4096];
    snprintf(path, sizeof path, "%s/soft/%s.key", sandbox, label);
    FILE *f = fopen(path, "r");
    k->soft = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k->soft)
        die("cannot read the software key %s", path);
}

/* Each path runs its time in two halves, in the order raw core soft soft core raw:
 * a machine that speeds up or slows down during the run biases no path. */
static void bench_key(struct key *k, int nthreads, double seconds)
{
    static const enum path order[] = { RAW, CORE, SOFT, SOFT, CORE, RAW };
    unsigned long ops[NPATHS] = { 0 }, core_calls = 0;
    double time[NPATHS] = { 0 }, rate[NPATHS];
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        double t;
        unsigned long calls;
        ops[order[i]] += measure(k, order[i], nthreads, seconds / 2, &t, &calls);
        time[order[i]] += t;
        if (order[i] == CORE)
            core_calls += calls;
    }
    for (int p = 0; p < NPATHS; p++)
        rate[p] = time[p] > 0 ? (double)ops[p] / time[p] : 0;
    printf("%-9s %7d %10.0f %10.0f %10.0f %8.1f%% %10.1f%% %9.3f\n", k->label, nthreads,
           rate[RAW], rate[CORE], rate[SOFT], rate[RAW] > 0 ? 100 * rate[CORE] / rate[RAW] : 0,
           rate[SOFT] > 0 ? 100 * rate[RAW] / rate[SOFT] : 0,
           ops[CORE] ? (double)core_calls / (double)ops[CORE] : 0);
    fflush(stdout);
}

/* The core's calls since the last reset, "C_Login 1, C_FindObjects 1, ...". */
static void print_calls(const char *what, unsigned long total)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (mem) {
        hsmtls_p11_calls_print(mem);
        fclose(mem);
    }
    for (char *c = buf; c && *c; c++)
        if (*c == '\n')
            *c = c[1] ? ';' : '\0';
    printf("  %s: %lu (%s)\n", what, total, buf && *buf ? buf : "none");
    free(buf);
}

/* Loading a key nobody has asked for yet, after login, and the same lookup again. */
static void bench_key_load(char **labels, int nkeys)
{
    const char *probe = NULL;
    for (size_t i = 0; i < sizeof load_probes / sizeof load_probes[0] && !probe; i++) {
        probe = load_probes[i];
        for (int j = 0; j < nkeys; j++)
            if (strcmp(labels[j], probe) == 0)
                probe = NULL;
    }
    if (!probe)
        return;
    char what[128];
    hsmtls_p11_calls_reset();
    core_find(probe);
    snprintf(what, sizeof what, "per key load (%s, first lookup, after login)", probe);
    print_calls(what, hsmtls_p11_calls_total());
    hsmtls_p11_calls_reset();
    core_find(probe);
    snprintf(what, sizeof what, "per key load (%s, cached second lookup)", probe);
    print_calls(what, hsmtls_p11_calls_total());
}

static void usage(void)
{
    fprintf(stderr, "usage: hsmtls-bench-sign [--seconds S] [--threads 1,2] "
                    "[--keys rsa2048,ec-p256,ed25519]\n"
                    "Run in a SoftHSM2 sandbox: softhsm/sandbox DIR; . DIR/env.sh\n");
    exit(2);
}

/* Splits a comma-separated list in place. */
static int split(char *list, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    char threads_default[] = "1,2", keys_default[] = "rsa2048,ec-p256,ed25519";
    char *threads_arg = threads_default, *keys_arg = keys_default, *labels[16], *tlist[16];
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads_arg = argv[++i];
        else if (strcmp(argv[i], "--keys") == 0)
            keys_arg = argv[++i];
        else
            usage();
    }
    int nkeys = split(keys_arg, labels, 16), ntc = split(threads_arg, tlist, 16), threads[16];
    int max_threads = 0;
    for (int i = 0; i < ntc; i++) {
        threads[i] = atoi(tlist[i]);
        if (threads[i] < 1 || threads[i] > MAX_THREADS)
            die("--threads: each count must be 1 to 64, not \"%s\"", tlist[i]);
        max_threads = threads[i] > max_threads ? threads[i] : max_threads;
    }
    if (!(seconds > 0) || nkeys == 0 || ntc == 0)
        usage();

    /* The sandbox's env.sh sets all three; without them the numbers would come from
     * whatever token the system has, or none. */
    const char *vars[] = { "HSMTLS_SANDBOX", "SOFTHSM2_CONF", "HSMTLS_PKCS11_MODULE" };
    for (size_t i = 0; i < 3; i++)
        if (!getenv(vars[i]) || !*getenv(vars[i])) {
            fprintf(stderr, "hsmtls-bench-sign: %s is not set: the SoftHSM2 sandbox environment is "
                            "missing.\nMake one and source it: softhsm/sandbox DIR && . DIR/env.sh\n",
                    vars[i]);
            return 2;
        }
    const char *module = getenv("HSMTLS_PKCS11_MODULE"), *sandbox = getenv("HSMTLS_SANDBOX");

    CK_INFO info;
    raw_setup(module, max_threads, &info);
    struct key *keys = calloc((size_t)nkeys, sizeof *keys);
    if (!keys)
        die("out of memory%s", "");
    for (int i = 0; i < nkeys; i++)
        key_setup(&keys[i], labels[i], sandbox);

    printf("hsmtls-bench-sign: signatures per second, %g s per measurement, %ld CPUs online\n",
           seconds, sysconf(_SC_NPROCESSORS_ONLN));
    printf("module %s (%.32s %u.%u), token \"%s\"; %s\n", module, (const char *)info.libraryDescription,
           info.libraryVersion.major, info.libraryVersion.minor, TOKEN, OpenSSL_version(OPENSSL_VERSION));
    printf("raw: module's function list, session per thread, handle found once | core: "
           "hsmtls_p11_sign | soft: EVP_DigestSign\n\n");
    printf("%-9s %7s %10s %10s %10s %9s %11s %9s\n", "key", "threads", "raw/s", "core/s", "soft/s",
           "core/raw", "token/soft", "calls/sig");
    for (int i = 0; i < nkeys; i++)
        for (int j = 0; j < ntc; j++)
            bench_key(&keys[i], threads[j], seconds);

    printf("\nPKCS#11 calls through the core:\n");
    printf("  per warm signature: the calls/sig column (goal: exactly 2, C_SignInit + C_Sign)\n");
    bench_key_load(labels, nkeys);
    /* No C_Finalize and no session teardown: SoftHSM2 can crash when finalised while its
     * static destructors run at exit. The process exit releases everything. */
    return 0;
}
