/* hsmtls-bench-remote: TLS 1.3 handshakes per second by a multi-threaded server whose key
 * is on a token behind p11-kit's remoting (p11-kit server + p11-kit-client.so), through
 * the hsmtls provider (with its lanes, and with HSMTLS_P11_LANES=1), through a peer
 * provider (pkcs11-provider, --peer-provider) and with the software key, in one run.
 *
 * One p11-kit client connection is served by one single-threaded p11-kit-remote process,
 * so a server handshaking on several threads is where the number of connections and of
 * PKCS#11 calls per signature show. With --latency MS the token is hsmtls-fault wrapping
 * SoftHSM2 with C_Sign:delay=MSms, a stand-in for a network HSM.
 *
 * Each variant is a server child: this program run again with --child (a fresh process:
 * providers keep per-process state), with its own OPENSSL_CONF, T threads accepting on
 * one listening socket. The clients are C threads in this process (the default provider
 * only, no openssl.cnf). The children live for the whole key and are measured in
 * interleaved rounds. docs/performance-remote.md describes it. */
#define _GNU_SOURCE /* pipe2 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/store.h>

#ifndef HSMTLS_BENCH_PROVIDER
#define HSMTLS_BENCH_PROVIDER ""
#endif
#ifndef HSMTLS_BENCH_FAULT
#define HSMTLS_BENCH_FAULT ""
#endif
#define P11_KIT_CLIENT_DEFAULT "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"

#define PROG "hsmtls-bench-remote"

extern char **environ;
#define MAX_LIST 8
#define MAX_REMOTES 64

/* ---- helpers of bench.h (hsmtls-bench-sign has its own in bench_sign.c) ---- */

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

