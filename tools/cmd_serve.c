/* hsmtls serve: a TLS echo server over libhsmtls. One thread runs a poll() loop over
 * non-blocking connections, so many clients are served at once and a slow one holds
 * nobody up; the number of clients is bounded (--max-clients). Each complete line a
 * client sends is written back to it. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static const char usage[] =
    "hsmtls serve --port N --cert CERT --key KEY [--bind ADDR] [--ca FILE] [--verify-client]\n"
    "       [--alpn LIST] [--tls1_2 | --tls1_3] [--pin-source FILE] [--max-clients N] [--naccept N]\n"
    "       [--sni NAME:CERT:KEY]... [--ocsp-response FILE]\n"
    "  CERT and KEY are paths or pkcs11: URIs. --ca trusts those CAs for client certificates\n"
    "  without requiring one; --verify-client requires one. --naccept N ends after N connections.\n"
    "  --sni answers a client asking for NAME with that certificate and key (others get CERT).\n"
    "  --ocsp-response staples that DER OCSP response for clients that ask.";

#define LINE_MAX_BYTES 65536

struct client {
    int fd;
    unsigned id;
    hsmtls_conn *conn;
    int handshaken;
    int peer_closed;
    char *in, *out;
    size_t in_len, out_len;
    short events;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void drop(struct client *c, const char *why)
{
    if (why)
        fprintf(stderr, "hsmtls serve: client %u: %s\n", c->id, cli_q(why));
    hsmtls_conn_free(c->conn);
    close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static int append(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (!p)
        return -1;
    memcpy(p + *len, data, n);
    *buf = p;
    *len += n;
    return 0;
}

/* Moves every complete line (or an overlong partial one, or all at the end) to out. */
static int lines_to_out(struct client *c, int all)
{
    size_t cut = 0;
    for (size_t i = 0; i < c->in_len; i++)
        if (c->in[i] == '\n')
            cut = i + 1;
    if (all || c->in_len >= LINE_MAX_BYTES)
        cut = c->in_len;
    if (!cut)
        return 0;
    if (append(&c->out, &c->out_len, c->in, cut) != 0)
        return -1;
    memmove(c->in, c->in + cut, c->in_len - cut);
    c->in_len -= cut;
    return 0;
}

static short wanted(int status)
{
    return status == HSMTLS_WANT_WRITE ? POLLOUT : POLLIN;
}

/* Moves one client as far as it goes without blocking. Returns 0 to keep it. */
static int step(struct client *c)
{
    if (!c->handshaken) {
        int r = hsmtls_conn_handshake(c->conn);
        if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
            c->events = wanted(r);
            return 0;
        }
        if (r != HSMTLS_OK) {
            fprintf(stderr, "hsmtls serve: client %u: %s\n", c->id, cli_q(hsmtls_conn_error_message(c->conn)));
            return -1;
        }
        c->handshaken = 1;
        const char *sni = hsmtls_conn_hostname(c->conn);
        fprintf(stderr, "hsmtls serve: client %u: %s%s%s\n", c->id, cli_q(hsmtls_conn_summary(c->conn)),
                sni ? "; SNI " : "", sni ? cli_q(sni) : "");
    }
    char buf[16384];
    for (;;) {
        while (c->out_len) {
            int r = hsmtls_conn_write(c->conn, c->out, c->out_len);
            if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
                c->events = wanted(r);
                return 0;
            }
            if (r < 0) {
                fprintf(stderr, "hsmtls serve: client %u: %s\n", c->id, cli_q(hsmtls_conn_error_message(c->conn)));
                return -1;
            }
            memmove(c->out, c->out + r, c->out_len - (size_t)r);
            c->out_len -= (size_t)r;
        }
        if (c->peer_closed) {
            /* Everything echoed: answer the client's close_notify with ours. */
            int r = hsmtls_conn_shutdown(c->conn);
            if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
                c->events = wanted(r);
                return 0;
            }
            fprintf(stderr, "hsmtls serve: client %u: closed\n", c->id);
            return -1;
        }
        int r = hsmtls_conn_read(c->conn, buf, sizeof buf);
        if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
            c->events = wanted(r);
            return 0;
        }
        if (r == HSMTLS_CLOSED) {
            /* After a completed handshake, a client that hangs up without close_notify
             * (openssl s_client, most HTTP clients) is an ordinary end, not worth a
             * warning; during the handshake the error above says it. */
            fprintf(stderr, "hsmtls serve: client %u: closed\n", c->id);
            return -1;
        }
        if (r < 0) {
            fprintf(stderr, "hsmtls serve: client %u: %s\n", c->id, cli_q(hsmtls_conn_error_message(c->conn)));
            return -1;
        }
        if (r == 0)
            c->peer_closed = 1;
        else if (append(&c->in, &c->in_len, buf, (size_t)r) != 0) {
            fprintf(stderr, "hsmtls serve: client %u: out of memory\n", c->id);
            return -1;
        }
        if (lines_to_out(c, c->peer_closed) != 0) {
            fprintf(stderr, "hsmtls serve: client %u: out of memory\n", c->id);
            return -1;
        }
    }
}

