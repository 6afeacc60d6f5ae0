/* hsmtls dtls-serve: a DTLS echo server over libhsmtls. One UDP socket serves every
 * peer: datagrams are demultiplexed by the sender's address, each peer has its own
 * hsmtls_dtls, and a peer gets one only after the stateless cookie exchange
 * (hsmtls_dtls_verifier) verified its ClientHello. Each datagram a peer sends is
 * written back to it. Peers that vanish mid-handshake are timed out and freed, idle
 * ones too. Prints "listening on ADDR:PORT" on stdout when ready, a line per peer on
 * stderr, and counters at the end (SIGINT/SIGTERM, or --naccept handshakes done and
 * their peers gone). */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hsmtls/config.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

static const char usage[] =
    "hsmtls dtls-serve --port N --cert CERT --key KEY [--bind ADDR] [--ca FILE] [--verify-client]\n"
    "       [--pin-source FILE] [--sni NAME:CERT:KEY]... [--mtu N] [--max-peers N]\n"
    "       [--handshake-timeout S] [--idle-timeout S] [--naccept N] [--no-cookie]\n"
    "  CERT and KEY are paths or pkcs11: URIs. --ca trusts those CAs for client certificates\n"
    "  without requiring one; --verify-client requires one. --bind defaults to 127.0.0.1.\n"
    "  --sni answers a client asking for NAME with that certificate and key (others get CERT).\n"
    "  --naccept N ends once N handshakes completed and those peers closed or went idle.";

