/* What the TLS and DTLS verbs (serve, connect, dtls-serve, dtls-connect) share: their
 * options, config building, session files, the --sni table and sockets. */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hsmtls/dtls.h"

static int cli_tls_option(struct cli_tls *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    int server = o->role == HSMTLS_SERVER;
    if (server && strcmp(a, "--verify-client") == 0) {
        o->verify_client = 1;
        return 1;
    }
    if (!server && strcmp(a, "--no-verify") == 0) {
        o->no_verify = 1;
        return 1;
    }
    if (!server && a[0] != '-' && !o->target) {
        o->target = argv[*i];
        return 1;
    }
    const char **slot = NULL;
    if (strcmp(a, "--cert") == 0)
        slot = &o->cert;
    else if (strcmp(a, "--key") == 0)
        slot = &o->key;
    else if (strcmp(a, "--ca") == 0)
        slot = &o->ca;
    else if (strcmp(a, "--pin-source") == 0)
        slot = &o->pin_source;
    else if (server && strcmp(a, "--port") == 0)
        slot = &o->port;
    else if (server && strcmp(a, "--bind") == 0)
        slot = &o->bind;
    else if (server && strcmp(a, "--naccept") == 0)
        slot = &o->naccept_text;
    else if (server && strcmp(a, "--sni") == 0) {
        if (o->n_sni == CLI_MAX_SNI) {
            fprintf(stderr, "hsmtls %s: at most %d --sni\n", o->verb, CLI_MAX_SNI);
            return -1;
        }
        slot = &o->sni[o->n_sni];
    } else if (!server && strcmp(a, "--servername") == 0)
        slot = &o->servername;
    else if (!server && strcmp(a, "--sess-in") == 0)
        slot = &o->sess_in;
    else if (!server && strcmp(a, "--sess-out") == 0)
        slot = &o->sess_out;
    if (!slot)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "hsmtls %s: %s needs a value\n", o->verb, cli_q(a));
        return -1;
    }
    *slot = argv[++*i];
    if (slot == &o->sni[o->n_sni])
        o->n_sni++;
    if (slot == &o->naccept_text && cli_parse_count(o->verb, a, *slot, 1, LONG_MAX, &o->naccept) != 0)
        return -1;
    return 1;
}

static int cli_tls_check(const struct cli_tls *o, const char *usage);

int cli_tls_parse(struct cli_tls *o, int argc, char **argv, const char *usage, cli_own_option own, void *arg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: %s\n", usage);
            return CLI_HELP_SHOWN;
        }
        int taken = cli_tls_option(o, argc, argv, &i);
        if (taken < 0)
            return CLI_USAGE;
        if (!taken && own)
            taken = own(arg, a, value);
        if (taken < 0)
            return CLI_USAGE;
        if (!taken) {
            fprintf(stderr, "hsmtls %s: %s: unknown option or missing value\nusage: %s\n", o->verb, cli_q(a), usage);
            return CLI_USAGE;
        }
        i += taken - 1;
    }
    return cli_tls_check(o, usage);
}

