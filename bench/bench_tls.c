/* TLS handshakes per second against `openssl s_server` on loopback, with the token key
 * loaded through the hsmtls provider (-key pkcs11:..., the sandbox's openssl.cnf), with the
 * software copy of the same key, and, when the bench is given a peer provider, with the
 * token key loaded through it (the same -key pkcs11:..., OPENSSL_CONF the peer's
 * openssl.cnf in that server's environment only); the same certificate for all.
 *
 * The client is this process: libssl with the default provider only, one connection at
 * a time, a fresh SSL and TCP connection for each handshake (no session resumption, no
 * tickets), SSL_connect then SSL_shutdown then close, like `openssl s_time`. The server
 * is single-threaded, so a handshake's time is the client's plus the server's; the
 * servers run side by side and are measured in interleaved rounds of about 0.1 s. Each
 * server's CPU time (utime + stime in /proc/PID/stat) is read around each of its rounds:
 * the server's own cost per handshake, which the client's share does not blur.
 * Then another server with the token key and HSMTLS_DEBUG=1 gives our PKCS#11 calls
 * per handshake from its trace lines (untimed: tracing costs time).
 *
 * Servers run as children of this process with PR_SET_PDEATHSIG, and are killed when a
 * key is done, at exit, or when this process dies. HSMTLS_BENCH_SERVER_<NAME>=VALUE in
 * the environment sets NAME=VALUE for the servers only (e.g. the LD_PRELOAD that a
 * system openssl needs to load a sanitizer-built provider). */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define TOKEN "server"
#define ROUND_SECONDS 0.1
static struct bench_server servers[TLS_NSERVERS]; /* TLS_OURS, TLS_SOFT, TLS_PEER */
static const char *const server_names[TLS_NSERVERS] = { "ours", "soft", "peer" };

/* Starts `openssl s_server` on 127.0.0.1, a port of the kernel's choosing, and waits
 * (up to 30 s) for its "ACCEPT 127.0.0.1:PORT" line. */
static void server_start(struct bench_server *s, const char *name, const char *key, const char *cert,
                         char *extra_env)
{
    char *argv[] = { "openssl", "s_server", "-accept", "127.0.0.1:0", "-www", "-num_tickets", "0",
                     "-cert", (char *)cert, "-key", (char *)key, NULL };
    char log_name[64];
    snprintf(log_name, sizeof log_name, "s_server-%.20s", name);
    bench_server_spawn(s, log_name, argv, extra_env, -1, -1);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        char line[256];
        FILE *f = fopen(s->log, "r");
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "ACCEPT 127.0.0.1:%d", &s->port) == 1) {
                fclose(f);
                return;
            }
        if (f)
            fclose(f);
        int status;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            die("openssl s_server (%s) -key %s exited before accepting connections (a "
                "sanitizer build's provider needs HSMTLS_BENCH_SERVER_LD_PRELOAD, see "
                "bench/bench_tls.c):\n%s", name, key, bench_server_log(s));
        }
        if (seconds_between(start, now) > 30)
            die("openssl s_server (%s) -key %s did not accept connections within 30 s:\n%s",
                name, key, bench_server_log(s));
        usleep(10000);
    }
}

/* One full handshake on a fresh connection; 0, or -1 with the reason in err. */
static int handshake(SSL_CTX *ctx, int port, char *err, size_t errlen)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1, ok = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval limit = { .tv_sec = 10 }; /* a stuck server fails the run, not hangs it */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(err, errlen, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1) {
        SSL_shutdown(ssl); /* close_notify, without waiting for the server's */
        ok = 0;
    } else {
        unsigned long e = ERR_peek_last_error();
        snprintf(err, errlen, "handshake with 127.0.0.1:%d failed: %s", port,
                 e ? ERR_error_string(e, NULL) : "connection closed");
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return ok;
}

/* Handshakes with server s until `seconds` have passed; the count, the time in *t. */
static unsigned long run_for(SSL_CTX *ctx, struct bench_server *s, double seconds, double *t)
{
    struct timespec start, now, deadline;
    char err[512];
    unsigned long n = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline = after(start, seconds);
    do {
        if (handshake(ctx, s->port, err, sizeof err) < 0)
            die("%s\nserver log:\n%s", err, bench_server_log(s));
        n++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (seconds_between(deadline, now) < 0);
    *t = seconds_between(start, now);
    return n;
}

static SSL_CTX *client_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, version) ||
        !SSL_CTX_set_max_proto_version(ctx, version))
        die("cannot make a TLS client context");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the same for both servers */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* The "hsmtls: C_..." trace lines in a server's log so far. */
static unsigned long trace_lines(const struct bench_server *s)
{
    char line[512];
    unsigned long n = 0;
    FILE *f = fopen(s->log, "r");
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, "hsmtls: C_", 10) == 0;
    if (f)
        fclose(f);
    return n;
}

