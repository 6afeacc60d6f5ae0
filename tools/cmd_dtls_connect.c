/* hsmtls dtls-connect: a DTLS client over libhsmtls on a UDP socket of its own. After
 * the handshake each line of stdin goes out as one datagram, and each datagram that
 * comes back is printed as it arrives. It ends once stdin closed and as many replies
 * came back as lines went out, or nothing arrived for --linger seconds after stdin
 * closed, or --timeout seconds passed; then it sends close_notify. */
#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hsmtls/config.h"
#include "hsmtls/dtls.h"

static const char usage[] =
    "hsmtls dtls-connect HOST:PORT [--ca FILE] [--cert CERT --key KEY] [--servername NAME]\n"
    "       [--no-verify] [--pin-source FILE] [--sess-in FILE] [--sess-out FILE] [--mtu N]\n"
    "       [--timeout S] [--linger S]\n"
    "  Verifies the server against --ca (else the system CAs) and HOST (or NAME), which is\n"
    "  also sent as the server name unless it is an IP address; CERT and KEY (paths or\n"
    "  pkcs11: URIs) answer a server that asks for a client certificate. --sess-out keeps\n"
    "  the session (DER) for a later --sess-in to resume.";

/* The datagrams waiting on the socket: through the handshake or printed. Returns the
 * replies printed, -1 when the association ended, -2 when the peer's host said that
 * nothing listens there (ICMP port unreachable). */
static int receive(int fd, hsmtls_dtls *d, unsigned char *dg, unsigned char *plain)
{
    int replies = 0;
    for (;;) {
        ssize_t n = recv(fd, dg, HSMTLS_DTLS_MAX_DATAGRAM, 0);
        if (n < 0)
            return n < 0 && errno == ECONNREFUSED && !replies ? -2 : replies;
        if (hsmtls_dtls_state(d) != HSMTLS_DTLS_COMPLETE) {
            int r = hsmtls_dtls_handshake(d, dg, (size_t)n);
            if (r != HSMTLS_OK && r != HSMTLS_WANT_READ)
                return -1;
            continue;
        }
        int got = hsmtls_dtls_read(d, dg, (size_t)n, plain, HSMTLS_DTLS_MAX_DATAGRAM);
        while (got > 0) {
            fwrite(plain, 1, (size_t)got, stdout);
            fflush(stdout);
            replies++;
            got = hsmtls_dtls_read(d, NULL, 0, plain, HSMTLS_DTLS_MAX_DATAGRAM);
        }
        if (got < 0 || hsmtls_dtls_state(d) == HSMTLS_DTLS_CLOSED)
            return -1;
    }
}

struct dtls_connect_options {
    unsigned mtu;
    double timeout, linger;
};

static int own_option(void *arg, const char *opt, const char *value)
{
    struct dtls_connect_options *dc = arg;
    if (!value)
        return 0;
    long n = 0;
    int bad;
    if (strcmp(opt, "--mtu") == 0) {
        bad = cli_parse_count("dtls-connect", opt, value, 256, HSMTLS_DTLS_MAX_DATAGRAM, &n);
        dc->mtu = (unsigned)n;
    } else if (strcmp(opt, "--timeout") == 0)
        bad = cli_parse_seconds("dtls-connect", opt, value, 0, &dc->timeout);
    else if (strcmp(opt, "--linger") == 0)
        bad = cli_parse_seconds("dtls-connect", opt, value, 1, &dc->linger);
    else
        return 0;
    return bad ? -1 : 2;
}