static int cli_tls_check(const struct cli_tls *o, const char *usage)
{
    if (o->role == HSMTLS_SERVER && (!o->port || !o->cert || !o->key)) {
        fprintf(stderr, "hsmtls %s: --port, --cert and --key are needed\nusage: %s\n", o->verb, usage);
        return CLI_USAGE;
    }
    if (o->role == HSMTLS_SERVER && o->verify_client && !o->ca) {
        fprintf(stderr, "hsmtls %s: --verify-client needs --ca FILE (the CAs client certificates must chain to)\n",
                o->verb);
        return CLI_USAGE;
    }
    if (o->role == HSMTLS_CLIENT && !o->target) {
        fprintf(stderr, "hsmtls %s: HOST:PORT is needed\nusage: %s\n", o->verb, usage);
        return CLI_USAGE;
    }
    if (!o->cert != !o->key) {
        fprintf(stderr, "hsmtls %s: --cert and --key go together\nusage: %s\n", o->verb, usage);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_tls_setup(const struct cli_tls *o, hsmtls_config *cfg, const char *cert, const char *key)
{
    if (o->pin_source && hsmtls_config_set_pin_source(cfg, o->pin_source) != HSMTLS_OK)
        return -1;
    if (cert && hsmtls_config_set_cert_key(cfg, cert, key) != HSMTLS_OK)
        return -1;
    if (o->ca && hsmtls_config_add_ca(cfg, o->ca) != HSMTLS_OK)
        return -1;
    if (o->role == HSMTLS_SERVER) {
        /* --ca alone verifies a client certificate when one is sent */
        if (hsmtls_config_set_verify_mode(cfg, o->ca ? HSMTLS_VERIFY_PEER : HSMTLS_VERIFY_NONE) != HSMTLS_OK ||
            hsmtls_config_set_peer_cert_required(cfg, o->verify_client) != HSMTLS_OK)
            return -1;
    } else if (o->no_verify && hsmtls_config_set_verify_mode(cfg, HSMTLS_VERIFY_QUERY) != HSMTLS_OK) {
        return -1;
    }
    return 0;
}

void cli_config_error(const char *verb, const hsmtls_config *cfg)
{
    const char *msg = cfg ? hsmtls_config_error(cfg) : hsmtls_error_message();
    fprintf(stderr, "hsmtls %s: %s\n", verb, cli_q(msg));
    if (strstr(msg, "no PIN/passphrase callback"))
        fprintf(stderr, "hsmtls %s: give it with --pin-source FILE (or pin-value= in a pkcs11: URI)\n", verb);
}

void cli_describe_key(const char *verb, const char *what, const hsmtls_config *cfg)
{
    fprintf(stderr, "hsmtls %s: %scertificate %s, private key %s: %s\n", verb, cli_q(what),
            cli_q(hsmtls_config_cert_subject(cfg)),
            hsmtls_config_key_location(cfg) == HSMTLS_LOC_TOKEN ? "on a token" : "in a file",
            cli_q(hsmtls_config_key_ref(cfg)));
}

int cli_split_target(char *target, char **host, char **port)
{
    char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1])
        return -1;
    *colon = '\0';
    *port = colon + 1;
    *host = target;
    size_t n = strlen(target);
    if (target[0] == '[') {
        if (n < 3 || target[n - 1] != ']')
            return -1;
        target[n - 1] = '\0';
        *host = target + 1;
    }
    return 0;
}

/* ---- sessions kept in files (--sess-in / --sess-out), DER as openssl's -sess_out ---- */

int cli_session_resume(const char *verb, const char *file, hsmtls_conn *conn, hsmtls_dtls *dtls)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "hsmtls %s: %s: %s\n", verb, cli_q(file), strerror(errno));
        return -1;
    }
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        fprintf(stderr, "hsmtls %s: %s: %s\n", verb, cli_q(file), strerror(err));
        return -1;
    }
    hsmtls_session *s = hsmtls_session_load(buf, n);
    if (!s) {
        fprintf(stderr, "hsmtls %s: %s: %s\n", verb, cli_q(file), cli_q(hsmtls_error_message()));
        return -1;
    }
    int rc = dtls ? hsmtls_dtls_set_session(dtls, s) : hsmtls_conn_set_session(conn, s);
    if (rc != HSMTLS_OK)
        fprintf(stderr, "hsmtls %s: %s: %s\n", verb, cli_q(file),
                cli_q(dtls ? hsmtls_dtls_error_message(dtls) : hsmtls_conn_error_message(conn)));
    hsmtls_session_free(s);
    return rc == HSMTLS_OK ? 0 : -1;
}

int cli_session_write(const char *verb, hsmtls_session *s, const char *file)
{
    if (!s) {
        fprintf(stderr, "hsmtls %s: no session to keep in %s (the server gave none)\n", verb, cli_q(file));
        return -1;
    }
    int n = hsmtls_session_save(s, NULL, 0);
    unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (!buf || hsmtls_session_save(s, buf, (size_t)n) != n) {
        fprintf(stderr, "hsmtls %s: cannot keep the session in %s: %s\n", verb, cli_q(file),
                n > 0 && !buf ? "out of memory" : cli_q(hsmtls_error_message()));
        free(buf);
        return -1;
    }
    /* errno is saved at the step that failed: fclose and free may change it */
    int err = 0;
    FILE *f = fopen(file, "wb");
    if (!f)
        err = errno;
    else if (fwrite(buf, 1, (size_t)n, f) != (size_t)n)
        err = errno ? errno : EIO;
    if (f && fclose(f) != 0 && !err)
        err = errno;
    free(buf);
    if (err) {
        fprintf(stderr, "hsmtls %s: cannot keep the session in %s: %s\n", verb, cli_q(file), strerror(err));
        return -1;
    }
    fprintf(stderr, "hsmtls %s: session kept in %s (%s, ticket lifetime %lu s)\n", verb, cli_q(file),
            hsmtls_session_has_ticket(s) ? "with a ticket" : "no ticket", hsmtls_session_ticket_lifetime_hint(s));
    return 0;
}