struct peer {
    hsmtls_dtls *dtls;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned id;
    double started, last;
    int done;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static struct peer *find(struct peer *peers, int max, const struct sockaddr_storage *a, socklen_t len)
{
    for (int i = 0; i < max; i++)
        if (peers[i].dtls && peers[i].addr_len == len && memcmp(&peers[i].addr, a, len) == 0)
            return &peers[i];
    return NULL;
}

static void drop(struct peer *p, const char *why)
{
    if (why)
        fprintf(stderr, "hsmtls dtls-serve: peer %u %s: %s\n", p->id, hsmtls_dtls_peer(p->dtls), why);
    hsmtls_dtls_free(p->dtls);
    memset(p, 0, sizeof *p);
}

static unsigned long n_hvr, n_dropped, n_handshakes, n_failed, n_timedout, n_echoed;

static void handshake_step(struct peer *p, const void *dg, size_t len)
{
    int r = hsmtls_dtls_handshake(p->dtls, dg, len);
    if (r == HSMTLS_OK && !p->done) {
        p->done = 1;
        n_handshakes++;
        const char *sni = hsmtls_dtls_server_name(p->dtls);
        fprintf(stderr, "hsmtls dtls-serve: peer %u %s: %s%s%s\n", p->id, hsmtls_dtls_peer(p->dtls),
                hsmtls_dtls_summary(p->dtls), sni ? "; SNI " : "", sni ? sni : "");
    } else if (r != HSMTLS_OK && r != HSMTLS_WANT_READ) {
        n_failed++;
        char why[1100];
        snprintf(why, sizeof why, "handshake failed: %s", hsmtls_dtls_error_message(p->dtls));
        drop(p, why);
    }
}

static int setup_cookie(hsmtls_config *cfg, void *arg)
{
    return hsmtls_config_set_dtls_cookie_verification(cfg, *(const int *)arg) == HSMTLS_OK ? 0 : -1;
}

/* A first association checks a config (key, certificate, token login) now, not at the
 * first client. */
static int probe(hsmtls_config *cfg)
{
    hsmtls_dtls *d = hsmtls_dtls_new(cfg);
    if (!d) {
        fprintf(stderr, "hsmtls dtls-serve: %s\n", hsmtls_error_message());
        return -1;
    }
    hsmtls_dtls_free(d);
    return 0;
}

struct dtls_serve_options {
    int max_peers, cookie;
    unsigned mtu;
    double hs_timeout, idle_timeout;
};

static int own_option(void *arg, const char *opt, const char *value)
{
    struct dtls_serve_options *ds = arg;
    if (strcmp(opt, "--no-cookie") == 0) {
        ds->cookie = 0;
        return 1;
    }
    if (!value)
        return 0;
    long n = 0;
    int bad;
    if (strcmp(opt, "--mtu") == 0) {
        bad = cli_parse_count("dtls-serve", opt, value, 256, HSMTLS_DTLS_MAX_DATAGRAM, &n);
        ds->mtu = (unsigned)n;
    } else if (strcmp(opt, "--max-peers") == 0) {
        bad = cli_parse_count("dtls-serve", opt, value, 1, 100000, &n);
        ds->max_peers = (int)n;
    } else if (strcmp(opt, "--handshake-timeout") == 0)
        bad = cli_parse_seconds("dtls-serve", opt, value, 0, &ds->hs_timeout);
    else if (strcmp(opt, "--idle-timeout") == 0)
        bad = cli_parse_seconds("dtls-serve", opt, value, 0, &ds->idle_timeout);
    else
        return 0;
    return bad ? -1 : 2;
}

int cmd_dtls_serve(int argc, char **argv)
{
    struct cli_tls o = { .role = HSMTLS_SERVER, .verb = "dtls-serve", .bind = "127.0.0.1" };
    struct dtls_serve_options ds = { .max_peers = 64, .cookie = 1, .hs_timeout = 10, .idle_timeout = 120 };
    int parsed = cli_tls_parse(&o, argc, argv, usage, own_option, &ds);
    if (parsed != CLI_OK)
        return parsed == CLI_HELP_SHOWN ? CLI_OK : parsed;
    int max_peers = ds.max_peers, cookie = ds.cookie;
    unsigned mtu = ds.mtu;
    double hs_timeout = ds.hs_timeout, idle_timeout = ds.idle_timeout;
    const char *port = o.port;
    long naccept = o.naccept;
    struct cli_sni sni = { .n = 0 };
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_SERVER);
    if (!cfg || cli_tls_setup(&o, cfg, o.cert, o.key) != 0 || setup_cookie(cfg, &cookie) != 0) {
        cli_config_error("dtls-serve", cfg);
        hsmtls_config_free(cfg);
        return CLI_FAILED;
    }
    int rc = cli_sni_setup(&sni, &o, cfg, setup_cookie, &cookie);
    for (int i = 0; rc == CLI_OK && i < sni.n; i++)
        if (probe(sni.v[i].cfg) != 0)
            rc = CLI_FAILED;
    if (rc != CLI_OK || probe(cfg) != 0) {
        cli_sni_free(&sni);
        hsmtls_config_free(cfg);
        return rc != CLI_OK ? rc : CLI_FAILED;
    }
    cli_describe_key("dtls-serve", "", cfg);
    hsmtls_dtls_verifier *verifier = hsmtls_dtls_verifier_new();
    struct peer *peers = calloc((size_t)max_peers, sizeof *peers);
    unsigned char *dg = malloc(HSMTLS_DTLS_MAX_DATAGRAM), *plain = malloc(HSMTLS_DTLS_MAX_DATAGRAM);
    char shown[128] = "";
    int fd = verifier && peers && dg && plain ? cli_socket("dtls-serve", o.bind, port, SOCK_DGRAM, 1, shown, sizeof shown) : -1;
    if (fd < 0) {
        rc = CLI_FAILED;
        goto out;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on %s\n", shown);
    fflush(stdout);
    unsigned next_id = 1;
    long accepted = 0;

    while (!stopping) {
        /* the nearest retransmission, handshake deadline or idle end */
        double t = cli_now(), wait = 1.0;
        int live = 0;
        for (int i = 0; i < max_peers; i++) {
            struct peer *p = &peers[i];
            if (!p->dtls)
                continue;
            live++;
            long ms = hsmtls_dtls_timeout_ms(p->dtls);
            if (ms >= 0 && ms / 1000.0 < wait)
                wait = ms / 1000.0;
            double end = p->done ? p->last + idle_timeout : p->started + hs_timeout;
            if (end - t < wait)
                wait = end - t;
        }
        if (naccept && accepted >= naccept && live == 0)
            break;
        if (wait < 0)
            wait = 0;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)(wait * 1000) + 1);
        if (pr < 0 && errno != EINTR) {
            perror("hsmtls dtls-serve: poll");
            rc = CLI_FAILED;
            break;
        }
        t = cli_now();
        for (int i = 0; i < max_peers; i++) {
            struct peer *p = &peers[i];
            if (!p->dtls)
                continue;
            if (!p->done && t >= p->started + hs_timeout) {
                n_timedout++;
                drop(p, "handshake timed out: the peer went away");
            } else if (p->done && t >= p->last + idle_timeout) {
                if (hsmtls_dtls_state(p->dtls) == HSMTLS_DTLS_COMPLETE)
                    hsmtls_dtls_shutdown(p->dtls); /* its session stays resumable */
                drop(p, "idle: freed");
            } else if (hsmtls_dtls_timeout_ms(p->dtls) == 0 && hsmtls_dtls_handle_timeout(p->dtls) < 0) {
                n_timedout++;
                drop(p, hsmtls_dtls_error_message(p->dtls));
            }
        }
        if (pr <= 0 || !(pfd.revents & POLLIN))
            continue;
        for (int burst = 0; burst < 64; burst++) {
            struct sockaddr_storage from;
            socklen_t flen = sizeof from;
            ssize_t n = recvfrom(fd, dg, HSMTLS_DTLS_MAX_DATAGRAM, 0, (struct sockaddr *)&from, &flen);
            if (n < 0)
                break;
            struct peer *p = find(peers, max_peers, &from, flen);
            if (p) {
                p->last = cli_now();
                if (!p->done) {
                    handshake_step(p, dg, (size_t)n);
                    if (p->dtls && p->done)
                        accepted++;
                    continue;
                }
                int got = hsmtls_dtls_read(p->dtls, dg, (size_t)n, plain, HSMTLS_DTLS_MAX_DATAGRAM);
                while (got > 0) {
                    if (hsmtls_dtls_write(p->dtls, plain, (size_t)got) > 0)
                        n_echoed++;
                    got = hsmtls_dtls_read(p->dtls, NULL, 0, plain, HSMTLS_DTLS_MAX_DATAGRAM);
                }
                if (hsmtls_dtls_state(p->dtls) == HSMTLS_DTLS_CLOSED) {
                    hsmtls_dtls_shutdown(p->dtls);
                    drop(p, "closed");
                } else if (got < 0) {
                    char why[1100];
                    snprintf(why, sizeof why, "%s", hsmtls_dtls_error_message(p->dtls));
                    drop(p, why);
                }
                continue;
            }
            /* an unknown peer: nothing is kept until its cookie verifies */
            unsigned char hvr[300];
            size_t hvr_len = 0;
            int v = hsmtls_dtls_verifier_check(verifier, dg, (size_t)n, (struct sockaddr *)&from, flen, hvr, sizeof hvr,
                                               &hvr_len);
            if (cookie && v != 1) {
                if (hvr_len > 0 && sendto(fd, hvr, hvr_len, 0, (struct sockaddr *)&from, flen) >= 0)
                    n_hvr++;
                else
                    n_dropped++;
                continue;
            }
            if (!cookie && (n < 13 || dg[0] != 22)) {
                n_dropped++;
                continue;
            }
            for (int i = 0; i < max_peers && !p; i++)
                if (!peers[i].dtls)
                    p = &peers[i];
            if (!p) {
                n_dropped++;
                continue; /* full: the client retries */
            }
            p->dtls = hsmtls_dtls_new(cfg);
            if (!p->dtls || hsmtls_dtls_set_peer(p->dtls, (struct sockaddr *)&from, flen, NULL) != HSMTLS_OK ||
                hsmtls_dtls_set_fd(p->dtls, fd) != HSMTLS_OK ||
                (mtu && hsmtls_dtls_set_mtu_hint(p->dtls, mtu) != HSMTLS_OK)) {
                fprintf(stderr, "hsmtls dtls-serve: %s\n",
                        p->dtls ? hsmtls_dtls_error_message(p->dtls) : hsmtls_error_message());
                hsmtls_dtls_free(p->dtls);
                memset(p, 0, sizeof *p);
                n_dropped++;
                continue;
            }
            memcpy(&p->addr, &from, flen);
            p->addr_len = flen;
            p->id = next_id++;
            p->started = p->last = cli_now();
            handshake_step(p, dg, (size_t)n);
            if (p->dtls && p->done)
                accepted++;
        }
    }
    for (int i = 0; i < max_peers; i++)
        if (peers[i].dtls) {
            if (hsmtls_dtls_state(peers[i].dtls) == HSMTLS_DTLS_COMPLETE)
                hsmtls_dtls_shutdown(peers[i].dtls);
            drop(&peers[i], NULL);
        }
    fprintf(stderr,
            "hsmtls dtls-serve: %lu handshakes, %lu failed, %lu timed out, %lu hello-verify-requests, "
            "%lu datagrams dropped, %lu echoed\n",
            n_handshakes, n_failed, n_timedout, n_hvr, n_dropped, n_echoed);
    close(fd);
out:
    free(peers);
    free(dg);
    free(plain);
    hsmtls_dtls_verifier_free(verifier);
    hsmtls_config_free(cfg);
    cli_sni_free(&sni);
    return rc;
}
