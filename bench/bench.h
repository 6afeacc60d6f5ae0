/* Shared by the parts of hsmtls-bench-sign: bench_sign.c (signatures, PKCS#11 call
 * counts, main), bench_provider.c (the hsmtls provider and the peer provider in library
 * contexts of their own) and bench_tls.c (handshakes against openssl s_server); and by
 * bench_server.c, the server children of it and of hsmtls-bench-dtls. */
#ifndef HSMTLS_BENCH_H
#define HSMTLS_BENCH_H

#include <sys/types.h>
#include <time.h>
#include <openssl/types.h>

__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);
struct timespec after(struct timespec t, double s);
double seconds_between(struct timespec a, struct timespec b);
double median(double *v, int n);

/* bench_provider.c. A library context with the default provider and the provider
 * module at `path` (loaded by path, no configuration read: the module comes from
 * HSMTLS_PKCS11_MODULE, the PIN from the URI). */
OSSL_LIB_CTX *provider_ctx(const char *path);
/* A library context configured by an openssl.cnf that this run writes (peer_conf_path()):
 * the default provider and the peer provider module at `path` (pkcs11-provider), with the
 * sandbox's PKCS#11 module and PIN file. The same file is the peer s_server's OPENSSL_CONF. */
OSSL_LIB_CTX *peer_ctx(const char *path, const char *sandbox);
const char *peer_conf_path(void);
/* The private key by URI through OSSL_STORE in `ctx`, as `openssl -key URI` does: open,
 * load until the key comes, close. `who` names the provider in an error. */
EVP_PKEY *store_load(OSSL_LIB_CTX *ctx, const char *uri, const char *who);
/* The first private key OSSL_STORE finds at `uri` in `ctx` (NULL: the default context,
 * configured by OPENSSL_CONF), as `openssl -key` takes it; NULL when none (bench_server.c,
 * shared by the bench programs). */
EVP_PKEY *bench_store_key(OSSL_LIB_CTX *ctx, const char *uri);

/* Servers of the handshake benchmark. */
enum { TLS_OURS, TLS_SOFT, TLS_PEER, TLS_NSERVERS };

/* One key's handshakes for one TLS version, per server (ours: -key pkcs11:... through the
 * sandbox's openssl.cnf; soft: the software key; peer: -key pkcs11:... through the peer
 * provider's openssl.cnf): rates (totals over the rounds), the median of the rounds' ratios
 * to the software server's rate, and the server's CPU time per handshake. */
struct tls_result {
    const char *version;
    double rate[TLS_NSERVERS], ratio[TLS_NSERVERS];
    double cpu_us[TLS_NSERVERS]; /* the s_server's utime+stime per handshake, µs */
    double calls; /* our token server's PKCS#11 calls per handshake (HSMTLS_DEBUG run) */
};

/* Starts `openssl s_server`s on loopback for the sandbox key `label` (ours with
 * -key pkcs11:..., one with the software copy, and with peer_conf also the peer's with
 * -key pkcs11:..., all the same certificate), measures TLS 1.3 and TLS 1.2 full
 * handshakes on each for about `seconds`, stops them. Then counts our token server's
 * PKCS#11 calls per handshake in a short traced run. out[0] is TLS 1.3, out[1] TLS 1.2. */
void tls_bench_key(const char *sandbox, const char *label, double seconds,
                   const char *peer_conf, struct tls_result out[2]);

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
/* The server's CPU time so far (utime + stime from /proc/PID/stat), in seconds. */
double bench_server_cpu(const struct bench_server *s);
/* The last 2000 bytes of the server's log, for an error message. */
const char *bench_server_log(const struct bench_server *s);

#endif
