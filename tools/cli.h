/* Shared pieces of the hsmtls command line. */
#ifndef HSMTLS_CLI_H
#define HSMTLS_CLI_H

#include "hsmtls/conn.h"
#include "hsmtls/dtls.h"
#include "hsmtls/p11_object.h"

/* Exit codes: 0 done, 1 the operation failed, 2 the command line was wrong. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

struct cli_options {
    const char *module;       /* --module PATH */
    const char *pin_source;   /* --pin-source FILE */
    int login;                /* --login: ask for the PIN when none is written down */
};

/* Parses the options every verb takes; returns the index of the first other argument,
 * or -1 after printing a usage error. */
int cli_parse_common(int argc, char **argv, struct cli_options *opt, const char *usage);
/* A lookup from the options, with a PIN callback that prompts on the terminal. */
hsmtls_p11_lookup cli_lookup(const struct cli_options *opt);
/* Strict numbers for option opt: all of text a number from min to max, or seconds (a
 * decimal up to CLI_MAX_SECONDS; more than 0, or 0 too when zero_ok). 0, or -1 after
 * printing "hsmtls VERB: OPT "TEXT": expected ...". */
#define CLI_MAX_SECONDS 1000000
int cli_parse_count(const char *verb, const char *opt, const char *text, long min, long max, long *out);
int cli_parse_seconds(const char *verb, const char *opt, const char *text, int zero_ok, double *out);
/* One line into buf without its line end: from the terminal without echo after prompt
 * (on stderr), or from a pipe as it comes. Its length, or -1 at end of input. */
int cli_read_hidden(const char *prompt, char *buf, size_t size);
/* Text a message quotes (input, a URI, a path, a library's message) as
 * hsmtls_p11_mask_text() shows it: no PIN, control characters as \xNN. The string lives
 * until the eighth call after. */
const char *cli_q(const char *text);
/* Prints "hsmtls: <what>: <core message>" and returns CLI_FAILED. */
int cli_fail(const char *what);
/* Bytes as lowercase hex, in a static buffer (truncated past 64 bytes). */
const char *cli_hex(const unsigned char *p, size_t len);
/* Monotonic seconds. */
double cli_now(void);

/* ---- the TLS and DTLS verbs (serve, connect, dtls-serve, dtls-connect): cli_tls.c ---- */
#define CLI_MAX_SNI 16

/* The options they share. Servers: --port --bind --cert --key --ca --verify-client
 * --pin-source --naccept --sni NAME:CERT:KEY; clients: HOST:PORT --cert --key --ca
 * --servername --no-verify --pin-source --sess-in --sess-out. */
struct cli_tls {
    enum hsmtls_role role;
    const char *verb;              /* "serve", in messages */
    const char *target;            /* client: HOST:PORT */
    const char *port, *bind, *naccept_text;
    long naccept;                  /* --naccept N (1 or more); 0, when it was not given: no limit */
    const char *cert, *key, *ca, *pin_source, *servername, *sess_in, *sess_out;
    int verify_client, no_verify;
    const char *sni[CLI_MAX_SNI];
    int n_sni;
};
/* A verb's own option: returns 1 when it took opt alone, 2 when it took opt and value
 * (NULL when opt is the last argument), 0 when opt is not its, -1 after printing an
 * error. */
typedef int (*cli_own_option)(void *arg, const char *opt, const char *value);
/* cli_tls_parse's answer to --help (usage printed): the verb returns CLI_OK. */
#define CLI_HELP_SHOWN (-1)
/* Parses argv: the shared options into o, the others through own; then checks what the
 * shared options need (server: --port --cert --key; client: HOST:PORT; --cert with
 * --key; --verify-client with --ca). CLI_OK, CLI_HELP_SHOWN, or CLI_USAGE after
 * printing why. */
int cli_tls_parse(struct cli_tls *o, int argc, char **argv, const char *usage, cli_own_option own, void *arg);
/* Applies the shared options to cfg with this certificate and key (NULL: none): PIN
 * source, CAs, the server's client-certificate policy, the client's --no-verify.
 * 0, or -1 with hsmtls_config_error(cfg). */
int cli_tls_setup(const struct cli_tls *o, hsmtls_config *cfg, const char *cert, const char *key);
/* Prints the config's error (cfg NULL: the thread's), with a hint for a missing PIN. */
void cli_config_error(const char *verb, const hsmtls_config *cfg);
/* "hsmtls VERB: WHATcertificate SUBJECT, private key on a token: REF". */
void cli_describe_key(const char *verb, const char *what, const hsmtls_config *cfg);
/* Splits "host:port" or "[v6]:port" in place; 0 or -1. */
int cli_split_target(char *target, char **host, char **port);
/* A socket on the first of host's addresses (NULL: all) that works: connected, or
 * (bind_it) bound, non-blocking, and listening when type is SOCK_STREAM; shown (may be
 * NULL) gets "ADDR:PORT". -1 after printing why. */
int cli_socket(const char *verb, const char *host, const char *port, int type, int bind_it, char *shown,
               size_t shown_size);
/* A session file (DER, as openssl's -sess_out) set on conn, or for DTLS on dtls (the
 * other NULL), to resume; a session written to one. 0, or -1 after printing why (the
 * session written stays the caller's). */
int cli_session_resume(const char *verb, const char *file, hsmtls_conn *conn, hsmtls_dtls *dtls);
int cli_session_write(const char *verb, hsmtls_session *s, const char *file);

/* The --sni configs: each gets the shared options (and extra's, when given) with its
 * own pair, and main's SNI callback picks one by name (TLS and DTLS alike). Returns
 * CLI_OK, CLI_USAGE or CLI_FAILED after printing; cli_sni_free in every case. */
struct cli_sni {
    struct {
        char *name;
        hsmtls_config *cfg;
    } v[CLI_MAX_SNI];
    int n;
};
int cli_sni_setup(struct cli_sni *t, const struct cli_tls *o, hsmtls_config *main_cfg,
                  int (*extra)(hsmtls_config *cfg, void *arg), void *arg);
void cli_sni_free(struct cli_sni *t);

int cmd_tokens(int argc, char **argv);
int cmd_objects(int argc, char **argv);
int cmd_keyfile(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_dtls_serve(int argc, char **argv);
int cmd_dtls_connect(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