/* PKCS#11 calls per handshake in a token-key server of its own run with HSMTLS_DEBUG=1
 * (tracing slows it, hence not the timed one): CALL_HANDSHAKES handshakes per version
 * after the first (which may open a session). The server signs before it sends its
 * Finished, so its trace lines are written when SSL_connect returns. */
#define CALL_HANDSHAKES 20
static void calls_per_handshake(const char *uri, const char *cert, const int versions[2],
                                struct tls_result out[2])
{
    static char debug[] = "HSMTLS_DEBUG=1";
    char err[512];
    server_start(&servers[TLS_OURS], "ours-calls", uri, cert, debug);
    for (int v = 0; v < 2; v++) {
        SSL_CTX *ctx = client_ctx(versions[v]);
        if (handshake(ctx, servers[TLS_OURS].port, err, sizeof err) < 0)
            die("%s\nserver log:\n%s", err, bench_server_log(&servers[TLS_OURS]));
        unsigned long before = trace_lines(&servers[TLS_OURS]);
        for (int i = 0; i < CALL_HANDSHAKES; i++)
            if (handshake(ctx, servers[TLS_OURS].port, err, sizeof err) < 0)
                die("%s\nserver log:\n%s", err, bench_server_log(&servers[TLS_OURS]));
        out[v].calls = (double)(trace_lines(&servers[TLS_OURS]) - before) / CALL_HANDSHAKES;
        SSL_CTX_free(ctx);
    }
    bench_server_stop(&servers[TLS_OURS]);
}

void tls_bench_key(const char *sandbox, const char *label, double seconds,
                   const char *peer_conf, struct tls_result out[2])
{
    char uri[512], soft[4096], cert[4096], peer_env[4200];
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s;type=private", TOKEN, label);
    snprintf(soft, sizeof soft, "%s/soft/%s.key", sandbox, label);
    snprintf(cert, sizeof cert, "%s/certs/%s.pem", sandbox, label);
    if (access(cert, R_OK) != 0)
        die("no certificate %s for %s", cert, label);
    int n_servers = peer_conf ? TLS_NSERVERS : TLS_PEER;
    server_start(&servers[TLS_OURS], server_names[TLS_OURS], uri, cert, NULL);
    server_start(&servers[TLS_SOFT], server_names[TLS_SOFT], soft, cert, NULL);
    if (peer_conf) {
        snprintf(peer_env, sizeof peer_env, "OPENSSL_CONF=%s", peer_conf);
        server_start(&servers[TLS_PEER], server_names[TLS_PEER], uri, cert, peer_env);
    }
    const int versions[2] = { TLS1_3_VERSION, TLS1_2_VERSION };
    int rounds = 2 * (seconds > 2 * ROUND_SECONDS ? (int)(seconds / (2 * ROUND_SECONDS) + 0.5) : 1);
    double *ratio = calloc(TLS_NSERVERS * (size_t)rounds, sizeof *ratio);
    if (!ratio)
        die("out of memory");
    for (int v = 0; v < 2; v++) {
        SSL_CTX *ctx = client_ctx(versions[v]);
        unsigned long n[TLS_NSERVERS] = { 0 };
        double t[TLS_NSERVERS] = { 0 }, cpu[TLS_NSERVERS] = { 0 }, dt, rate[TLS_NSERVERS];
        /* Discarded: the first handshakes (a token server's first signature, caches). */
        for (int i = 0; i < n_servers; i++)
            run_for(ctx, &servers[i], ROUND_SECONDS, &dt);
        for (int r = 0; r < rounds; r++) {
            for (int j = 0; j < n_servers; j++) {
                int i = r % 2 ? n_servers - 1 - j : j; /* ours, soft, peer; peer, soft, ours; ... */
                double cpu0 = bench_server_cpu(&servers[i]);
                unsigned long c = run_for(ctx, &servers[i], seconds / rounds, &dt);
                cpu[i] += bench_server_cpu(&servers[i]) - cpu0;
                n[i] += c;
                t[i] += dt;
                rate[i] = (double)c / dt;
            }
            for (int i = 0; i < n_servers; i++)
                ratio[i * rounds + r] = rate[i] / rate[TLS_SOFT];
        }
        out[v].version = v == 0 ? "TLSv1.3" : "TLSv1.2";
        for (int i = 0; i < TLS_NSERVERS; i++) {
            int ran = i < n_servers;
            out[v].rate[i] = ran ? (double)n[i] / t[i] : 0;
            out[v].ratio[i] = ran ? median(ratio + i * rounds, rounds) : 0;
            out[v].cpu_us[i] = ran ? 1e6 * cpu[i] / (double)n[i] : 0;
        }
        SSL_CTX_free(ctx);
    }
    free(ratio);
    for (int i = 0; i < n_servers; i++)
        bench_server_stop(&servers[i]);
    calls_per_handshake(uri, cert, versions, out);
}
