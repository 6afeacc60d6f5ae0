/* The demo's exchanges: both ends in this process through libhsmtls, the server on a
 * thread of its own, so a token signature on one side never waits for the other.
 * TLS runs over a socketpair, DTLS over two UDP sockets on 127.0.0.1 with the server's
 * cookie exchange on, as a real DTLS server runs. Every wait is bounded: a side that
 * fails closes its end, and the other gives up after DEADLINE_S. */
#include "cli.h"
#include "demo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hsmtls/conn.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

#define DEADLINE_S 20

struct server_arg {
    hsmtls_config *cfg;
    int fd;
    struct demo_result *r;
    char error[1100];
    char reply[sizeof ((struct demo_result *)0)->answer + 1]; /* the server's answer, and its line end */
    atomic_int stop;            /* DTLS: the client is done (or failed): stop waiting */
};

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* The server's answer names the client it saw: the request went through a verified,
 * token-authenticated channel. The report prints what the client received instead. */
static size_t make_answer(struct server_arg *s, const char *request, size_t len)
{
    while (len > 0 && (request[len - 1] == '\n' || request[len - 1] == '\r'))
        len--;
    const char *client = s->r->client_subject[0] ? s->r->client_subject : "anonymous client";
    snprintf(s->reply, sizeof s->reply - 1, "hello %s, you said \"%.*s\"", client, (int)len, request);
    return strlen(s->reply);
}

static void finish(struct demo_result *r, const char *server_error, const char *client_error)
{
    if (client_error && *client_error && server_error && *server_error)
        snprintf(r->error, sizeof r->error, "client: %s; server: %s", client_error, server_error);
    else if (client_error && *client_error)
        snprintf(r->error, sizeof r->error, "client: %s", client_error);
    else if (server_error && *server_error)
        snprintf(r->error, sizeof r->error, "server: %s", server_error);
}

/* ---- TLS ---- */

static void *tls_server(void *arg)
{
    struct server_arg *s = arg;
    hsmtls_conn *c = hsmtls_conn_new(s->cfg);
    char buf[256];
    int n = 0;
    if (!c) {
        copy(s->error, sizeof s->error, hsmtls_error_message());
    } else if (hsmtls_conn_set_fd(c, s->fd) != HSMTLS_OK || hsmtls_conn_handshake(c) != HSMTLS_OK) {
        copy(s->error, sizeof s->error, hsmtls_conn_error_message(c));
    } else {
        copy(s->r->client_subject, sizeof s->r->client_subject, hsmtls_conn_peer_subject(c));
        s->r->client_verified = hsmtls_conn_peer_verified(c);
        n = hsmtls_conn_read(c, buf, sizeof buf);
        if (n <= 0) {
            snprintf(s->error, sizeof s->error, "no request: %s",
                     n == 0 ? "the client closed the connection" : hsmtls_conn_error_message(c));
        } else {
            size_t len = make_answer(s, buf, (size_t)n);
            s->reply[len] = '\n';
            if (hsmtls_conn_write(c, s->reply, len + 1) < 0)
                copy(s->error, sizeof s->error, hsmtls_conn_error_message(c));
            hsmtls_conn_shutdown(c);
        }
    }
    if (s->error[0])
        shutdown(s->fd, SHUT_RDWR); /* the client's blocking read ends now */
    hsmtls_conn_free(c);
    return NULL;
}