static int read_file(const char *file, unsigned char **data, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "hsmtls serve: %s: %s\n", cli_q(file), strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *more = realloc(buf, cap *= 2);
        if (!more) {
            free(buf);
            buf = NULL;
        }
        buf = more;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err || n == 0) {
        fprintf(stderr, "hsmtls serve: %s: %s\n", cli_q(file), !buf ? "out of memory" : n == 0 ? "empty" : "read error");
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* What --alpn and --tls1_x add to each config (the main one and every --sni one). */
struct serve_extra {
    const char *alpn;
    int version;
};

static int setup_extra(hsmtls_config *cfg, void *arg)
{
    const struct serve_extra *x = arg;
    if (x->alpn && hsmtls_config_set_alpn(cfg, x->alpn) != HSMTLS_OK)
        return -1;
    if (x->version && hsmtls_config_set_protocols(cfg, x->version, x->version) != HSMTLS_OK)
        return -1;
    return 0;
}

struct serve_options {
    struct serve_extra x;
    const char *ocsp_file;
    long max_clients;
};

static int own_option(void *arg, const char *opt, const char *value)
{
    struct serve_options *so = arg;
    if (strcmp(opt, "--tls1_2") == 0 || strcmp(opt, "--tls1_3") == 0) {
        so->x.version = strcmp(opt, "--tls1_2") == 0 ? HSMTLS_TLS1_2 : HSMTLS_TLS1_3;
        return 1;
    }
    if (!value)
        return 0;
    if (strcmp(opt, "--alpn") == 0)
        so->x.alpn = value;
    else if (strcmp(opt, "--max-clients") == 0) {
        if (cli_parse_count("serve", opt, value, 1, 10000, &so->max_clients) != 0)
            return -1;
    }
    else if (strcmp(opt, "--ocsp-response") == 0)
        so->ocsp_file = value;
    else
        return 0;
    return 2;
}

int cmd_serve(int argc, char **argv)
{
    struct cli_tls o = { .role = HSMTLS_SERVER, .verb = "serve" };
    struct serve_options so = { .max_clients = 256 };
    struct cli_sni sni = { .n = 0 };
    int parsed = cli_tls_parse(&o, argc, argv, usage, own_option, &so);
    if (parsed != CLI_OK)
        return parsed == CLI_HELP_SHOWN ? CLI_OK : parsed;
    long naccept = o.naccept, max_clients = so.max_clients;
    const char *ocsp_file = so.ocsp_file;
    struct serve_extra x = so.x;

    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_SERVER);
    if (!cfg || cli_tls_setup(&o, cfg, o.cert, o.key) != 0 || setup_extra(cfg, &x) != 0) {
        cli_config_error("serve", cfg);
        goto early_exit;
    }
    /* Each --sni name gets a config of its own with the same settings but its pair. */
    int sni_rc = cli_sni_setup(&sni, &o, cfg, setup_extra, &x);
    if (sni_rc != CLI_OK) {
        cli_sni_free(&sni);
        hsmtls_config_free(cfg);
        return sni_rc;
    }
    hsmtls_config *bad_cfg = NULL;
    if (ocsp_file) {
        unsigned char *der = NULL;
        size_t der_len = 0;
        if (read_file(ocsp_file, &der, &der_len) != 0)
            goto early_exit;
        int r = hsmtls_config_set_ocsp_response(cfg, der, der_len);
        for (int j = 0; r == HSMTLS_OK && j < sni.n; j++)
            if (hsmtls_config_set_ocsp_response(sni.v[j].cfg, der, der_len) != HSMTLS_OK)
                bad_cfg = sni.v[j].cfg;
        free(der);
        if (r != HSMTLS_OK)
            bad_cfg = cfg;
    }
    if (bad_cfg) {
        cli_config_error("serve", bad_cfg);
        goto early_exit;
    }
    int lfd = cli_socket("serve", o.bind, o.port, SOCK_STREAM, 1, NULL, 0);
    if (lfd < 0)
        goto early_exit;
    cli_describe_key("serve", "", cfg);
    fprintf(stderr, "hsmtls serve: listening on %s port %s%s\n", o.bind ? cli_q(o.bind) : "all addresses", cli_q(o.port),
            o.verify_client ? ", client certificates required" : o.ca ? ", client certificates verified when sent" : "");
    if (x.alpn)
        fprintf(stderr, "hsmtls serve: ALPN %s\n", cli_q(x.alpn));
    if (ocsp_file)
        fprintf(stderr, "hsmtls serve: stapling the OCSP response in %s\n", cli_q(ocsp_file));

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not a death */

    struct client *clients = calloc((size_t)max_clients, sizeof *clients);
    struct pollfd *pfd = calloc((size_t)max_clients + 1, sizeof *pfd);
    int rc = CLI_OK;
    if (!clients || !pfd) {
        fprintf(stderr, "hsmtls serve: out of memory\n");
        rc = CLI_FAILED;
        stopping = 1;
    }
    for (long i = 0; clients && i < max_clients; i++)
        clients[i].fd = -1;
    long active = 0, accepted = 0, finished = 0;
    unsigned next_id = 1;
    while (!stopping && (naccept == 0 || finished < naccept)) {
        nfds_t n = 0;
        int accepting = active < max_clients && (naccept == 0 || accepted < naccept);
        pfd[n++] = (struct pollfd){ .fd = accepting ? lfd : -1, .events = POLLIN };
        for (long i = 0; i < max_clients; i++)
            pfd[n++] = (struct pollfd){ .fd = clients[i].fd, .events = clients[i].events };
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "hsmtls serve: poll: %s\n", strerror(errno));
            rc = CLI_FAILED;
            break;
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0 && (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
                close(fd);
                fd = -1;
            }
            long slot = 0;
            while (fd >= 0 && slot < max_clients && clients[slot].fd >= 0)
                slot++;
            if (fd >= 0) {
                struct client *c = &clients[slot];
                c->fd = fd;
                c->id = next_id++;
                accepted++;
                active++;
                c->conn = hsmtls_conn_new(cfg);
                if (!c->conn || hsmtls_conn_set_fd(c->conn, fd) != HSMTLS_OK) {
                    drop(c, c->conn ? hsmtls_conn_error_message(c->conn) : hsmtls_error_message());
                    active--;
                    finished++;
                } else {
                    c->events = POLLIN;
                }
            }
        }
        for (long i = 0; i < max_clients; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || !pfd[i + 1].revents)
                continue;
            if (step(c) != 0) {
                drop(c, NULL);
                active--;
                finished++;
            }
        }
    }
    for (long i = 0; clients && i < max_clients; i++)
        if (clients[i].fd >= 0)
            drop(&clients[i], "server stopping");
    free(clients);
    free(pfd);
    close(lfd);
    hsmtls_config_free(cfg);
    cli_sni_free(&sni);
    return rc;
early_exit:
    cli_sni_free(&sni);
    hsmtls_config_free(cfg);
    return CLI_FAILED;
}