int cmd_dtls_connect(int argc, char **argv)
{
    struct cli_tls o = { .role = HSMTLS_CLIENT, .verb = "dtls-connect" };
    struct dtls_connect_options dc = { .timeout = 30, .linger = 3 };
    int parsed = cli_tls_parse(&o, argc, argv, usage, own_option, &dc);
    if (parsed != CLI_OK)
        return parsed == CLI_HELP_SHOWN ? CLI_OK : parsed;
    unsigned mtu = dc.mtu;
    double timeout = dc.timeout, linger = dc.linger;
    char target[1024], *host, *port;
    snprintf(target, sizeof target, "%s", o.target);
    if (cli_split_target(target, &host, &port) != 0) {
        fprintf(stderr, "hsmtls dtls-connect: \"%s\" is not HOST:PORT\nusage: %s\n", o.target, usage);
        return CLI_USAGE;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "hsmtls dtls-connect: %s port %s: %s\n", host, port, gai_strerror(rc));
        return CLI_FAILED;
    }
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_CLIENT);
    hsmtls_dtls *d = NULL;
    unsigned char *dg = malloc(HSMTLS_DTLS_MAX_DATAGRAM), *plain = malloc(HSMTLS_DTLS_MAX_DATAGRAM);
    char *line = NULL;
    size_t line_cap = 0;
    int fd = -1, status = CLI_FAILED;
    if (!cfg || !dg || !plain) {
        fprintf(stderr, "hsmtls dtls-connect: out of memory\n");
        goto out;
    }
    if (cli_tls_setup(&o, cfg, o.cert, o.key) != 0) {
        cli_config_error("dtls-connect", cfg);
        goto out;
    }
    d = hsmtls_dtls_new(cfg);
    if (!d) {
        fprintf(stderr, "hsmtls dtls-connect: %s\n", hsmtls_error_message());
        goto out;
    }
    if (hsmtls_dtls_set_peer(d, res->ai_addr, res->ai_addrlen, o.servername ? o.servername : host) != HSMTLS_OK ||
        (mtu && hsmtls_dtls_set_mtu_hint(d, mtu) != HSMTLS_OK)) {
        fprintf(stderr, "hsmtls dtls-connect: %s\n", hsmtls_dtls_error_message(d));
        goto out;
    }
    if (o.sess_in && cli_session_resume("dtls-connect", o.sess_in, NULL, d) != 0)
        goto out;
    fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "hsmtls dtls-connect: %s port %s: %s\n", host, port, strerror(errno));
        goto out;
    }
    hsmtls_dtls_set_fd(d, fd);
    double deadline = cli_now() + timeout;
    int refused = 0;
    int r = hsmtls_dtls_handshake(d, NULL, 0);
    while (r == HSMTLS_WANT_READ || hsmtls_dtls_state(d) == HSMTLS_DTLS_IN_PROGRESS) {
        double left = deadline - cli_now();
        if (left <= 0) {
            fprintf(stderr, "hsmtls dtls-connect: %s port %s: no handshake after %g s\n", host, port, timeout);
            goto out;
        }
        long ms = hsmtls_dtls_timeout_ms(d);
        int wait = (int)(left * 1000) + 1;
        if (ms >= 0 && ms < wait)
            wait = (int)ms;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, wait) > 0) {
            int got = receive(fd, d, dg, plain);
            if (got == -2 && ++refused >= 3) { /* not just a server still starting */
                fprintf(stderr, "hsmtls dtls-connect: %s port %s: nothing listens there (port unreachable)\n", host,
                        port);
                goto out;
            }
            if (got == -1)
                break;
        } else if (hsmtls_dtls_timeout_ms(d) == 0 && hsmtls_dtls_handle_timeout(d) < 0) {
            break;
        }
        r = hsmtls_dtls_state(d) == HSMTLS_DTLS_COMPLETE ? HSMTLS_OK : HSMTLS_WANT_READ;
        if (hsmtls_dtls_state(d) == HSMTLS_DTLS_FAILED)
            break;
    }
    if (hsmtls_dtls_state(d) != HSMTLS_DTLS_COMPLETE) {
        fprintf(stderr, "hsmtls dtls-connect: %s port %s: %s\n", host, port, hsmtls_dtls_error_message(d));
        goto out;
    }
    fprintf(stderr, "hsmtls dtls-connect: %s\n", hsmtls_dtls_summary(d));
    if (o.sess_out) { /* DTLS 1.2: the session is whole once the handshake is */
        hsmtls_session *s = hsmtls_dtls_session(d);
        int kept = cli_session_write("dtls-connect", s, o.sess_out);
        hsmtls_session_free(s);
        if (kept != 0)
            goto out;
    }

    long sent = 0, replies = 0;
    int stdin_open = 1, ended = 0;
    double last = cli_now();
    while (!ended) {
        double t = cli_now();
        if (t >= deadline) {
            fprintf(stderr, "hsmtls dtls-connect: timed out after %g s\n", timeout);
            break;
        }
        if (!stdin_open && (replies >= sent || t - last >= linger))
            break;
        struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = stdin_open ? 0 : -1, .events = POLLIN } };
        double until = stdin_open ? deadline : (last + linger < deadline ? last + linger : deadline);
        long ms = hsmtls_dtls_timeout_ms(d);
        int wait = (int)((until - t) * 1000) + 1;
        if (ms >= 0 && ms < wait)
            wait = (int)ms;
        if (poll(p, 2, wait) < 0 && errno != EINTR)
            break;
        if (hsmtls_dtls_timeout_ms(d) == 0)
            hsmtls_dtls_handle_timeout(d);
        if (p[0].revents & POLLIN) {
            int got = receive(fd, d, dg, plain);
            if (got == -2) {
                got = 0; /* the server went away: what is in flight is lost */
            } else if (got < 0) {
                ended = 1;
                if (hsmtls_dtls_state(d) == HSMTLS_DTLS_FAILED)
                    fprintf(stderr, "hsmtls dtls-connect: %s\n", hsmtls_dtls_error_message(d));
                else
                    fprintf(stderr, "hsmtls dtls-connect: the server closed the association\n");
            } else if (got > 0) {
                replies += got;
                last = cli_now();
            }
        }
        if (stdin_open && (p[1].revents & (POLLIN | POLLHUP))) {
            ssize_t n = getline(&line, &line_cap, stdin);
            if (n <= 0) {
                stdin_open = 0;
                last = cli_now();
            } else if (hsmtls_dtls_write(d, line, (size_t)n > 16384 ? 16384 : (size_t)n) < 0) {
                fprintf(stderr, "hsmtls dtls-connect: %s\n", hsmtls_dtls_error_message(d));
                break;
            } else {
                sent++;
                last = cli_now();
            }
        }
    }
    if (hsmtls_dtls_state(d) == HSMTLS_DTLS_COMPLETE)
        hsmtls_dtls_shutdown(d);
    status = hsmtls_dtls_state(d) == HSMTLS_DTLS_FAILED ? CLI_FAILED : CLI_OK;
out:
    if (fd >= 0)
        close(fd);
    hsmtls_dtls_free(d);
    hsmtls_config_free(cfg);
    freeaddrinfo(res);
    free(dg);
    free(plain);
    free(line);
    return status;
}
