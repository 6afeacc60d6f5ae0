/* Shared by the parts of hsmtls-bench-sign: bench_sign.c (signatures, PKCS#11 call
 * counts, main) and bench_tls.c (handshakes against openssl s_server); and by
 * bench_server.c, the server children of it and of hsmtls-bench-dtls. */
#ifndef HSMTLS_BENCH_H
#define HSMTLS_BENCH_H

#include <sys/types.h>
#include <time.h>

__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);
struct timespec after(struct timespec t, double s);
double seconds_between(struct timespec a, struct timespec b);
double median(double *v, int n);

/* One key's handshakes for one TLS version: the token-key server's and the
 * software-key server's rates (totals over the rounds) and the median of the rounds'
 * token/software ratios. */
struct tls_result {
    const char *version;
    double token_rate, soft_rate, ratio;
    double calls; /* the token server's PKCS#11 calls per handshake (HSMTLS_DEBUG run) */
};

/* Starts two `openssl s_server`s on loopback for the sandbox key `label` (one with
 * -key pkcs11:..., one with the software copy, the same certificate), measures TLS 1.3
 * and TLS 1.2 full handshakes on each for about `seconds`, stops both servers.
 * Then counts the token server's PKCS#11 calls per handshake in a short traced run.
 * out[0] is TLS 1.3, out[1] TLS 1.2. */
void tls_bench_key(const char *sandbox, const char *label, double seconds,
                   struct tls_result out[2]);

/* A server child (bench_server.c). */
struct bench_server {
    pid_t pid;
    int port;
    char log[4096];
};
/* Starts argv (argv[0] looked up in PATH) as a child that dies with this process, with
 * this environment where HSMTLS_BENCH_SERVER_<NAME>=VALUE sets NAME=VALUE for servers
 * only (e.g. the LD_PRELOAD a system openssl needs to load a sanitizer-built provider)
 * and extra_env ("NAME=VALUE" or NULL) on top. stdin from in_fd (-1: /dev/null),
 * stdout to out_fd (-1: the log), stderr to the log, s->log, a file named after name
 * in a temporary directory of this run. */
void bench_server_spawn(struct bench_server *s, const char *name, char *const argv[], char *extra_env, int in_fd,
                        int out_fd);
/* Kills the server and removes its log. */
void bench_server_stop(struct bench_server *s);
/* Every server started, and the temporary directory (also at exit). */
void bench_servers_stop(void);
/* The last 2000 bytes of the server's log, for an error message. */
const char *bench_server_log(const struct bench_server *s);

#endif
