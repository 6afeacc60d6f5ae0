/* hsmtls-bench-dtls: DTLS 1.2 handshakes per second and encrypted datagram throughput
 * of a libhsmtls DTLS client (hsmtls_dtls on a UDP socket of its own) on loopback,
 * against the sandbox (softhsm/sandbox DIR; . DIR/env.sh):
 *   - `openssl s_server -dtls1_2 -listen` (the reference) and `hsmtls dtls-serve`, each
 *     with the token key (pkcs11:token=server;object=ec-p256;type=private) and with the
 *     software copy (soft/ec-p256.key), the same certificate: full handshakes, one at a
 *     time, each a fresh association (no resumption) ended with close_notify;
 *   - 1000-byte datagrams echoed over one established association (software key), a
 *     window of WINDOW datagrams in flight: datagrams/s and MB/s (payload bytes echoed).
 *
 * openssl s_server (3.0) with -listen connects its UDP socket to its first client and
 * keeps it connected after that association ends, so a second client from another
 * address is refused (ICMP port unreachable); the same client address, though, gets a
 * new cookie exchange and handshake every time. So the client keeps one local port per
 * server for all its handshakes. s_server has no echo mode for DTLS (-rev and -www are
 * refused with DTLS): it writes what it receives to stdout and sends what it reads from
 * stdin, so its stdout is a pipe into its own stdin, which also keeps stdin open (an
 * EOF on stdin would end the association). -quiet keeps its messages out of that pipe;
 * without -naccept it serves forever. Ports are picked here (bind to port 0, close),
 * and readiness is a first successful handshake.
 *
 * Servers run as children of this process with PR_SET_PDEATHSIG and are killed at the
 * end. HSMTLS_BENCH_SERVER_<NAME>=VALUE in the environment sets NAME=VALUE for the
 * servers only (e.g. the LD_PRELOAD a system openssl needs to load a sanitizer-built
 * provider), as in bench_tls.c (both through bench_server.c).
 * usage: hsmtls-bench-dtls [--seconds S] */
#include "bench.h"
#include "hsmtls/config.h"
#include "hsmtls/dtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/opensslv.h>

#define TOKEN "server"
#define LABEL "ec-p256"
#define PAYLOAD 1000
#define WINDOW 8

enum kind { OPENSSL, HSMTLS };
static const char *const kind_name[] = { "openssl s_server", "hsmtls dtls-serve" };

struct server {
    struct bench_server child;
    enum kind kind;
};

#define NSERVERS 4
static struct server servers[NSERVERS];
static char hsmtls_path[PATH_MAX];

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hsmtls-bench-dtls: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A free UDP port on 127.0.0.1 (bound, read back, released). */
static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free UDP port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void server_start(struct server *s, enum kind kind, const char *name, const char *key,
                         const char *cert, const char *pin_file)
{
    s->kind = kind;
    s->child.port = free_port();
    char port[16], accept[32];
    snprintf(port, sizeof port, "%d", s->child.port);
    snprintf(accept, sizeof accept, "127.0.0.1:%d", s->child.port);
    char *ossl[] = { "openssl", "s_server", "-dtls1_2", "-listen", "-quiet", "-accept", accept,
                     "-cert", (char *)cert, "-key", (char *)key, NULL };
    char *ours[] = { hsmtls_path, "dtls-serve", "--port", port, "--cert", (char *)cert, "--key",
                     (char *)key, "--max-peers", "4", "--idle-timeout", "30",
                     pin_file ? "--pin-source" : NULL, (char *)pin_file, NULL };
    if (kind == HSMTLS) {
        bench_server_spawn(&s->child, name, ours, NULL, -1, -1);
        return;
    }
    int p[2];
    if (pipe(p) != 0)
        die("pipe: %s", strerror(errno));
    bench_server_spawn(&s->child, name, ossl, NULL, p[0], p[1]); /* stdout into stdin: the echo */
    close(p[0]);
    close(p[1]);
}

struct client {
    hsmtls_config *cfg;
    int fd; /* one local port per server, connected to it */
    unsigned char dg[HSMTLS_DTLS_MAX_DATAGRAM], plain[HSMTLS_DTLS_MAX_DATAGRAM];
};

