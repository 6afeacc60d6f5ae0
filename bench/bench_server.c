/* Server children for the benchmarks (bench_tls.c, bench_dtls.c): started with the
 * servers' environment, logging into a temporary directory of this run, killed when
 * stopped, at exit, or when this process dies (PR_SET_PDEATHSIG). */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/store.h>

#define SERVER_PREFIX "HSMTLS_BENCH_SERVER_"
#define MAX_SERVERS 8

extern char **environ;

static char tmpdir[4096];
static struct bench_server *started[MAX_SERVERS];

void bench_server_stop(struct bench_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->log[0]) {
        unlink(s->log);
        s->log[0] = 0;
    }
}

void bench_servers_stop(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (started[i])
            bench_server_stop(started[i]);
    if (tmpdir[0]) {
        rmdir(tmpdir);
        tmpdir[0] = 0;
    }
}

double bench_server_cpu(const struct bench_server *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    /* After the command name's closing parenthesis: state (field 3) ... utime (14),
     * stime (15), in clock ticks. */
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        die("cannot read the CPU time of server %d from %s", (int)s->pid, path);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

const char *bench_server_log(const struct bench_server *s)
{
    static char buf[2048];
    buf[0] = 0;
    FILE *f = fopen(s->log, "r");
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, size > 2000 ? size - 2000 : 0, SEEK_SET);
        buf[fread(buf, 1, 2000, f)] = 0;
        fclose(f);
    }
    return buf;
}

/* This environment, with HSMTLS_BENCH_SERVER_<NAME>=VALUE applied as NAME=VALUE, and
 * `extra` ("NAME=VALUE" or NULL) on top. */
static char **server_environment(char *extra)
{
    size_t n = 0, m = 0, plen = strlen(SERVER_PREFIX);
    while (environ[n])
        n++;
    char **env = calloc(2 * n + 2, sizeof *env);
    if (!env)
        die("out of memory");
    if (extra)
        env[m++] = extra;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], SERVER_PREFIX, plen) == 0)
            env[m++] = environ[i] + plen;
    size_t over = m;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], SERVER_PREFIX, plen) == 0)
            continue;
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < over && !overridden; j++)
            overridden = strncmp(env[j], environ[i], len) == 0;
        if (!overridden)
            env[m++] = environ[i];
    }
    return env;
}

void bench_server_spawn(struct bench_server *s, const char *name, char *const argv[], char *extra_env, int in_fd,
                        int out_fd)
{
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/hsmtls-bench.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir))
            die("cannot make a temporary directory in %s: %s", t && *t ? t : "/tmp", strerror(errno));
        atexit(bench_servers_stop);
    }
    int slot = 0;
    while (slot < MAX_SERVERS && started[slot] && started[slot] != s)
        slot++;
    if (slot == MAX_SERVERS)
        die("more than %d servers", MAX_SERVERS);
    started[slot] = s;
    snprintf(s->log, sizeof s->log, "%.3900s/%.40s.log", tmpdir, name);
    char **env = server_environment(extra_env);
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int nullfd = open("/dev/null", O_RDONLY);
    if (logfd < 0 || nullfd < 0)
        die("cannot open %s: %s", s->log, strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid < 0)
        die("fork: %s", strerror(errno));
    if (s->pid == 0) {
        /* Dies with this process, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in_fd >= 0 ? in_fd : nullfd, 0);
        dup2(out_fd >= 0 ? out_fd : logfd, 1);
        dup2(logfd, 2);
        environ = env;
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    free(env);
}

EVP_PKEY *bench_store_key(OSSL_LIB_CTX *ctx, const char *uri)
{
    OSSL_STORE_CTX *store = OSSL_STORE_open_ex(uri, ctx, NULL, NULL, NULL, NULL, NULL, NULL);
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
    return pkey;
}
