/* A libhsmtls server or client for the real-peer tests (tests/test_lib_peers.py): it
 * talks to openssl s_client / s_server and Python's ssl over loopback and prints what
 * the library reports, one "name: value" line each, so the test can compare it with
 * what the peer reports. Blocking sockets, one connection at a time.
 *
 * usage: test_lib_peer serve PORT CERT KEY [options]   answers each line (echo)
 *        test_lib_peer connect PORT [options]          sends each --send line, reads a line back
 * options: --tls1_2 --tls1_3 --ca FILE --renegotiation (allow it) --pin-source FILE
 *   server: --naccept N --cache off|client|server|both --cache-size N --no-tickets
 *           --dhparams FILE --dh-group NAME --ciphers LIST --pha (ask for the client's
 *           certificate after its first line)
 *   client: --cert FILE --key REF --servername NAME --send LINE... --sess-in FILE
 *           --sess-out FILE --interrupt (pause on verification errors) --ignore CODE...
 *           --renegotiate (after the first line) --no-replies (for a peer that only
 *           prints what it gets) --cn-fallback (host names may match the subject's CN) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hsmtls/config.h"
#include "hsmtls/conn.h"

#define MAX_LIST 16

static struct {
    int serve, port, naccept, version, renegotiation, no_tickets, pha, interrupt, renegotiate, no_replies, cn_fallback;
    int cache, cache_size;
    const char *cert, *key, *ca, *servername, *dhparams, *dh_group, *ciphers, *sess_in, *sess_out, *pin_source;
    const char *send[MAX_LIST];
    int n_send;
    long ignore[MAX_LIST];
    int n_ignore;
} opt = { .naccept = 1, .cache = -1, .cache_size = -1, .servername = "localhost" };

static void die(const char *what, const char *msg)
{
    printf("error: %s: %s\n", what, msg);
    exit(1);
}

static void hex(const char *name, const unsigned char *b, int n)
{
    printf("%s: ", name);
    for (int i = 0; i < n; i++)
        printf("%02X", b[i]);
    printf("\n");
}

static void print_info(hsmtls_conn *conn)
{
    printf("version: %s\ncipher: %s\nreused: %d\n", hsmtls_conn_version(conn), hsmtls_conn_cipher(conn),
           hsmtls_conn_session_reused(conn));
    const char *eph = hsmtls_conn_ephemeral_key(conn);
    printf("ephemeral: %s %d\n", eph ? eph : "none", hsmtls_conn_ephemeral_key_bits(conn));
    static const char *const types[] = { "tls-exporter", "tls-unique", "tls-server-end-point" };
    for (int i = 0; i < 3; i++) {
        unsigned char buf[64];
        int n = hsmtls_conn_channel_binding(conn, types[i], buf, sizeof buf);
        char name[64];
        snprintf(name, sizeof name, "binding %s", types[i]);
        if (n > 0 && n <= (int)sizeof buf)
            hex(name, buf, n);
        else
            printf("%s: error %s\n", name, hsmtls_conn_error_message(conn));
    }
    const char *peer = hsmtls_conn_peer_subject(conn);
    if (peer)
        printf("peer: %s %s\n", peer, hsmtls_conn_peer_verified(conn) ? "verified" : "NOT verified");
}

static void print_stats(hsmtls_config *cfg)
{
    hsmtls_session_stats s;
    if (hsmtls_config_session_stats(cfg, &s) != 0)
        die("stats", hsmtls_config_error(cfg));
    printf("stats: number=%ld hits=%ld misses=%ld accept=%ld accept_good=%ld accept_renegotiate=%ld "
           "connect=%ld connect_good=%ld connect_renegotiate=%ld\n", s.number, s.hits, s.misses, s.accept,
           s.accept_good, s.accept_renegotiate, s.connect, s.connect_good, s.connect_renegotiate);
}

static hsmtls_config *make_config(void)
{
    hsmtls_config *cfg = hsmtls_config_new(opt.serve ? HSMTLS_SERVER : HSMTLS_CLIENT);
    if (!cfg)
        die("config", hsmtls_error_message());
#define TRY(call) do { if ((call) != 0) die(#call, hsmtls_config_error(cfg)); } while (0)
    if (opt.pin_source)
        TRY(hsmtls_config_set_pin_source(cfg, opt.pin_source));
    if (opt.version)
        TRY(hsmtls_config_set_protocols(cfg, opt.version, opt.version));
    if (opt.cert)
        TRY(hsmtls_config_set_cert_key(cfg, opt.cert, opt.key));
    if (opt.ca)
        TRY(hsmtls_config_add_ca(cfg, opt.ca));
    if (opt.renegotiation)
        TRY(hsmtls_config_set_renegotiation(cfg, 1));
    if (opt.no_tickets)
        TRY(hsmtls_config_set_session_tickets(cfg, 0));
    if (opt.cache >= 0)
        TRY(hsmtls_config_set_session_cache_mode(cfg, opt.cache));
    if (opt.cache_size >= 0)
        TRY(hsmtls_config_set_session_cache_size(cfg, opt.cache_size));
    if (opt.dhparams)
        TRY(hsmtls_config_set_dh_params(cfg, opt.dhparams));
    if (opt.dh_group)
        TRY(hsmtls_config_set_dh_group(cfg, opt.dh_group));
    if (opt.ciphers)
        TRY(hsmtls_config_set_ciphers(cfg, opt.ciphers));
    if (opt.pha) {
        TRY(hsmtls_config_set_post_handshake_auth(cfg, 1));
        TRY(hsmtls_config_set_verify_mode(cfg, HSMTLS_VERIFY_PEER));
    }
    if (opt.interrupt)
        TRY(hsmtls_config_set_interrupt_on_verify_error(cfg, 1));
    if (opt.cn_fallback)
        TRY(hsmtls_config_set_hostname_cn_fallback(cfg, 1));
#undef TRY
    if (opt.serve)
        printf("dh: %s %d\n", hsmtls_config_dh_group(cfg) ? hsmtls_config_dh_group(cfg) : "custom",
               hsmtls_config_dh_bits(cfg));
    return cfg;
}

/* ---- server ---- */