struct timespec after(struct timespec t, double s)
{
    long long ns = (long long)t.tv_nsec + (long long)(s * 1e9);
    t.tv_sec += (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    return t;
}

double seconds_between(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct timespec now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static const char *ssl_error(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return "no OpenSSL error queued";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

/* ======================= the server child (--child) ======================= */

static atomic_long child_done, child_failed;
static int child_listen_fd;
static SSL_CTX *child_ctx;

static void *child_worker(void *arg)
{
    (void)arg;
    int reported = 0;
    for (;;) {
        int fd = accept(child_listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SSL *ssl = SSL_new(child_ctx);
        if (!ssl) {
            close(fd);
            continue;
        }
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            atomic_fetch_add(&child_done, 1);
            SSL_shutdown(ssl); /* close_notify; then this side closes first */
        } else {
            atomic_fetch_add(&child_failed, 1);
            if (!reported++)
                fprintf(stderr, PROG " server: a handshake failed: %s\n", ssl_error());
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

/* --child KIND LABEL THREADS CERT KEY [NAME=VALUE ...]: KIND token or soft; KEY a URI
 * or a PEM file. Prints "ready PORT PROVIDER" once it listens, then answers each line
 * "s" on stdin with "stats HANDSHAKES FAILED CPU_US"; ends at EOF. */
static int child_main(int argc, char **argv)
{
    if (argc < 7)
        die("--child KIND LABEL THREADS CERT KEY [NAME=VALUE ...]");
    for (int i = 7; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            die("--child: %s is not NAME=VALUE", argv[i]);
        *eq = 0;
        setenv(argv[i], eq + 1, 1);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    int threads = atoi(argv[4]);
    const char *cert = argv[5], *key = argv[6];

    /* The key the way `openssl -key` takes it: OSSL_STORE, the PIN from openssl.cnf. */
    EVP_PKEY *pkey = bench_store_key(NULL, key);
    if (!pkey) {
        printf("error cannot load the %s key %s: %s\n", argv[2], key, ssl_error());
        fflush(stdout);
        _exit(1);
    }
    const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(pkey);
    const char *prov_name = prov ? OSSL_PROVIDER_get0_name(prov) : "legacy";

    child_ctx = SSL_CTX_new(TLS_server_method());
    if (!child_ctx || !SSL_CTX_set_min_proto_version(child_ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(child_ctx, TLS1_3_VERSION) ||
        SSL_CTX_use_certificate_chain_file(child_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(child_ctx, pkey) != 1) {
        printf("error cannot set up the server with %s and %s: %s\n", cert, key, ssl_error());
        fflush(stdout);
        _exit(1);
    }
    /* Full handshakes only: no tickets, no session cache. */
    SSL_CTX_set_num_tickets(child_ctx, 0);
    SSL_CTX_set_options(child_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(child_ctx, SSL_SESS_CACHE_OFF);

    child_listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (child_listen_fd < 0 || bind(child_listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(child_listen_fd, 1024) != 0 ||
        getsockname(child_listen_fd, (struct sockaddr *)&sa, &len) != 0) {
        printf("error cannot listen on 127.0.0.1: %s\n", strerror(errno));
        fflush(stdout);
        _exit(1);
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, child_worker, NULL) != 0) {
            printf("error cannot start thread %d\n", i);
            fflush(stdout);
            _exit(1);
        }
    }
    printf("ready %d %s\n", ntohs(sa.sin_port), prov_name);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        printf("stats %ld %ld %.0f\n", atomic_load(&child_done), atomic_load(&child_failed), us);
        fflush(stdout);
    }
    /* No cleanup: providers and modules are left as they are (SoftHSM2 and p11-kit's
     * client may not like being finalised from exit handlers). */
    _exit(0);
}

/* ======================= the parent: clients and the table ======================= */

struct options {
    double seconds;
    int threads, clients;
    int latencies[MAX_LIST], nlatencies;
    char *keys[MAX_LIST];
    int nkeys;
    const char *peer, *provider, *fault, *client_module;
};

enum { V_LANES, V_ONE, V_PEER, V_SOFT, V_N };
static const char *const variant_names[V_N] = {"hsmtls", "hsmtls-lanes=1", "pkcs11-provider",
                                               "software"};

struct variant {
    int on;
    const char *name;
    struct bench_server srv;
    FILE *to, *from; /* the child's stdin and stdout */
    char provider[64];
    pid_t remotes[MAX_REMOTES]; /* its p11-kit-remote processes (its connections) */
    double remote_cpu0[MAX_REMOTES];
    int nremotes;
    /* totals over the rounds */
    long hs, failed, server_hs;
    double secs, server_cpu_us, remote_cpu_us, remote_calls;
    double round_rate[256];
    int rounds;
};

static char self_exe[4096];
static char workdir[4096];

/* ---- p11-kit server ---- */

static pid_t p11_server_pid;

static void p11_server_stop(void)
{
    if (p11_server_pid > 0) {
        kill(-p11_server_pid, SIGKILL); /* its group: the server and its p11-kit-remotes */
        waitpid(p11_server_pid, NULL, 0);
        p11_server_pid = 0;
    }
}

static int accepts(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", path);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* `p11-kit server -f -s --provider MODULE -n SOCK pkcs11:token=server` in a session of its
 * own, serving SoftHSM2 (latency 0) or hsmtls-fault in front of it. */
static void p11_server_start(const struct options *o, int latency_ms, const char *sock, const char *log)
{
    const char *real = getenv("HSMTLS_PKCS11_MODULE");
    char plan[64];
    snprintf(plan, sizeof plan, "C_Sign:delay=%dms", latency_ms);
    unlink(sock);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0 && null >= 0) {
            dup2(null, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *module = real;
        if (latency_ms > 0) {
            setenv("HSMTLS_FAULT_MODULE", real, 1);
            setenv("HSMTLS_FAULT", plan, 1);
            module = o->fault;
        }
        unsetenv("OPENSSL_CONF");
        /* HSMTLS_BENCH_SERVER_<NAME>=VALUE: NAME=VALUE for the servers, as for the others
         * (a sanitizer build's hsmtls-fault in the system's p11-kit needs the preload). */
        char *set[64];
        int nset = 0;
        for (char **e = environ; *e && nset < 64; e++)
            if (strncmp(*e, "HSMTLS_BENCH_SERVER_", 20) == 0 && strchr(*e, '='))
                set[nset++] = *e + 20;
        for (int i = 0; i < nset; i++)
            putenv(set[i]);
        execlp("p11-kit", "p11-kit", "server", "-f", "-s", "--provider", module, "-n", sock,
               "pkcs11:token=server", (char *)NULL);
        dprintf(2, "cannot run p11-kit: %s\n", strerror(errno));
        _exit(127);
    }
    p11_server_pid = pid;
    struct timespec deadline = after(now(), 10);
    while (!accepts(sock)) {
        if (waitpid(pid, NULL, WNOHANG) == pid || seconds_between(now(), deadline) < 0) {
            p11_server_pid = pid;
            p11_server_stop();
            char buf[2048] = "";
            FILE *f = fopen(log, "r");
            if (f) {
                buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
                fclose(f);
            }
            die("p11-kit server did not start serving %s: %s", sock, buf);
        }
        usleep(20000);
    }
}

/* The server's children (p11-kit-remote, one per client connection). */
static int p11_server_children(pid_t *out, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *p = strrchr(buf, ')');
        int ppid;
        if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == p11_server_pid)
            out[n++] = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

/* utime + stime of a process in µs (0 once it is gone). */
static double proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int known_remote(pid_t pid, struct variant *v)
{
    for (int i = 0; i < V_N; i++)
        for (int j = 0; j < v[i].nremotes; j++)
            if (v[i].remotes[j] == pid)
                return 1;
    return 0;
}

/* New p11-kit-remote processes are the connections of the variant that ran last. */
static void adopt_remotes(struct variant *all, struct variant *v)
{
    pid_t pids[256];
    int n = p11_server_children(pids, 256);
    for (int i = 0; i < n; i++)
        if (!known_remote(pids[i], all) && v->nremotes < MAX_REMOTES) {
            v->remote_cpu0[v->nremotes] = 0;
            v->remotes[v->nremotes++] = pids[i];
        }
}

static double remotes_cpu_us(const struct variant *v)
{
    double s = 0;
    for (int i = 0; i < v->nremotes; i++)
        s += proc_cpu_us(v->remotes[i]);
    return s;
}

/* The write system calls of a process (syscw in /proc/PID/io; 0 once it is gone).
 * p11-kit-remote makes two per call it serves (a reply's header and body: 200 for 100
 * C_GetSlotList or C_GetInfo, measured on p11-kit 0.24.1), so half of it counts the
 * PKCS#11 calls that crossed the connection. */
static double proc_writes(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    double w = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %lf", &w) == 1)
            break;
    if (f)
        fclose(f);
    return w;
}

static double remotes_calls(const struct variant *v)
{
    double s = 0;
    for (int i = 0; i < v->nremotes; i++)
        s += proc_writes(v->remotes[i]) / 2;
    return s;
}

/* ---- the server children ---- */

static int read_line(FILE *f, char *buf, size_t size, double timeout)
{
    struct pollfd p = {.fd = fileno(f), .events = POLLIN};
    if (poll(&p, 1, (int)(timeout * 1000)) <= 0)
        return 0;
    return fgets(buf, (int)size, f) != NULL;
}

static void child_stats(struct variant *v, long *hs, long *failed, double *cpu_us)
{
    char line[128];
    fprintf(v->to, "s\n");
    fflush(v->to);
    if (!read_line(v->from, line, sizeof line, 30) ||
        sscanf(line, "stats %ld %ld %lf", hs, failed, cpu_us) != 3)
        die("the %s server stopped answering:\n%s", v->name, bench_server_log(&v->srv));
}

static void child_start(struct variant *v, int which, const struct options *o, const char *label,
                        const char *sock, const char *hsmtls_conf, const char *peer_conf)
{
    const char *sandbox = getenv("HSMTLS_SANDBOX");
    char cert[4400], key[4400], conf[4400], addr[4400], module[4400], name[64];
    snprintf(cert, sizeof cert, "%.4000s/certs/%.100s.pem", sandbox, label);
    snprintf(addr, sizeof addr, "P11_KIT_SERVER_ADDRESS=unix:path=%.4200s", sock);
    snprintf(module, sizeof module, "HSMTLS_PKCS11_MODULE=%.4200s", o->client_module);
    if (which == V_SOFT) {
        snprintf(key, sizeof key, "%.4000s/soft/%.100s.key", sandbox, label);
        snprintf(conf, sizeof conf, "OPENSSL_CONF=/dev/null");
    } else {
        snprintf(key, sizeof key, "pkcs11:token=server;object=%.100s;type=private", label);
        snprintf(conf, sizeof conf, "OPENSSL_CONF=%.4200s", which == V_PEER ? peer_conf : hsmtls_conf);
    }
    char threads[16];
    snprintf(threads, sizeof threads, "%d", o->threads);
    char *argv[16];
    int n = 0;
    argv[n++] = self_exe;
    argv[n++] = "--child";
    argv[n++] = which == V_SOFT ? "soft" : "token";
    argv[n++] = (char *)label;
    argv[n++] = threads;
    argv[n++] = cert;
    argv[n++] = key;
    argv[n++] = conf;
    if (which != V_SOFT) {
        argv[n++] = addr;
        argv[n++] = module;
    }
    if (which == V_ONE)
        argv[n++] = "HSMTLS_P11_LANES=1";
    argv[n] = NULL;

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    snprintf(name, sizeof name, "server-%d", which);
    bench_server_spawn(&v->srv, name, argv, NULL, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    v->to = fdopen(in[1], "w");
    v->from = fdopen(out[0], "r");
    char line[512];
    if (!read_line(v->from, line, sizeof line, 60))
        die("the %s server did not start:\n%s", variant_names[which], bench_server_log(&v->srv));
    int port;
    if (sscanf(line, "ready %d %63s", &port, v->provider) != 2)
        die("the %s server did not start: %s%s", variant_names[which], line,
            bench_server_log(&v->srv));
    v->srv.port = port;
    v->name = variant_names[which];
    v->on = 1;
}

static void child_stop(struct variant *v)
{
    if (v->to)
        fclose(v->to);
    if (v->from)
        fclose(v->from);
    v->to = v->from = NULL;
    bench_server_stop(&v->srv);
}

/* ---- the clients ---- */

struct clients {
    SSL_CTX *ctx;
    int port;
    struct timespec deadline;
    atomic_long done, failed;
    char error[256];
    pthread_mutex_t lock;
};

static int handshake(struct clients *c)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A server that stops answering fails the handshake, not the run. */
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        SSL *ssl = SSL_new(c->ctx);
        if (ssl) {
            SSL_set_fd(ssl, fd);
            ok = SSL_connect(ssl) == 1;
            if (ok) {
                /* Wait for the server's close_notify and FIN: it closes first, so the
                 * TIME_WAITs are on its side, not on this side's ephemeral ports. */
                char b;
                while (SSL_read(ssl, &b, 1) > 0)
                    ;
                while (recv(fd, &b, 1, 0) > 0)
                    ;
            } else {
                pthread_mutex_lock(&c->lock);
                if (!c->error[0])
                    snprintf(c->error, sizeof c->error, "%s", ssl_error());
                pthread_mutex_unlock(&c->lock);
            }
            ERR_clear_error();
            SSL_free(ssl);
        }
    } else {
        pthread_mutex_lock(&c->lock);
        if (!c->error[0])
            snprintf(c->error, sizeof c->error, "connect: %s", strerror(errno));
        pthread_mutex_unlock(&c->lock);
    }
    close(fd);
    return ok;
}

static void *client_thread(void *arg)
{
    struct clients *c = arg;
    while (seconds_between(now(), c->deadline) > 0) {
        if (handshake(c))
            atomic_fetch_add(&c->done, 1);
        else
            atomic_fetch_add(&c->failed, 1);
    }
    return NULL;
}

/* C client threads against `port` for `seconds`: handshakes done, failed, and the time. */
static double run_clients(SSL_CTX *ctx, int nclients, int port, double seconds, long *done,
                          long *failed, char *error, size_t error_size)
{
    struct clients c = {.ctx = ctx, .port = port};
    pthread_mutex_init(&c.lock, NULL);
    pthread_t t[64];
    struct timespec start = now();
    c.deadline = after(start, seconds);
    for (int i = 0; i < nclients; i++)
        if (pthread_create(&t[i], NULL, client_thread, &c) != 0)
            die("cannot start client thread %d", i);
    for (int i = 0; i < nclients; i++)
        pthread_join(t[i], NULL);
    double secs = seconds_between(start, now());
    *done = atomic_load(&c.done);
    *failed = atomic_load(&c.failed);
    if (error && c.error[0])
        snprintf(error, error_size, "%s", c.error);
    pthread_mutex_destroy(&c.lock);
    return secs;
}

/* ---- configuration files of this run ---- */

static void write_hsmtls_conf(const char *path, const char *provider, const char *sandbox)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    /* The sandbox's openssl.cnf, with this build's provider. */
    fprintf(f,
            "# " PROG ": the hsmtls provider (the sandbox's openssl.cnf, this build's provider)\n"
            "openssl_conf = openssl_init\n\n"
            "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n\n"
            "[algorithm_sect]\ndefault_properties = ?provider=default\n\n"
            "[provider_sect]\ndefault = default_sect\nhsmtls = hsmtls_sect\n\n"
            "[default_sect]\nactivate = 1\n\n"
            "[hsmtls_sect]\nmodule = %s\npkcs11-module-path = %s\n"
            "pkcs11-pin-source = file:%s/pin.txt\nactivate = 1\n",
            provider, getenv("HSMTLS_PKCS11_MODULE"), sandbox);
    if (fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* pkcs11-provider's settings as hsmtls-bench-sign writes them, with p11-kit's client as
 * the module. */
static void write_peer_conf(const char *path, const struct options *o, const char *sandbox)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    fprintf(f,
            "# " PROG ": the peer provider over p11-kit's client (written for this run)\n"
            "openssl_conf = openssl_init\n\n"
            "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n\n"
            "[algorithm_sect]\ndefault_properties = ?provider=default\n\n"
            "[provider_sect]\ndefault = default_sect\npkcs11 = pkcs11_sect\n\n"
            "[default_sect]\nactivate = 1\n\n"
            "[pkcs11_sect]\nmodule = %s\npkcs11-module-path = %s\n"
            "pkcs11-module-token-pin = file:%s/pin.txt\npkcs11-module-cache-keys = true\n"
            "pkcs11-module-quirks = no-deinit\nactivate = 1\n",
            o->peer, o->client_module, sandbox);
    if (fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

static char conf_hsmtls[4200], conf_peer[4200], sock_path[4200], server_log[4200];

static void cleanup(void)
{
    p11_server_stop();
    if (!workdir[0])
        return;
    unlink(conf_hsmtls);
    unlink(conf_peer);
    unlink(sock_path);
    unlink(server_log);
    rmdir(workdir);
}

/* ---- one key at one latency ---- */

static void fmt_pct(char *buf, size_t size, double v)
{
    if (v > 0)
        snprintf(buf, size, "%.1f%%", 100 * v);
    else
        snprintf(buf, size, "-");
}

static void bench_key(const struct options *o, SSL_CTX *client_ctx, int latency, const char *label)
{
    struct variant v[V_N];
    memset(v, 0, sizeof v);
    int order[V_N], n = 0;
    for (int i = 0; i < V_N; i++)
        if (i != V_PEER || o->peer)
            order[n++] = i;

    /* One server at a time: started and warmed up (its connections made, logged in,
     * keys found and copied) before the next, so that logins never race. */
    double warm = o->seconds < 1 ? 0.2 : 0.5;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        child_start(&v[i], i, o, label, sock_path, conf_hsmtls, conf_peer);
        long d, f;
        char err[256] = "";
        run_clients(client_ctx, o->clients, v[i].srv.port, warm, &d, &f, err, sizeof err);
        if (d == 0)
            die("%s, %s: no handshake in %.1f s of warm-up (%s):\n%s", variant_names[i], label,
                warm, err[0] ? err : "no error", bench_server_log(&v[i].srv));
        adopt_remotes(v, &v[i]);
    }

    /* Interleaved rounds: A B C D, D C B A, ... */
    double round = o->seconds / 3 < 0.2 ? o->seconds / 3 : 0.2;
    int passes = (int)(o->seconds / round + 0.5);
    if (passes < 1)
        passes = 1;
    if (passes > 256)
        passes = 256;
    for (int p = 0; p < passes; p++) {
        for (int k = 0; k < n; k++) {
            struct variant *x = &v[order[p % 2 ? n - 1 - k : k]];
            long hs0, f0, hs1, f1, d, f;
            double cpu0, cpu1;
            child_stats(x, &hs0, &f0, &cpu0);
            double rcpu0 = remotes_cpu_us(x), calls0 = remotes_calls(x);
            double secs = run_clients(client_ctx, o->clients, x->srv.port, round, &d, &f, NULL, 0);
            child_stats(x, &hs1, &f1, &cpu1);
            adopt_remotes(v, x); /* a connection opened in this round: all its CPU counts */
            double rcpu1 = remotes_cpu_us(x), calls1 = remotes_calls(x);
            x->hs += d;
            x->failed += f + (f1 - f0);
            x->secs += secs;
            x->server_hs += hs1 - hs0;
            x->server_cpu_us += cpu1 - cpu0;
            x->remote_cpu_us += rcpu1 - rcpu0;
            x->remote_calls += calls1 - calls0;
            x->round_rate[x->rounds++] = (double)d / secs;
        }
    }

    char lat[16];
    snprintf(lat, sizeof lat, "%dms", latency);
    for (int k = 0; k < V_N; k++) {
        struct variant *x = &v[k];
        if (!x->on)
            continue;
        double rate = x->secs > 0 ? (double)x->hs / x->secs : 0;
        double cpu = x->server_hs > 0 ? x->server_cpu_us / (double)x->server_hs : 0;
        char rcpu[16] = "-", conns[16] = "-", vs_peer[16] = "-", vs_one[16] = "-", calls[16] = "-";
        if (k != V_SOFT) {
            snprintf(calls, sizeof calls, "%.2f", x->server_hs > 0 ? x->remote_calls / (double)x->server_hs : 0);
            snprintf(rcpu, sizeof rcpu, "%.0f", x->server_hs > 0 ? x->remote_cpu_us / (double)x->server_hs : 0);
            snprintf(conns, sizeof conns, "%d", x->nremotes);
        }
        /* Ratios: the median over the passes of the ratio of the two rates in a pass. */
        double r[256];
        if ((k == V_LANES || k == V_ONE) && v[V_PEER].on) {
            for (int p = 0; p < passes; p++)
                r[p] = v[V_PEER].round_rate[p] > 0 ? x->round_rate[p] / v[V_PEER].round_rate[p] : 0;
            fmt_pct(vs_peer, sizeof vs_peer, median(r, passes));
        }
        if (k == V_LANES) {
            for (int p = 0; p < passes; p++)
                r[p] = v[V_ONE].round_rate[p] > 0 ? x->round_rate[p] / v[V_ONE].round_rate[p] : 0;
            fmt_pct(vs_one, sizeof vs_one, median(r, passes));
        }
        printf("%-7s %-8s %-16s %-8s %8.0f %9.0f %9s %7s %5s %6ld %8s %8s\n", lat, label,
               variant_names[k], x->provider, rate, cpu, rcpu, calls, conns, x->failed, vs_peer, vs_one);
    }
    fflush(stdout);
    for (int k = 0; k < V_N; k++)
        if (v[k].on)
            child_stop(&v[k]);
}

/* ---- options ---- */

static void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: " PROG " [--seconds S] [--threads T] [--clients C] [--latency LIST]\n"
            "                           [--keys LIST] [--peer-provider PATH] [--provider PATH]\n"
            "TLS 1.3 handshakes per second of a T-thread server whose key is on the sandbox's token\n"
            "behind p11-kit server, through the hsmtls provider (with lanes and with\n"
            "HSMTLS_P11_LANES=1), the peer provider, and the software key. Defaults: 3 s per\n"
            "variant, 4 server threads, 4 client threads, latency 0,1 (ms per C_Sign),\n"
            "keys ec-p256,rsa2048. Run with the sandbox's env.sh sourced.\n");
    exit(status);
}

static int split_list(char *s, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path = colon ? colon + 1 : NULL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);

    /* This process is the clients: the default provider only, never openssl.cnf. */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct options o = {.seconds = 3, .threads = 4, .clients = 4};
    o.latencies[0] = 0;
    o.latencies[1] = 1;
    o.nlatencies = 2;
    static char default_keys[] = "ec-p256,rsa2048";
    o.nkeys = split_list(default_keys, o.keys, MAX_LIST);
    o.provider = getenv("HSMTLS_PROVIDER") && *getenv("HSMTLS_PROVIDER") ? getenv("HSMTLS_PROVIDER")
                                                                          : HSMTLS_BENCH_PROVIDER;
    o.fault = HSMTLS_BENCH_FAULT;
    o.client_module = P11_KIT_CLIENT_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage(0);
        if (i + 1 >= argc)
            usage(2);
        char *val = argv[++i];
        if (strcmp(a, "--seconds") == 0)
            o.seconds = atof(val);
        else if (strcmp(a, "--threads") == 0)
            o.threads = atoi(val);
        else if (strcmp(a, "--clients") == 0)
            o.clients = atoi(val);
        else if (strcmp(a, "--latency") == 0) {
            char *items[MAX_LIST];
            o.nlatencies = split_list(val, items, MAX_LIST);
            for (int k = 0; k < o.nlatencies; k++) {
                char *end;
                long ms = strtol(items[k], &end, 10);
                if (end == items[k] || (*end && strcmp(end, "ms") != 0) || ms < 0 || ms > 10000)
                    die("--latency: %s is not a number of milliseconds", items[k]);
                o.latencies[k] = (int)ms;
            }
        } else if (strcmp(a, "--keys") == 0)
            o.nkeys = split_list(val, o.keys, MAX_LIST);
        else if (strcmp(a, "--peer-provider") == 0)
            o.peer = val;
        else if (strcmp(a, "--provider") == 0)
            o.provider = val;
        else
            usage(2);
    }
    if (o.seconds <= 0 || o.threads < 1 || o.threads > 64 || o.clients < 1 || o.clients > 64 ||
        o.nlatencies < 1 || o.nkeys < 1)
        usage(2);

    const char *sandbox = getenv("HSMTLS_SANDBOX");
    if (!sandbox || !*sandbox || !getenv("SOFTHSM2_CONF") || !getenv("HSMTLS_PKCS11_MODULE")) {
        fprintf(stderr, PROG ": no sandbox environment (HSMTLS_SANDBOX, SOFTHSM2_CONF, "
                        "HSMTLS_PKCS11_MODULE): make one with softhsm/sandbox DIR and source DIR/env.sh\n");
        return 2;
    }
    if (!on_path("p11-kit") || access(o.client_module, R_OK) != 0) {
        fprintf(stderr, PROG ": needs p11-kit (the p11-kit program on PATH and %s; Debian: "
                        "apt-get install p11-kit p11-kit-modules)\n", o.client_module);
        return 2;
    }
    if (access(o.provider, R_OK) != 0)
        die("no hsmtls provider at %s (--provider PATH or HSMTLS_PROVIDER)", o.provider);
    for (int k = 0; k < o.nlatencies; k++)
        if (o.latencies[k] > 0 && access(o.fault, R_OK) != 0)
            die("no hsmtls-fault module at %s, needed for --latency %d", o.fault, o.latencies[k]);
    if (o.peer && access(o.peer, R_OK) != 0)
        die("no peer provider module %s (bench/build-peer-provider.sh builds pkcs11-provider)", o.peer);
    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (len <= 0)
        die("cannot find this program: %s", strerror(errno));
    self_exe[len] = 0;

    const char *t = getenv("TMPDIR");
    snprintf(workdir, sizeof workdir, "%s/hsmtls-bench-remote.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(workdir))
        die("cannot make a temporary directory: %s", strerror(errno));
    snprintf(conf_hsmtls, sizeof conf_hsmtls, "%s/hsmtls.cnf", workdir);
    snprintf(conf_peer, sizeof conf_peer, "%s/peer.cnf", workdir);
    snprintf(sock_path, sizeof sock_path, "%s/p11.sock", workdir);
    snprintf(server_log, sizeof server_log, "%s/p11-kit-server.log", workdir);
    if (strlen(sock_path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
        die("the socket path %s is too long for a unix socket: set TMPDIR to a shorter directory",
            sock_path);
    atexit(cleanup);
    write_hsmtls_conf(conf_hsmtls, o.provider, sandbox);
    if (o.peer)
        write_peer_conf(conf_peer, &o, sandbox);

    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_ctx || !SSL_CTX_set_min_proto_version(client_ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(client_ctx, TLS1_3_VERSION))
        die("cannot make the clients' SSL_CTX: %s", ssl_error());
    SSL_CTX_set_options(client_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);

    char lats[64] = "";
    for (int k = 0; k < o.nlatencies; k++)
        snprintf(lats + strlen(lats), sizeof lats - strlen(lats), "%s%d ms", k ? ", " : "",
                 o.latencies[k]);
    const char *lanes_env = getenv("HSMTLS_P11_LANES");
    printf(PROG ": TLS 1.3 full handshakes per second, the server's key on a token behind p11-kit's remoting\n");
    printf("machine: %ld CPUs online (nproc); %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           OpenSSL_version(OPENSSL_VERSION));
    printf("token: p11-kit server -> %s (token \"server\"); clients' module %s\n",
           getenv("HSMTLS_PKCS11_MODULE"), o.client_module);
    printf("latency per C_Sign: %s (above 0: hsmtls-fault C_Sign:delay=MSms in front of the module)\n", lats);
    printf("server: one process per variant, %d threads accepting; clients: %d threads in this process, "
           "default provider, a new connection and SSL per handshake, no tickets\n",
           o.threads, o.clients);
    printf("hsmtls: %s (HSMTLS_P11_LANES %s%s; hsmtls-lanes=1: HSMTLS_P11_LANES=1)\n", o.provider,
           lanes_env ? "=" : "unset", lanes_env ? lanes_env : "");
    printf("peer: %s\n", o.peer ? o.peer : "- (no --peer-provider)");
    printf("rates: totals over interleaved rounds of %.2f s, %.2f s per variant; /peer and /lanes=1: "
           "median of the rounds' ratios\n",
           o.seconds / 3 < 0.2 ? o.seconds / 3 : 0.2, o.seconds);
    printf("srv-us/hs: the server process's CPU (getrusage) per handshake; p11-us/hs: the CPU of its "
           "p11-kit-remote processes per handshake;\nrpc/hs: PKCS#11 calls they served per handshake "
           "(their write system calls / 2); conns: those processes (one per connection)\n\n");
    printf("%-7s %-8s %-16s %-8s %8s %9s %9s %7s %5s %6s %8s %8s\n", "latency", "key", "variant",
           "keyprov", "hs/s", "srv-us/hs", "p11-us/hs", "rpc/hs", "conns", "failed", "/peer",
           "/lanes=1");
    fflush(stdout);

    for (int l = 0; l < o.nlatencies; l++) {
        p11_server_start(&o, o.latencies[l], sock_path, server_log);
        for (int k = 0; k < o.nkeys; k++)
            bench_key(&o, client_ctx, o.latencies[l], o.keys[k]);
        p11_server_stop();
    }
    SSL_CTX_free(client_ctx);
    return 0;
}
