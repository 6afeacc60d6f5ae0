/* engine_bench: sign operations per second and TLS handshakes per second with keys
 * loaded through an ENGINE, for the hsmtls engine and libp11's pkcs11 engine, in one
 * run. Each engine runs in a child process of its own (both would otherwise share one
 * initialised PKCS#11 module, and libp11 finalises it when it is done).
 *
 *   engine_bench [-t SECONDS] [-r ROUNDS] [--pin PIN] [--module PATH] [--hsmtls SO]
 *                [--libp11 SO] --ec URI --ec-cert PEM --rsa URI --rsa-cert PEM
 *
 * The engines take turns, ROUNDS times (default 3), each turn in a fresh process; each
 * figure is the best of its rounds, so a burst of load elsewhere on the machine does
 * not decide the comparison.
 *
 * Signing: EVP_DigestSign (SHA-256, 32 bytes) on the key from ENGINE_load_private_key,
 * one thread. Handshakes: TLS 1.3, server with that key and the certificate, client in
 * the same thread over a BIO pair (no verification, no tickets): the client's share of
 * the cost is the same for both engines. Both engines get MODULE_PATH and PIN. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#ifndef HSMTLS_ENGINE_BUILD_PATH
#define HSMTLS_ENGINE_BUILD_PATH "hsmtls.so"
#endif

struct opts {
    double seconds;
    int rounds;
    const char *pin, *module, *so[2];
    const char *uri[2], *cert[2];
};
static const char *engine_names[2] = { "hsmtls", "libp11 (pkcs11)" };
static const char *engine_ids[2] = { "hsmtls", "pkcs11" };
static const char *key_names[2] = { "P-256", "RSA-2048" };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds this process has used: unlike the rates, hardly moved by other load on
 * the machine. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "engine_bench: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static ENGINE *load_engine(const struct opts *o, int which)
{
    ENGINE *e = ENGINE_by_id("dynamic");
    if (!e || !ENGINE_ctrl_cmd_string(e, "SO_PATH", o->so[which], 0) ||
        !ENGINE_ctrl_cmd_string(e, "ID", engine_ids[which], 0) ||
        !ENGINE_ctrl_cmd_string(e, "LOAD", NULL, 0))
        die("cannot load the engine");
    if (o->module && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", o->module, 0))
        die("MODULE_PATH refused");
    if (o->pin && !ENGINE_ctrl_cmd_string(e, "PIN", o->pin, 0))
        die("PIN refused");
    if (!ENGINE_init(e))
        die("ENGINE_init failed");
    return e;
}

/* Operations per second; *cpu_us gets the CPU microseconds per operation. */
static double sign_rate(EVP_PKEY *key, X509 *cert, double seconds, double *cpu_us)
{
    unsigned char msg[32] = { 1, 2, 3 }, sig[1024];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    long n = 0;
    double start = now(), end = start + seconds, t, c0 = cpu();
    do {
        for (int i = 0; i < 16; i++, n++) {
            size_t len = sizeof sig;
            msg[0] = (unsigned char)n;
            if (!EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) ||
                !EVP_DigestSign(ctx, sig, &len, msg, sizeof msg))
                die("signing failed");
            if (n == 0) { /* the first signature must verify with the certificate */
                EVP_MD_CTX *v = EVP_MD_CTX_new();
                if (!EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) ||
                    EVP_DigestVerify(v, sig, len, msg, sizeof msg) != 1)
                    die("the signature does not verify with the certificate");
                EVP_MD_CTX_free(v);
            }
        }
    } while ((t = now()) < end);
    *cpu_us = (cpu() - c0) / n * 1e6;
    EVP_MD_CTX_free(ctx);
    return n / (t - start);
}

static int step(SSL *ssl, int *done)
{
    if (*done)
        return 1;
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return 1;
    }
    int err = SSL_get_error(ssl, r);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

static double handshake_rate(EVP_PKEY *key, X509 *cert, double seconds, double *cpu_us)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx || !SSL_CTX_use_certificate(sctx, cert) || !SSL_CTX_use_PrivateKey(sctx, key) ||
        !SSL_CTX_check_private_key(sctx))
        die("server context with the engine key");
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sctx, 0);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    long n = 0;
    double start = now(), end = start + seconds, t, c0 = cpu();
    do {
        SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
        BIO *sb, *cb;
        if (!s || !c || !BIO_new_bio_pair(&sb, 0, &cb, 0))
            die("out of memory");
        SSL_set_bio(s, sb, sb);
        SSL_set_bio(c, cb, cb);
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);
        int sdone = 0, cdone = 0;
        for (int i = 0; i < 64 && !(sdone && cdone); i++)
            if (!step(c, &cdone) || !step(s, &sdone))
                die("handshake failed");
        if (!(sdone && cdone))
            die("handshake did not finish");
        SSL_free(s);
        SSL_free(c);
        n++;
    } while ((t = now()) < end);
    *cpu_us = (cpu() - c0) / n * 1e6;
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return n / (t - start);
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!x)
        die("cannot read a certificate");
    return x;
}