static void serve_one(hsmtls_config *cfg, int fd)
{
    hsmtls_conn *conn = hsmtls_conn_new(cfg);
    if (!conn)
        die("connection", hsmtls_error_message());
    if (hsmtls_conn_set_fd(conn, fd) != 0 || hsmtls_conn_handshake(conn) != 0) {
        printf("handshake-error: %s\n", hsmtls_conn_error_message(conn));
        hsmtls_conn_free(conn);
        return;
    }
    print_info(conn);
    int lines = 0, had_peer = hsmtls_conn_peer_subject(conn) != NULL;
    char buf[4096];
    int n;
    while ((n = hsmtls_conn_read(conn, buf, sizeof buf)) > 0) {
        printf("received: %.*s", n, buf);
        if (opt.pha && lines++ == 0 && hsmtls_conn_request_client_cert(conn) != 0)
            printf("pha-error: %s\n", hsmtls_conn_error_message(conn));
        const char *peer = hsmtls_conn_peer_subject(conn);
        if (peer && !had_peer) {
            had_peer = 1;
            printf("peer: %s %s\n", peer, hsmtls_conn_peer_verified(conn) ? "verified" : "NOT verified");
        }
        if (hsmtls_conn_write(conn, buf, (size_t)n) != n)
            break;
    }
    if (n < 0)
        printf("closed: %s\n", hsmtls_conn_error_message(conn));
    else
        hsmtls_conn_shutdown(conn);
    hsmtls_conn_free(conn);
}

static int serve(void)
{
    hsmtls_config *cfg = make_config();
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)opt.port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 8) != 0)
        die("listen", "cannot listen on the port");
    printf("listening: %d\n", opt.port);
    for (int i = 0; i < opt.naccept; i++) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            die("accept", "failed");
        serve_one(cfg, fd);
        close(fd);
        print_stats(cfg);
    }
    close(ls);
    hsmtls_config_free(cfg);
    return 0;
}

/* ---- client ---- */

static int ignored(long code)
{
    for (int i = 0; i < opt.n_ignore; i++)
        if (opt.ignore[i] == code)
            return 1;
    return 0;
}

static void print_verify_errors(hsmtls_conn *conn)
{
    for (int i = 0; i < hsmtls_conn_verify_error_count(conn); i++) {
        long code;
        int depth;
        const char *msg = hsmtls_conn_verify_error(conn, i, &code, &depth);
        const hsmtls_cert *c = hsmtls_conn_verify_error_cert(conn, i);
        printf("verify-error: %ld %d %s | cert %s\n", code, depth, msg, c ? hsmtls_cert_subject(c) : "none");
    }
}

static int read_line(hsmtls_conn *conn, char *buf, size_t size)
{
    size_t used = 0;
    while (used + 1 < size) {
        int n = hsmtls_conn_read(conn, buf + used, size - used - 1);
        if (n <= 0)
            return n < 0 ? n : (int)used;
        used += (size_t)n;
        if (buf[used - 1] == '\n')
            break;
    }
    buf[used] = '\0';
    return (int)used;
}

