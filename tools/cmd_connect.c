/* hsmtls connect: a TLS client over libhsmtls. Copies stdin to the connection and the
 * connection to stdout, each reply written out as it arrives; at the end of stdin it
 * sends close_notify (a half-close) and keeps reading until the server closes, so the
 * last reply is not lost. The handshake summary goes to stderr. */
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

#include <openssl/ocsp.h>

#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static const char usage[] =
    "hsmtls connect HOST:PORT [--ca FILE] [--cert CERT --key KEY] [--servername NAME]\n"
    "       [--alpn LIST] [--tls1_2 | --tls1_3] [--no-verify] [--pin-source FILE]\n"
    "       [--sess-in FILE] [--sess-out FILE] [--ocsp] [--crl FILE]\n"
    "  CERT and KEY are paths or pkcs11: URIs. Without --ca the system CA store is used.\n"
    "  --no-verify reports verification errors without failing on them.\n"
    "  --sess-out keeps the session (DER) for a later --sess-in to resume.\n"
    "  --ocsp asks the server to staple an OCSP response and prints what it says.\n"
    "  --crl checks the server's certificate against that CRL (PEM or DER).";

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void print_summary(hsmtls_conn *conn, const hsmtls_config *cfg, const char *host, const char *port)
{
    fprintf(stderr, "hsmtls connect: connected to %s port %s: %s\n", host, port, hsmtls_conn_summary(conn));
    if (hsmtls_config_key_location(cfg) == HSMTLS_LOC_NONE)
        fprintf(stderr, "hsmtls connect: no client certificate\n");
    else
        cli_describe_key("connect", "client ", cfg);
}

static void print_verify_errors(hsmtls_conn *conn)
{
    for (int i = 0; i < hsmtls_conn_verify_error_count(conn); i++)
        fprintf(stderr, "hsmtls connect: verification error: %s\n", hsmtls_conn_verify_error(conn, i, NULL, NULL));
}

/* The copy loop after the handshake; returns a CLI exit code. */
static int relay(hsmtls_conn *conn, int fd)
{
    char in[16384], buf[16384];
    size_t in_len = 0;
    int stdin_eof = 0, closed_sent = 0, need_write = 0;
    for (;;) {
        int write_status = 0;
        if (in_len) {
            int r = hsmtls_conn_write(conn, in, in_len);
            if (r > 0) {
                memmove(in, in + r, in_len - (size_t)r);
                in_len -= (size_t)r;
            } else if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
                write_status = r;
            } else {
                fprintf(stderr, "hsmtls connect: %s\n", hsmtls_conn_error_message(conn));
                return CLI_FAILED;
            }
        } else if (stdin_eof && !closed_sent) {
            int r = hsmtls_conn_shutdown(conn);
            if (r == HSMTLS_OK)
                closed_sent = 1;
            else if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE)
                write_status = r;
            else {
                fprintf(stderr, "hsmtls connect: %s\n", hsmtls_conn_error_message(conn));
                return CLI_FAILED;
            }
        }
        need_write = write_status == HSMTLS_WANT_WRITE;
        for (;;) {
            int r = hsmtls_conn_read(conn, buf, sizeof buf);
            if (r > 0) {
                if (write_all(STDOUT_FILENO, buf, (size_t)r) != 0) {
                    fprintf(stderr, "hsmtls connect: writing to stdout: %s\n", strerror(errno));
                    return CLI_FAILED;
                }
                continue;
            }
            if (r == 0)
                return CLI_OK; /* the server's close_notify: everything has arrived */
            if (r == HSMTLS_WANT_WRITE)
                need_write = 1;
            if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE)
                break;
            if (closed_sent && r == HSMTLS_CLOSED) {
                /* Some servers answer our close_notify by closing the socket alone. */
                return CLI_OK;
            }
            fprintf(stderr, "hsmtls connect: %s\n", hsmtls_conn_error_message(conn));
            return CLI_FAILED;
        }
        struct pollfd p[2] = {
            { .fd = fd, .events = (short)(POLLIN | (need_write ? POLLOUT : 0)) },
            { .fd = (!stdin_eof && in_len == 0) ? STDIN_FILENO : -1, .events = POLLIN },
        };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "hsmtls connect: poll: %s\n", strerror(errno));
            return CLI_FAILED;
        }
        if (p[1].revents) {
            ssize_t n = read(STDIN_FILENO, in, sizeof in);
            if (n > 0)
                in_len = (size_t)n;
            else if (n == 0 || errno != EINTR)
                stdin_eof = 1;
        }
    }
}

/* The stapled OCSP response, as the application sees it: its status and the first
 * certificate status in it (checking its signature is the application's business). */