/* Per key: sign/s, handshakes/s, CPU us per signature, CPU us per handshake. */
#define NFIG 8

/* In a child: loads the engine and the keys, writes NFIG figures to fd. */
static void run_engine(const struct opts *o, int which, int fd)
{
    ENGINE *e = load_engine(o, which);
    double rates[NFIG];
    for (int k = 0; k < 2; k++) {
        EVP_PKEY *key = ENGINE_load_private_key(e, o->uri[k], NULL, NULL);
        if (!key)
            die("ENGINE_load_private_key failed");
        X509 *cert = read_cert(o->cert[k]);
        rates[4 * k] = sign_rate(key, cert, o->seconds, &rates[4 * k + 2]);
        rates[4 * k + 1] = handshake_rate(key, cert, o->seconds, &rates[4 * k + 3]);
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    if (write(fd, rates, sizeof rates) != (ssize_t)sizeof rates)
        die("pipe");
    fflush(NULL);
    _exit(0); /* no atexit teardown: SoftHSM2 can crash when finalised at exit */
}

static int measure(const struct opts *o, int which, double rates[NFIG])
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        run_engine(o, which, fds[1]);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], rates, NFIG * sizeof *rates);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == (ssize_t)(NFIG * sizeof *rates) ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: engine_bench [-t SECONDS] [-r ROUNDS] [--pin PIN] [--module PATH] [--hsmtls SO] "
                    "[--libp11 SO]\n       --ec URI --ec-cert PEM --rsa URI --rsa-cert PEM\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = { 2.0, 3, NULL, NULL, { HSMTLS_ENGINE_BUILD_PATH,
                      "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so" }, { NULL, NULL }, { NULL, NULL } };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "-t"))
            o.seconds = atof(v);
        else if (!strcmp(a, "-r"))
            o.rounds = atoi(v);
        else if (!strcmp(a, "--pin"))
            o.pin = v;
        else if (!strcmp(a, "--module"))
            o.module = v;
        else if (!strcmp(a, "--hsmtls"))
            o.so[0] = v;
        else if (!strcmp(a, "--libp11"))
            o.so[1] = v;
        else if (!strcmp(a, "--ec"))
            o.uri[0] = v;
        else if (!strcmp(a, "--ec-cert"))
            o.cert[0] = v;
        else if (!strcmp(a, "--rsa"))
            o.uri[1] = v;
        else if (!strcmp(a, "--rsa-cert"))
            o.cert[1] = v;
        else
            usage();
        i++;
    }
    if (!o.uri[0] || !o.uri[1] || !o.cert[0] || !o.cert[1] || o.seconds <= 0 || o.rounds < 1)
        usage();

    /* Best of the rounds: the highest rate, the lowest CPU cost. */
    double r[2][NFIG];
    for (int round = 0; round < o.rounds; round++)
        for (int w = 0; w < 2; w++) {
            double got[NFIG];
            if (measure(&o, w, got) < 0) {
                fprintf(stderr, "engine_bench: the %s run failed\n", engine_names[w]);
                return 1;
            }
            for (int i = 0; i < NFIG; i++) {
                int is_cpu = (i % 4) >= 2;
                if (round == 0 || (is_cpu ? got[i] < r[w][i] : got[i] > r[w][i]))
                    r[w][i] = got[i];
            }
        }
    printf("%-16s %-9s %11s %13s %15s %15s\n", "engine", "key", "sign ops/s", "handshakes/s",
           "CPU us/sign", "CPU us/handsh.");
    for (int k = 0; k < 2; k++)
        for (int w = 0; w < 2; w++)
            printf("%-16s %-9s %11.0f %13.0f %15.1f %15.1f\n", engine_names[w], key_names[k],
                   r[w][4 * k], r[w][4 * k + 1], r[w][4 * k + 2], r[w][4 * k + 3]);
    /* Rates: above 1 means hsmtls is faster. CPU: below 1 means hsmtls costs less. */
    for (int k = 0; k < 2; k++)
        printf("hsmtls / libp11  %-9s %10.2fx %12.2fx %14.2fx %14.2fx\n", key_names[k],
               r[0][4 * k] / r[1][4 * k], r[0][4 * k + 1] / r[1][4 * k + 1],
               r[0][4 * k + 2] / r[1][4 * k + 2], r[0][4 * k + 3] / r[1][4 * k + 3]);
    return 0;
}