static void client_open(struct client *c, const struct server *s)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)s->child.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("UDP socket to 127.0.0.1:%d: %s", s->child.port, strerror(errno));
}

static void drain(struct client *c)
{
    while (recv(c->fd, c->dg, sizeof c->dg, 0) >= 0)
        ;
}

/* A full handshake on a fresh association; the association, or NULL with the reason
 * in err. */
static hsmtls_dtls *handshake(struct client *c, const struct server *s, double limit,
                              unsigned retransmit_ms, char *err, size_t errlen)
{
    drain(c); /* the last association's close_notify answer */
    hsmtls_dtls *d = hsmtls_dtls_new(c->cfg);
    if (!d) {
        snprintf(err, errlen, "hsmtls_dtls_new: %s", hsmtls_error_message());
        return NULL;
    }
    if (hsmtls_dtls_set_peer_address(d, "127.0.0.1", (unsigned)s->child.port, NULL) != HSMTLS_OK ||
        hsmtls_dtls_set_fd(d, c->fd) != HSMTLS_OK ||
        (retransmit_ms && hsmtls_dtls_set_retransmit_timeout(d, retransmit_ms) != HSMTLS_OK)) {
        snprintf(err, errlen, "%s", hsmtls_dtls_error_message(d));
        hsmtls_dtls_free(d);
        return NULL;
    }
    double deadline = now() + limit;
    int r = hsmtls_dtls_handshake(d, NULL, 0);
    while (r == HSMTLS_WANT_READ) {
        long ms = hsmtls_dtls_timeout_ms(d);
        double left = deadline - now();
        if (left <= 0)
            break;
        int wait = (int)(left * 1000) + 1;
        if (ms >= 0 && ms < wait)
            wait = (int)ms;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, wait);
        if (pr > 0) {
            ssize_t n = recv(c->fd, c->dg, sizeof c->dg, 0);
            if (n >= 0)
                r = hsmtls_dtls_handshake(d, c->dg, (size_t)n);
            /* ECONNREFUSED (no server yet) and the like: wait for the timer */
        } else if (hsmtls_dtls_timeout_ms(d) == 0 && hsmtls_dtls_handle_timeout(d) < 0) {
            r = HSMTLS_ERROR;
        }
    }
    if (r == HSMTLS_OK)
        return d;
    snprintf(err, errlen, "handshake with %s on 127.0.0.1:%d: %s", kind_name[s->kind], s->child.port,
             r == HSMTLS_WANT_READ ? "no answer in time" : hsmtls_dtls_error_message(d));
    hsmtls_dtls_free(d);
    return NULL;
}

static void close_assoc(hsmtls_dtls *d)
{
    hsmtls_dtls_shutdown(d);
    hsmtls_dtls_free(d);
}

/* Waits (up to 30 s) until the server completes a first handshake: one association
 * that resends its ClientHello every 200 ms until the server is up (a first handshake
 * given up half-way would leave s_server busy with it: it serves one at a time). */
static void server_ready(struct client *c, const struct server *s)
{
    char err[1200];
    hsmtls_dtls *d = handshake(c, s, 30, 200, err, sizeof err);
    if (d) {
        close_assoc(d);
        return;
    }
    int status;
    if (waitpid(s->child.pid, &status, WNOHANG) == s->child.pid)
        die("%s exited before serving (a sanitizer build's provider needs "
            "HSMTLS_BENCH_SERVER_LD_PRELOAD, see bench/bench_tls.c):\n%s",
            kind_name[s->kind], bench_server_log(&s->child));
    die("%s did not complete a handshake within 30 s: %s\n%s", kind_name[s->kind], err,
        bench_server_log(&s->child));
}

/* Handshakes until `seconds` pass; the count, the time in *t. */
static unsigned long run_handshakes(struct client *c, const struct server *s, double seconds,
                                    double *t)
{
    char err[1200];
    unsigned long n = 0;
    double start = now(), end = start + seconds, tn;
    do {
        hsmtls_dtls *d = handshake(c, s, 10, 0, err, sizeof err);
        if (!d)
            die("%s\nserver log:\n%s", err, bench_server_log(&s->child));
        close_assoc(d);
        n++;
    } while ((tn = now()) < end);
    *t = tn - start;
    return n;
}