/* The answer may come in more than one record: read up to its line end. */
static int read_line(hsmtls_conn *c, char *buf, size_t size)
{
    size_t len = 0;
    while (len + 1 < size) {
        int n = hsmtls_conn_read(c, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (memchr(buf, '\n', len))
            break;
    }
    buf[len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return len > 0 ? 0 : -1;
}

int demo_tls(hsmtls_config *server, hsmtls_config *client, const char *verify_name,
             struct demo_result *r)
{
    memset(r, 0, sizeof *r);
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        snprintf(r->error, sizeof r->error, "socketpair: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = { .tv_sec = DEADLINE_S };
    for (int i = 0; i < 2; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    struct server_arg s = { .cfg = server, .fd = fds[0], .r = r };
    pthread_t thread;
    if (pthread_create(&thread, NULL, tls_server, &s) != 0) {
        snprintf(r->error, sizeof r->error, "cannot start the server thread");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    char client_error[1100] = "";
    copy(r->request, sizeof r->request, "hello over TLS");
    hsmtls_conn *c = hsmtls_conn_new(client);
    if (!c) {
        copy(client_error, sizeof client_error, hsmtls_error_message());
    } else if (hsmtls_conn_set_fd(c, fds[1]) != HSMTLS_OK ||
               (verify_name && hsmtls_conn_set_hostname(c, verify_name) != HSMTLS_OK) ||
               hsmtls_conn_handshake(c) != HSMTLS_OK) {
        copy(client_error, sizeof client_error, hsmtls_conn_error_message(c));
    } else {
        copy(r->version, sizeof r->version, hsmtls_conn_version(c));
        copy(r->cipher, sizeof r->cipher, hsmtls_conn_cipher(c));
        copy(r->server_subject, sizeof r->server_subject, hsmtls_conn_peer_subject(c));
        r->server_verified = hsmtls_conn_peer_verified(c);
        char line[sizeof r->request + 1];
        snprintf(line, sizeof line, "%s\n", r->request);
        if (hsmtls_conn_write(c, line, strlen(line)) < 0)
            copy(client_error, sizeof client_error, hsmtls_conn_error_message(c));
        else if (read_line(c, r->answer, sizeof r->answer) != 0)
            snprintf(client_error, sizeof client_error, "no answer from the server");
        hsmtls_conn_shutdown(c);
    }
    if (client_error[0])
        shutdown(fds[1], SHUT_RDWR);
    pthread_join(thread, NULL);
    hsmtls_conn_free(c);
    close(fds[0]);
    close(fds[1]);
    finish(r, s.error, client_error);
    return r->error[0] ? -1 : 0;
}

/* ---- DTLS ---- */

static int udp_socket(struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)bound, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Waits for a datagram or the association's retransmission timer; returns the bytes
 * received, 0 when the timer ran out (and was handled), -1 past the deadline or once
 * *stop is set (stop may be NULL). */
static ssize_t receive(int fd, hsmtls_dtls *d, unsigned char *dg, struct sockaddr_in *from, double deadline,
                       atomic_int *stop)
{
    for (;;) {
        double left = deadline - cli_now();
        if (left <= 0 || (stop && atomic_load(stop)))
            return -1;
        long ms = d ? hsmtls_dtls_timeout_ms(d) : -1;
        int wait = (int)(left * 1000) + 1;
        if (ms >= 0 && ms < wait)
            wait = (int)ms;
        if (stop && wait > 100)
            wait = 100;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, wait) > 0) {
            socklen_t flen = sizeof *from;
            ssize_t n = recvfrom(fd, dg, HSMTLS_DTLS_MAX_DATAGRAM, 0, (struct sockaddr *)from, &flen);
            if (n >= 0)
                return n;
        } else if (d && hsmtls_dtls_timeout_ms(d) == 0) {
            hsmtls_dtls_handle_timeout(d);
            return 0;
        }
    }
}

static void *dtls_server(void *arg)
{
    struct server_arg *s = arg;
    struct demo_result *r = s->r;
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    unsigned char *dg = malloc(HSMTLS_DTLS_MAX_DATAGRAM), *plain = malloc(HSMTLS_DTLS_MAX_DATAGRAM);
    hsmtls_dtls *d = NULL;
    double deadline = cli_now() + DEADLINE_S;
    if (!v || !dg || !plain) {
        copy(s->error, sizeof s->error, "out of memory");
        goto out;
    }
    for (;;) {
        struct sockaddr_in from;
        ssize_t n = receive(s->fd, d, dg, &from, deadline, &s->stop);
        if (n < 0) {
            /* A client that gave up already said why; one that finished needs no more. */
            if (!atomic_load(&s->stop))
                copy(s->error, sizeof s->error, "timed out waiting for the client");
            break;
        }
        if (n == 0)
            continue;
        if (!d) {
            /* Nothing is kept for a client until its ClientHello carries our cookie. */
            unsigned char hvr[300];
            size_t hvr_len = 0;
            int ok = hsmtls_dtls_verifier_check(v, dg, (size_t)n, (struct sockaddr *)&from, sizeof from, hvr,
                                                sizeof hvr, &hvr_len);
            if (ok != 1) {
                if (hvr_len && sendto(s->fd, hvr, hvr_len, 0, (struct sockaddr *)&from, sizeof from) > 0)
                    r->hello_verify_requests++;
                continue;
            }
            d = hsmtls_dtls_new(s->cfg);
            if (!d) {
                copy(s->error, sizeof s->error, hsmtls_error_message());
                break;
            }
            if (hsmtls_dtls_set_peer(d, (struct sockaddr *)&from, sizeof from, NULL) != HSMTLS_OK ||
                hsmtls_dtls_set_fd(d, s->fd) != HSMTLS_OK) {
                copy(s->error, sizeof s->error, hsmtls_dtls_error_message(d));
                break;
            }
        }
        if (hsmtls_dtls_state(d) != HSMTLS_DTLS_COMPLETE) {
            int st = hsmtls_dtls_handshake(d, dg, (size_t)n);
            if (st != HSMTLS_OK && st != HSMTLS_WANT_READ) {
                copy(s->error, sizeof s->error, hsmtls_dtls_error_message(d));
                break;
            }
            if (st == HSMTLS_OK) {
                hsmtls_conn *tls = hsmtls_dtls_conn(d);
                copy(r->client_subject, sizeof r->client_subject, hsmtls_conn_peer_subject(tls));
                r->client_verified = hsmtls_conn_peer_verified(tls);
            }
            continue;
        }
        for (int got = hsmtls_dtls_read(d, dg, (size_t)n, plain, HSMTLS_DTLS_MAX_DATAGRAM); got > 0;
             got = hsmtls_dtls_read(d, NULL, 0, plain, HSMTLS_DTLS_MAX_DATAGRAM)) {
            size_t len = make_answer(s, (const char *)plain, (size_t)got);
            if (hsmtls_dtls_write(d, s->reply, len) < 0)
                copy(s->error, sizeof s->error, hsmtls_dtls_error_message(d));
        }
        if (hsmtls_dtls_state(d) == HSMTLS_DTLS_CLOSED || hsmtls_dtls_state(d) == HSMTLS_DTLS_FAILED || s->error[0])
            break; /* the client's close_notify ends it */
    }
out:
    hsmtls_dtls_free(d);
    hsmtls_dtls_verifier_free(v);
    free(dg);
    free(plain);
    return NULL;
}

/* The client's side: handshake, one request datagram, its answer, close_notify. */
static void dtls_client(hsmtls_config *cfg, int fd, const struct sockaddr_in *server, const char *verify_name,
                        struct demo_result *r, char *error, size_t error_size)
{
    unsigned char *dg = malloc(HSMTLS_DTLS_MAX_DATAGRAM), *plain = malloc(HSMTLS_DTLS_MAX_DATAGRAM);
    hsmtls_dtls *d = hsmtls_dtls_new(cfg);
    double deadline = cli_now() + DEADLINE_S;
    if (!d || !dg || !plain) {
        snprintf(error, error_size, "%s", d ? "out of memory" : hsmtls_error_message());
        goto out;
    }
    if (hsmtls_dtls_set_peer(d, (const struct sockaddr *)server, sizeof *server, verify_name) != HSMTLS_OK ||
        hsmtls_dtls_set_fd(d, fd) != HSMTLS_OK) {
        snprintf(error, error_size, "%s", hsmtls_dtls_error_message(d));
        goto out;
    }
    int st = hsmtls_dtls_handshake(d, NULL, 0);
    while (st == HSMTLS_WANT_READ) {
        struct sockaddr_in from;
        ssize_t n = receive(fd, d, dg, &from, deadline, NULL);
        if (n < 0) {
            snprintf(error, error_size, "no handshake after %d s", DEADLINE_S);
            goto out;
        }
        if (n > 0)
            st = hsmtls_dtls_handshake(d, dg, (size_t)n);
        else if (hsmtls_dtls_state(d) == HSMTLS_DTLS_FAILED)
            st = HSMTLS_ERROR;
    }
    if (st != HSMTLS_OK) {
        snprintf(error, error_size, "%s", hsmtls_dtls_error_message(d));
        goto out;
    }
    copy(r->version, sizeof r->version, hsmtls_dtls_version(d));
    copy(r->cipher, sizeof r->cipher, hsmtls_dtls_cipher(d));
    hsmtls_conn *tls = hsmtls_dtls_conn(d);
    copy(r->server_subject, sizeof r->server_subject, hsmtls_conn_peer_subject(tls));
    r->server_verified = hsmtls_conn_peer_verified(tls);
    if (hsmtls_dtls_write(d, r->request, strlen(r->request)) < 0) {
        snprintf(error, error_size, "%s", hsmtls_dtls_error_message(d));
        goto out;
    }
    int got = 0;
    while (got == 0) {
        struct sockaddr_in from;
        ssize_t n = receive(fd, d, dg, &from, deadline, NULL);
        if (n < 0 || hsmtls_dtls_state(d) != HSMTLS_DTLS_COMPLETE)
            break;
        if (n > 0)
            got = hsmtls_dtls_read(d, dg, (size_t)n, plain, HSMTLS_DTLS_MAX_DATAGRAM);
    }
    if (got <= 0)
        snprintf(error, error_size, "no answer from the server");
    else { /* one datagram, no line end */
        const unsigned char *end = memchr(plain, '\n', (size_t)got);
        snprintf(r->answer, sizeof r->answer, "%.*s", end ? (int)(end - plain) : got, (const char *)plain);
    }
    hsmtls_dtls_shutdown(d);
out:
    hsmtls_dtls_free(d);
    free(dg);
    free(plain);
}

int demo_dtls(hsmtls_config *server, hsmtls_config *client, const char *verify_name,
              struct demo_result *r)
{
    memset(r, 0, sizeof *r);
    copy(r->request, sizeof r->request, "hello over DTLS");
    struct sockaddr_in saddr, caddr;
    int sfd = udp_socket(&saddr), cfd = udp_socket(&caddr);
    if (sfd < 0 || cfd < 0 || connect(cfd, (struct sockaddr *)&saddr, sizeof saddr) != 0) {
        snprintf(r->error, sizeof r->error, "UDP sockets on 127.0.0.1: %s", strerror(errno));
        if (sfd >= 0)
            close(sfd);
        if (cfd >= 0)
            close(cfd);
        return -1;
    }
    struct server_arg s = { .cfg = server, .fd = sfd, .r = r };
    pthread_t thread;
    char client_error[1100] = "";
    if (pthread_create(&thread, NULL, dtls_server, &s) != 0) {
        snprintf(r->error, sizeof r->error, "cannot start the server thread");
    } else {
        dtls_client(client, cfd, &saddr, verify_name, r, client_error, sizeof client_error);
        atomic_store(&s.stop, 1);
        pthread_join(thread, NULL);
        finish(r, s.error, client_error);
    }
    close(sfd);
    close(cfd);
    return r->error[0] ? -1 : 0;
}
