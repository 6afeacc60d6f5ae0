/* hsmtls: the command line. Each verb lives in its own cmd_*.c. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verbs[] = {
    { "demo", cmd_demo, "TLS and DTLS with keys on tokens, end to end (a SoftHSM2 sandbox by default)" },
    { "tokens", cmd_tokens, "list PKCS#11 modules, slots and tokens" },
    { "objects", cmd_objects, "list the keys and certificates a pkcs11: URI matches" },
    { "keyfile", cmd_keyfile, "write a key file that names a token key by URI" },
    { "serve", cmd_serve, "a TLS echo server; its key in a file or on a token" },
    { "connect", cmd_connect, "a TLS client: stdin to the server, replies to stdout" },
    { "dtls-serve", cmd_dtls_serve, "a DTLS echo server: many peers on one UDP socket, cookies first" },
    { "dtls-connect", cmd_dtls_connect, "a DTLS client: each stdin line a datagram, replies to stdout" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: hsmtls VERB [options] [arguments]\n\nverbs:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(out, "  %-12s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n'hsmtls VERB --help' tells more. HSMTLS_PKCS11_MODULE names the PKCS#11 module;\n"
                 "HSMTLS_DEBUG=1 traces every PKCS#11 call.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hsmtls: unknown verb \"%s\"\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