/* ---- --sni NAME:CERT:KEY: a config of its own per name, picked by the config's SNI
 * callback (for TLS and DTLS alike) ---- */

/* CERT and KEY may be pkcs11: or file: URIs, whose scheme's colon does not separate.
 * Splits arg in place. */
static int split_sni(char *arg, char **name, char **cert, char **key)
{
    char *c = strchr(arg, ':');
    if (!c || c == arg)
        return -1;
    *c++ = '\0';
    *name = arg;
    *cert = c;
    if (strncmp(c, "pkcs11:", 7) == 0)
        c += 7;
    else if (strncmp(c, "file:", 5) == 0)
        c += 5;
    c = strchr(c, ':');
    if (!c || c == *cert || !c[1])
        return -1;
    *c++ = '\0';
    *key = c;
    return 0;
}

/* The name a client asked for picks its certificate and key; other names (or none)
 * get the default ones. */
static int pick_by_name(hsmtls_conn *conn, const char *name, hsmtls_config **use, void *arg)
{
    (void)conn;
    const struct cli_sni *t = arg;
    for (int i = 0; name && i < t->n; i++)
        if (strcasecmp(name, t->v[i].name) == 0) {
            *use = t->v[i].cfg;
            return 0;
        }
    return 0;
}

int cli_sni_setup(struct cli_sni *t, const struct cli_tls *o, hsmtls_config *main_cfg,
                  int (*extra)(hsmtls_config *cfg, void *arg), void *arg)
{
    for (int i = 0; i < o->n_sni; i++) {
        char *copy = strdup(o->sni[i]), *name, *cert, *key;
        if (!copy || split_sni(copy, &name, &cert, &key) != 0) {
            fprintf(stderr, "hsmtls %s: --sni %s: expected NAME:CERT:KEY\n", o->verb, cli_q(o->sni[i]));
            free(copy);
            return CLI_USAGE;
        }
        hsmtls_config *sc = hsmtls_config_new(HSMTLS_SERVER);
        t->v[t->n].name = copy; /* name is at its start */
        t->v[t->n].cfg = sc;
        t->n++;
        if (!sc || cli_tls_setup(o, sc, cert, key) != 0 || (extra && extra(sc, arg) != 0)) {
            cli_config_error(o->verb, sc);
            return CLI_FAILED;
        }
        char what[128];
        snprintf(what, sizeof what, "SNI %.100s: ", name);
        cli_describe_key(o->verb, what, sc);
    }
    if (t->n && hsmtls_config_set_sni_cb(main_cfg, pick_by_name, t) != HSMTLS_OK) {
        cli_config_error(o->verb, main_cfg);
        return CLI_FAILED;
    }
    return CLI_OK;
}

void cli_sni_free(struct cli_sni *t)
{
    for (int j = 0; j < t->n; j++) {
        free(t->v[j].name);
        hsmtls_config_free(t->v[j].cfg);
    }
    t->n = 0;
}

int cli_socket(const char *verb, const char *host, const char *port, int type, int bind_it, char *shown,
               size_t shown_size)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = type, .ai_flags = bind_it ? AI_PASSIVE : 0 };
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "hsmtls %s: %s port %s: %s\n", verb, host ? cli_q(host) : "*", cli_q(port), gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        /* a server's socket never blocks: one poll() loop serves every peer */
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | (bind_it ? SOCK_NONBLOCK : 0), 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        if (bind_it && type == SOCK_STREAM)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int ok = bind_it ? bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                               (type != SOCK_STREAM || listen(fd, 128) == 0)
                         : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
        if (!ok) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        if (shown && shown_size) {
            char h[INET6_ADDRSTRLEN] = "?";
            const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                                     : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, a, h, sizeof h);
            snprintf(shown, shown_size, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, port);
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "hsmtls %s: cannot %s %s port %s: %s\n", verb,
                !bind_it ? "connect to" : type == SOCK_STREAM ? "listen on" : "bind",
                host ? cli_q(host) : "all addresses", cli_q(port), strerror(err));
    return fd;
}