/* Datagrams echoed over one association in `seconds`: payload bytes received back in
 * *bytes, the time in *t. At most WINDOW payloads in flight; a window that gets no
 * answer for 200 ms counts as lost and is resent. */
static void run_echo(struct client *c, const struct server *s, double seconds,
                     unsigned long long *bytes, double *t, unsigned long *lost)
{
    char err[1200];
    unsigned char payload[PAYLOAD];
    for (int i = 0; i < PAYLOAD; i++)
        payload[i] = (unsigned char)('a' + i % 26);
    payload[PAYLOAD - 1] = '\n';
    hsmtls_dtls *d = handshake(c, s, 10, 0, err, sizeof err);
    if (!d)
        die("%s\nserver log:\n%s", err, bench_server_log(&s->child));
    long long in_flight = 0; /* bytes */
    unsigned long long got = 0;
    *lost = 0;
    double start = now(), end = start + seconds, tn, last = start;
    while ((tn = now()) < end) {
        while (in_flight + PAYLOAD <= WINDOW * PAYLOAD) {
            if (hsmtls_dtls_write(d, payload, PAYLOAD) != PAYLOAD)
                die("hsmtls_dtls_write: %s", hsmtls_dtls_error_message(d));
            in_flight += PAYLOAD;
        }
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, 50);
        if (pr <= 0) {
            if (now() - last > 0.2) { /* dropped somewhere: resend the window */
                (*lost)++;
                in_flight = 0;
                last = now();
            }
            continue;
        }
        ssize_t n;
        while ((n = recv(c->fd, c->dg, sizeof c->dg, 0)) >= 0) {
            int r = hsmtls_dtls_read(d, c->dg, (size_t)n, c->plain, sizeof c->plain);
            while (r > 0) {
                got += (unsigned long long)r;
                in_flight -= r;
                r = hsmtls_dtls_read(d, NULL, 0, c->plain, sizeof c->plain);
            }
            if (r < 0 || hsmtls_dtls_state(d) != HSMTLS_DTLS_COMPLETE)
                die("echo from %s: %s (state %s)\nserver log:\n%s", kind_name[s->kind],
                    hsmtls_dtls_error_message(d), hsmtls_dtls_state_name(hsmtls_dtls_state(d)),
                    bench_server_log(&s->child));
            last = now();
        }
        if (in_flight < 0)
            in_flight = 0;
    }
    *t = tn - start;
    *bytes = got;
    close_assoc(d);
}

