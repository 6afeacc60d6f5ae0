/* Shared by the parts of hsmtls-bench-sign: bench_sign.c (signatures, PKCS#11 call
 * counts, main) and bench_tls.c (handshakes against openssl s_server). */
#ifndef HSMTLS_BENCH_H
#define HSMTLS_BENCH_H

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
/* Kills any server still running (registered with atexit by the first start). */
void tls_stop_servers(void);

#endif
