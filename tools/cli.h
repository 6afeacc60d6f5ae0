/* Shared pieces of the hsmtls command line. */
#ifndef HSMTLS_CLI_H
#define HSMTLS_CLI_H

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
/* Prints "hsmtls: <what>: <core message>" and returns CLI_FAILED. */
int cli_fail(const char *what);
/* Bytes as lowercase hex, in a static buffer (truncated past 64 bytes). */
const char *cli_hex(const unsigned char *p, size_t len);

int cmd_tokens(int argc, char **argv);
int cmd_objects(int argc, char **argv);
int cmd_keyfile(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_dtls_serve(int argc, char **argv);
int cmd_dtls_connect(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