double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    double seconds = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            if (seconds <= 0 || seconds > 600)
                die("--seconds: between 0 and 600");
        } else {
            fprintf(stderr, "usage: hsmtls-bench-dtls [--seconds S]\n");
            return 2;
        }
    }
    const char *sandbox = getenv("HSMTLS_SANDBOX");
    if (!sandbox || !*sandbox || !getenv("SOFTHSM2_CONF") || !getenv("OPENSSL_CONF"))
        die("no sandbox: make one with softhsm/sandbox DIR, then . DIR/env.sh");
    ssize_t len = readlink("/proc/self/exe", hsmtls_path, sizeof hsmtls_path - 16);
    if (len <= 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    hsmtls_path[len] = 0;
    char *slash = strrchr(hsmtls_path, '/');
    strcpy(slash + 1, "hsmtls");
    if (access(hsmtls_path, X_OK) != 0)
        die("%s: %s (it is built beside this program)", hsmtls_path, strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    char uri[256], soft[4096], cert[4096], pin[4096];
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s;type=private", TOKEN, LABEL);
    snprintf(soft, sizeof soft, "%s/soft/%s.key", sandbox, LABEL);
    snprintf(cert, sizeof cert, "%s/certs/%s.pem", sandbox, LABEL);
    snprintf(pin, sizeof pin, "%s/pin.txt", sandbox);
    if (access(cert, R_OK) != 0 || access(soft, R_OK) != 0)
        die("no %s or %s in the sandbox", cert, soft);

    /* [0] openssl token, [1] openssl soft, [2] hsmtls token, [3] hsmtls soft */
    server_start(&servers[0], OPENSSL, "openssl-token", uri, cert, NULL);
    server_start(&servers[1], OPENSSL, "openssl-soft", soft, cert, NULL);
    server_start(&servers[2], HSMTLS, "hsmtls-token", uri, cert, pin);
    server_start(&servers[3], HSMTLS, "hsmtls-soft", soft, cert, NULL);

    static struct client clients[NSERVERS];
    for (int i = 0; i < NSERVERS; i++) {
        clients[i].cfg = hsmtls_config_new(HSMTLS_CLIENT);
        if (!clients[i].cfg ||
            hsmtls_config_set_verify_mode(clients[i].cfg, HSMTLS_VERIFY_NONE) != HSMTLS_OK ||
            hsmtls_config_set_session_tickets(clients[i].cfg, 0) != HSMTLS_OK)
            die("client config: %s", clients[i].cfg ? hsmtls_config_error(clients[i].cfg)
                                                      : hsmtls_error_message());
        client_open(&clients[i], &servers[i]);
    }
    for (int i = 0; i < NSERVERS; i++)
        server_ready(&clients[i], &servers[i]);

    printf("hsmtls-bench-dtls: DTLS 1.2 on loopback, key %s, %g s per measurement\n", LABEL, seconds);
    printf("%s; client: libhsmtls hsmtls_dtls on a UDP socket, no verification, no resumption\n",
           OPENSSL_VERSION_TEXT);
    printf("handshakes: full, one at a time, close_notify after each; token/soft and token and\n"
           "soft rates from interleaved rounds of ~0.1 s (token/soft: median of the rounds' ratios)\n\n");
    printf("%-18s %-6s %12s %11s\n", "server", "key", "handshakes/s", "token/soft");
    int rounds = 2 * (seconds > 0.2 ? (int)(seconds / 0.2 + 0.5) : 1);
    double *ratio = calloc((size_t)rounds, sizeof *ratio);
    if (!ratio)
        die("out of memory");
    for (int k = 0; k < 2; k++) {
        struct server *pair = &servers[2 * k];
        struct client *cl = &clients[2 * k];
        unsigned long n[2] = { 0, 0 };
        double t[2] = { 0, 0 }, dt, rate[2];
        for (int i = 0; i < 2; i++) /* discarded: first handshakes, caches */
            run_handshakes(&cl[i], &pair[i], 0.1, &dt);
        for (int r = 0; r < rounds; r++) {
            for (int j = 0; j < 2; j++) {
                int i = r % 2 ? 1 - j : j;
                unsigned long c = run_handshakes(&cl[i], &pair[i], seconds / rounds, &dt);
                n[i] += c;
                t[i] += dt;
                rate[i] = (double)c / dt;
            }
            ratio[r] = rate[0] / rate[1];
        }
        double med = median(ratio, rounds);
        printf("%-18s %-6s %12.0f %10.1f%%\n", kind_name[pair[0].kind], "token", (double)n[0] / t[0],
               med * 100);
        printf("%-18s %-6s %12.0f %11s\n", kind_name[pair[1].kind], "soft", (double)n[1] / t[1], "");
        fflush(stdout);
    }
    free(ratio);

    printf("\nechoed datagrams: %d-byte payloads over one association (software key), "
           "%d in flight\n\n", PAYLOAD, WINDOW);
    printf("%-18s %12s %8s %8s\n", "server", "datagrams/s", "MB/s", "stalls");
    for (int k = 0; k < 2; k++) {
        struct server *s = &servers[2 * k + 1];
        unsigned long long bytes;
        unsigned long lost;
        double t;
        run_echo(&clients[2 * k + 1], s, seconds, &bytes, &t, &lost);
        printf("%-18s %12.0f %8.2f %8lu\n", kind_name[s->kind], (double)bytes / PAYLOAD / t,
               (double)bytes / t / 1e6, lost);
        fflush(stdout);
    }
    for (int i = 0; i < NSERVERS; i++) {
        close(clients[i].fd);
        hsmtls_config_free(clients[i].cfg);
    }
    bench_servers_stop();
    return 0;
}