static void print_ocsp(hsmtls_conn *conn)
{
    size_t len = 0;
    const unsigned char *der = hsmtls_conn_ocsp_response(conn, &len);
    if (!der) {
        fprintf(stderr, "hsmtls connect: no OCSP response stapled\n");
        return;
    }
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *basic = resp ? OCSP_response_get1_basic(resp) : NULL;
    OCSP_SINGLERESP *single = basic ? OCSP_resp_get0(basic, 0) : NULL;
    int st = single ? OCSP_single_get0_status(single, NULL, NULL, NULL, NULL) : -1;
    fprintf(stderr, "hsmtls connect: OCSP response stapled (%zu bytes): %s, certificate %s\n", len,
            resp ? OCSP_response_status_str(OCSP_response_status(resp)) : "not an OCSP response",
            st >= 0 ? OCSP_cert_status_str(st) : "status unknown");
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
}

/* What only connect has: ALPN, one protocol version, OCSP, a CRL. */
static int setup_extra(hsmtls_config *cfg, const char *alpn, int version, int ocsp, const char *crl)
{
    if (alpn && hsmtls_config_set_alpn(cfg, alpn) != HSMTLS_OK)
        return -1;
    if (version && hsmtls_config_set_protocols(cfg, version, version) != HSMTLS_OK)
        return -1;
    if (ocsp && hsmtls_config_set_ocsp_request(cfg, 1) != HSMTLS_OK)
        return -1;
    if (crl && (hsmtls_config_add_crl(cfg, crl) != HSMTLS_OK ||
                hsmtls_config_set_verify_flags(cfg, HSMTLS_VFLAG_CRL_CHECK) != HSMTLS_OK))
        return -1;
    return 0;
}

struct connect_options {
    const char *alpn, *crl;
    int version, ocsp;
};

static int own_option(void *arg, const char *opt, const char *value)
{
    struct connect_options *co = arg;
    if (strcmp(opt, "--tls1_2") == 0 || strcmp(opt, "--tls1_3") == 0) {
        co->version = strcmp(opt, "--tls1_2") == 0 ? HSMTLS_TLS1_2 : HSMTLS_TLS1_3;
        return 1;
    }
    if (strcmp(opt, "--ocsp") == 0) {
        co->ocsp = 1;
        return 1;
    }
    if (!value)
        return 0;
    if (strcmp(opt, "--alpn") == 0)
        co->alpn = value;
    else if (strcmp(opt, "--crl") == 0)
        co->crl = value;
    else
        return 0;
    return 2;
}

int cmd_connect(int argc, char **argv)
{
    struct cli_tls o = { .role = HSMTLS_CLIENT, .verb = "connect" };
    struct connect_options co = { 0 };
    int parsed = cli_tls_parse(&o, argc, argv, usage, own_option, &co);
    if (parsed != CLI_OK)
        return parsed == CLI_HELP_SHOWN ? CLI_OK : parsed;
    char *host, *port;
    char *t = strdup(o.target);
    if (!t || cli_split_target(t, &host, &port) != 0) {
        free(t);
        fprintf(stderr, "hsmtls connect: \"%s\" is not HOST:PORT\n", o.target);
        return CLI_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = CLI_FAILED, fd = -1;
    hsmtls_conn *conn = NULL;
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_CLIENT);
    if (!cfg) {
        fprintf(stderr, "hsmtls connect: %s\n", hsmtls_error_message());
        goto out;
    }
    if (cli_tls_setup(&o, cfg, o.cert, o.key) != 0 || setup_extra(cfg, co.alpn, co.version, co.ocsp, co.crl) != 0) {
        cli_config_error("connect", cfg);
        goto out;
    }
    if ((fd = cli_socket("connect", host, port, SOCK_STREAM, 0, NULL, 0)) < 0)
        goto out;
    if (!(conn = hsmtls_conn_new(cfg))) {
        fprintf(stderr, "hsmtls connect: %s\n", hsmtls_error_message());
        goto out;
    }
    if (hsmtls_conn_set_fd(conn, fd) != HSMTLS_OK ||
        hsmtls_conn_set_hostname(conn, o.servername ? o.servername : host) != HSMTLS_OK) {
        fprintf(stderr, "hsmtls connect: %s\n", hsmtls_conn_error_message(conn));
        goto out;
    }
    if (o.sess_in && cli_session_resume("connect", o.sess_in, conn, NULL) != 0)
        goto out;
    /* Blocking while the handshake runs; the copy loop wants non-blocking I/O. */
    int r = hsmtls_conn_handshake(conn);
    if (r != HSMTLS_OK) {
        fprintf(stderr, "hsmtls connect: %s port %s: %s\n", host, port, hsmtls_conn_error_message(conn));
        print_verify_errors(conn);
        goto out;
    }
    print_summary(conn, cfg, host, port);
    print_verify_errors(conn);
    if (co.ocsp)
        print_ocsp(conn);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        fprintf(stderr, "hsmtls connect: cannot make the socket non-blocking: %s\n", strerror(errno));
        goto out;
    }
    rc = relay(conn, fd);
    if (rc == CLI_OK && o.sess_out) {
        hsmtls_session *s = hsmtls_conn_session(conn);
        if (cli_session_write("connect", s, o.sess_out) != 0)
            rc = CLI_FAILED;
        hsmtls_session_free(s);
    }
out:
    hsmtls_conn_free(conn);
    hsmtls_config_free(cfg);
    if (fd >= 0)
        close(fd);
    free(t);
    return rc;
}