static int client(void)
{
    hsmtls_config *cfg = make_config();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)opt.port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect", "cannot connect");
    hsmtls_conn *conn = hsmtls_conn_new(cfg);
    if (!conn || hsmtls_conn_set_fd(conn, fd) != 0 || hsmtls_conn_set_hostname(conn, opt.servername) != 0)
        die("connection", conn ? hsmtls_conn_error_message(conn) : hsmtls_error_message());
    if (opt.sess_in) {
        unsigned char der[8192];
        FILE *f = fopen(opt.sess_in, "rb");
        size_t n = f ? fread(der, 1, sizeof der, f) : 0;
        if (f)
            fclose(f);
        hsmtls_session *s = hsmtls_session_load(der, n);
        if (!s || hsmtls_conn_set_session(conn, s) != 0)
            die("session", hsmtls_error_message());
        hsmtls_session_free(s);
    }
    int r;
    while ((r = hsmtls_conn_handshake(conn)) == HSMTLS_WANT_VERIFY) {
        printf("paused: %s\n", hsmtls_conn_error_message(conn));
        print_verify_errors(conn);
        for (int i = 0; i < hsmtls_conn_verify_error_count(conn); i++) {
            long code;
            hsmtls_conn_verify_error(conn, i, &code, NULL);
            if (ignored(code))
                hsmtls_conn_ignore_verify_error(conn, code);
        }
    }
    if (r != 0) {
        printf("handshake-error: %s\n", hsmtls_conn_error_message(conn));
        hsmtls_conn_free(conn);
        close(fd);
        hsmtls_config_free(cfg);
        return 1;
    }
    print_info(conn);
    print_verify_errors(conn);
    int rc = 0;
    for (int i = 0; i < opt.n_send && rc == 0; i++) {
        char line[1024];
        snprintf(line, sizeof line, "%s\n", opt.send[i]);
        if (hsmtls_conn_write(conn, line, strlen(line)) != (int)strlen(line) ||
            (!opt.no_replies && read_line(conn, line, sizeof line) <= 0)) {
            printf("io-error: %s\n", hsmtls_conn_error_message(conn));
            rc = 1;
            break;
        }
        if (!opt.no_replies)
            printf("reply: %s", line);
        if (i == 0 && opt.renegotiate) {
            if (hsmtls_conn_renegotiate(conn) != 0) {
                printf("renegotiate-error: %s\n", hsmtls_conn_error_message(conn));
                rc = 1;
            } else
                print_info(conn);
        }
    }
    if (opt.renegotiate)
        printf("renegotiate-pending: %d\n", hsmtls_conn_renegotiate_pending(conn));
    hsmtls_session *s = opt.sess_out ? hsmtls_conn_session(conn) : NULL;
    if (s) {
        unsigned char der[8192];
        int n = hsmtls_session_save(s, der, sizeof der);
        FILE *f = fopen(opt.sess_out, "wb");
        if (n <= 0 || !f || fwrite(der, 1, (size_t)n, f) != (size_t)n)
            die("session", "cannot keep it");
        fclose(f);
        hsmtls_session_free(s);
    }
    hsmtls_conn_shutdown(conn);
    hsmtls_conn_free(conn);
    close(fd);
    print_stats(cfg);
    hsmtls_config_free(cfg);
    return rc;
}

static int cache_mode(const char *s)
{
    static const char *const names[] = { "off", "client", "server", "both" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return 99; /* the setter names the problem */
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || (strcmp(argv[1], "serve") && strcmp(argv[1], "connect"))) {
        fprintf(stderr, "usage: %s serve PORT CERT KEY [options] | connect PORT [options]\n", argv[0]);
        return 2;
    }
    opt.serve = strcmp(argv[1], "serve") == 0;
    opt.port = atoi(argv[2]);
    int i = 3;
    if (opt.serve) {
        if (argc < 5)
            return 2;
        opt.cert = argv[3];
        opt.key = argv[4];
        i = 5;
    }
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--tls1_2")) opt.version = HSMTLS_TLS1_2, used = 0;
        else if (!strcmp(a, "--tls1_3")) opt.version = HSMTLS_TLS1_3, used = 0;
        else if (!strcmp(a, "--renegotiation")) opt.renegotiation = 1, used = 0;
        else if (!strcmp(a, "--no-tickets")) opt.no_tickets = 1, used = 0;
        else if (!strcmp(a, "--pha")) opt.pha = 1, used = 0;
        else if (!strcmp(a, "--interrupt")) opt.interrupt = 1, used = 0;
        else if (!strcmp(a, "--renegotiate")) opt.renegotiate = 1, used = 0;
        else if (!strcmp(a, "--no-replies")) opt.no_replies = 1, used = 0;
        else if (!strcmp(a, "--cn-fallback")) opt.cn_fallback = 1, used = 0;
        else if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--naccept")) opt.naccept = atoi(v);
        else if (!strcmp(a, "--ca")) opt.ca = v;
        else if (!strcmp(a, "--pin-source")) opt.pin_source = v;
        else if (!strcmp(a, "--cache")) opt.cache = cache_mode(v);
        else if (!strcmp(a, "--cache-size")) opt.cache_size = atoi(v);
        else if (!strcmp(a, "--dhparams")) opt.dhparams = v;
        else if (!strcmp(a, "--dh-group")) opt.dh_group = v;
        else if (!strcmp(a, "--ciphers")) opt.ciphers = v;
        else if (!strcmp(a, "--cert")) opt.cert = v;
        else if (!strcmp(a, "--key")) opt.key = v;
        else if (!strcmp(a, "--servername")) opt.servername = v;
        else if (!strcmp(a, "--sess-in")) opt.sess_in = v;
        else if (!strcmp(a, "--sess-out")) opt.sess_out = v;
        else if (!strcmp(a, "--send") && opt.n_send < MAX_LIST) opt.send[opt.n_send++] = v;
        else if (!strcmp(a, "--ignore") && opt.n_ignore < MAX_LIST) opt.ignore[opt.n_ignore++] = atol(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
        i += used;
    }
    if (!opt.serve && opt.n_send == 0)
        opt.send[opt.n_send++] = "hello";
    return opt.serve ? serve() : client();
}
