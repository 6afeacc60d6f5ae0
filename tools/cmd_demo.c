/* hsmtls demo: what hsmtls is for, in a few lines. A TLS server whose key is on one
 * token and a client that authenticates with the key on another (the smartcard)
 * exchange one request and its answer, then the same over DTLS; for each handshake it
 * shows the protocol and cipher, both certificates, where each key lives, and how many
 * signatures each token made, as counted by the provider's PKCS#11 core.
 *
 * Without arguments it runs on a SoftHSM2 sandbox it makes or reuses (demo_sandbox.c);
 * --cert/--key (and --client-cert/--client-key, --ca) run it on real hardware. */
#include "cli.h"
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmtls/config.h"
#include "hsmtls/token.h"

static const char usage[] =
    "hsmtls demo [--sandbox DIR]\n"
    "hsmtls demo --cert CERT --key KEY [--client-cert CERT --client-key KEY] [--ca FILE]\n"
    "            [--pin-source FILE] [--module PATH]\n"
    "hsmtls demo ... --fault PLAN\n"
    "  A TLS and a DTLS exchange between a server and a client in this process, each\n"
    "  signing with its key where it lives, with the signatures each token made.\n"
    "  Without --cert/--key: the SoftHSM2 sandbox in DIR (made or reused; default\n"
    "  ${XDG_CACHE_HOME:-~/.cache}/hsmtls/sandbox), the server key on its \"server\" token and\n"
    "  the client key on its \"client\" token; the options below replace any of these.\n"
    "  --cert/--key: the server's certificate and key (paths or pkcs11: URIs), on your token.\n"
    "  --client-cert/--client-key: the client's (without them the client does not\n"
    "  authenticate). --ca: the CA that verifies both certificates. --pin-source: a file\n"
    "  holding the PIN (else asked on the terminal, once). --module or HSMTLS_PKCS11_MODULE:\n"
    "  the PKCS#11 module (else p11-kit's registry). --fault PLAN: hsmtls-fault in front of\n"
    "  that module, misbehaving as PLAN says (C_Sign:delay=20ms; docs/fault.md).";

struct demo_options {
    const char *sandbox, *module, *pin_source, *ca, *fault;
    const char *verify_name;       /* the server certificate's name the client checks */
    struct demo_ref server_cert, server_key, client_cert, client_key;
};

/* A PIN (or a key file's passphrase) from the terminal, asked once: a token rejects a
 * wrong PIN and may lock after a few, so a retry is never asked for. */
static int ask_pin(const hsmtls_pin_request *req, char *buf, size_t size, void *arg)
{
    (void)arg;
    if (req->retry)
        return -1;
    if (!isatty(STDIN_FILENO))
        return -1; /* demo_explain_load_error says what to do */
    char prompt[1200];
    if (req->is_token)
        snprintf(prompt, sizeof prompt, "PIN for token \"%s\": ", req->token ? req->token : "?");
    else
        snprintf(prompt, sizeof prompt, "Passphrase for %s: ", req->ref);
    return cli_read_hidden(prompt, buf, size);
}

static int parse(int argc, char **argv, struct demo_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            puts(usage);
            return -2;
        } else if (strcmp(a, "--sandbox") == 0)
            slot = &o->sandbox;
        else if (strcmp(a, "--module") == 0)
            slot = &o->module;
        else if (strcmp(a, "--fault") == 0)
            slot = &o->fault;
        else if (strcmp(a, "--pin-source") == 0)
            slot = &o->pin_source;
        else if (strcmp(a, "--ca") == 0)
            slot = &o->ca;
        else if (strcmp(a, "--cert") == 0)
            slot = &o->server_cert.ref;
        else if (strcmp(a, "--key") == 0)
            slot = &o->server_key.ref;
        else if (strcmp(a, "--client-cert") == 0)
            slot = &o->client_cert.ref;
        else if (strcmp(a, "--client-key") == 0)
            slot = &o->client_key.ref;
        if (!slot) {
            fprintf(stderr, "hsmtls demo: unknown option or argument %s\nusage: %s\n", a, usage);
            return -1;
        }
        if (i + 1 >= argc || !*argv[i + 1]) {
            fprintf(stderr, "hsmtls demo: %s needs a value\nusage: %s\n", a, usage);
            return -1;
        }
        *slot = argv[++i];
    }
    if (!o->server_cert.ref != !o->server_key.ref) {
        fprintf(stderr, "hsmtls demo: --cert and --key go together (the server's certificate and key)\n");
        return -1;
    }
    if (!o->client_cert.ref != !o->client_key.ref) {
        fprintf(stderr, "hsmtls demo: --client-cert and --client-key go together (the client's certificate and "
                        "key)\n");
        return -1;
    }
    return 0;
}

/* --fault: hsmtls-fault in front of the module the demo would use, for the whole process
 * (the module variables are read at the first PKCS#11 call, which comes after this). */
static int use_fault(const char *plan)
{
    const char *real = getenv("HSMTLS_PKCS11_MODULE");
    if (!real || !*real) {
        fprintf(stderr, "hsmtls demo: --fault needs the module to put hsmtls-fault in front of: --module PATH or "
                        "HSMTLS_PKCS11_MODULE\n");
        return -1;
    }
    const char *fault = demo_fault_module();
    if (access(fault, R_OK) != 0) {
        fprintf(stderr, "hsmtls demo: --fault: the fault module %s is missing (build it, or install hsmtls)\n", fault);
        return -1;
    }
    if (strstr(real, "hsmtls-fault")) {
        fprintf(stderr, "hsmtls demo: --fault: the module %s is hsmtls-fault already: name the real one\n", real);
        return -1;
    }
    setenv("HSMTLS_FAULT_MODULE", real, 1);
    setenv("HSMTLS_FAULT", plan, 1);
    printf("fault plan: %s (hsmtls-fault in front of %s)\n", plan, real);
    setenv("HSMTLS_PKCS11_MODULE", fault, 1);
    return 0;
}

/* The sandbox's defaults for whatever the command line left out. */
static char *sandbox_path(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* Loads a certificate and key into cfg; explains a failure and returns -1. */
static int load_pair(hsmtls_config *cfg, const struct demo_ref *cert, const struct demo_ref *key,
                     const char *pin_source)
{
    if (hsmtls_config_set_cert(cfg, cert->ref) != HSMTLS_OK) {
        demo_explain_load_error(cert, hsmtls_config_error(cfg), pin_source);
        return -1;
    }
    if (hsmtls_config_set_key(cfg, key->ref) != HSMTLS_OK) {
        demo_explain_load_error(key, hsmtls_config_error(cfg), pin_source);
        return -1;
    }
    return 0;
}

struct counts {
    long token[2]; /* the server key's token, the client key's */
    long all;
};

static struct counts read_counts(const struct demo_options *o)
{
    struct counts c = { { 0, 0 }, hsmtls_token_signatures(NULL) };
    if (o->server_key.token[0])
        c.token[0] = hsmtls_token_signatures(o->server_key.token);
    if (o->client_key.ref && o->client_key.token[0])
        c.token[1] = hsmtls_token_signatures(o->client_key.token);
    return c;
}

static void print_key(const char *role, hsmtls_config *cfg, const struct demo_ref *key)
{
    const char *ref = hsmtls_config_key_ref(cfg);
    if (hsmtls_config_key_location(cfg) == HSMTLS_LOC_TOKEN)
        printf("  %-6s key   on token \"%s\": %s\n", role, key->token, ref ? ref : key->shown);
    else
        printf("  %-6s key   in a file: %s (signs in software)\n", role, ref ? ref : key->shown);
}

static void print_signatures(const struct demo_options *o, struct counts before, struct counts after)
{
    long all = after.all - before.all, listed = 0;
    int shown = 0;
    printf("  signatures   ");
    for (int i = 0; i < 2; i++) {
        const struct demo_ref *k = i == 0 ? &o->server_key : &o->client_key;
        if (!k->ref || !k->token[0] || (i == 1 && strcmp(k->token, o->server_key.token) == 0))
            continue; /* a file key, no client key, or the server's token again */
        long d = after.token[i] - before.token[i];
        printf("%stoken \"%s\" %ld", shown++ ? ", " : "", k->token, d);
        listed += d;
    }
    if (!shown)
        printf("%ld on any token (no key is on a token)", all);
    else if (all != listed)
        printf(", other tokens %ld", all - listed);
    printf("\n");
}

static void report(const char *proto, const struct demo_options *o, hsmtls_config *scfg, hsmtls_config *ccfg,
                   const struct demo_result *r, struct counts before, struct counts after)
{
    printf("\n%s: %s, %s", proto, r->version, r->cipher);
    if (r->hello_verify_requests)
        printf(", after a cookie exchange (%u HelloVerifyRequest)", r->hello_verify_requests);
    printf("\n  server cert  %s (%s)\n", r->server_subject,
           !r->server_verified ? (o->ca ? "NOT verified" : "not verified: no --ca")
           : o->verify_name   ? "verified by the client"
                              : "verified by the client, host name not checked");
    print_key("server", scfg, &o->server_key);
    if (o->client_key.ref) {
        printf("  client cert  %s (%s)\n", r->client_subject[0] ? r->client_subject : "none received",
               r->client_verified ? "verified by the server" : o->ca ? "NOT verified" : "not verified: no --ca");
        print_key("client", ccfg, &o->client_key);
    } else {
        printf("  client       does not authenticate (no --client-cert/--client-key)\n");
    }
    printf("  request      %s\n  answer       %s\n", r->request, r->answer);
    print_signatures(o, before, after);
}

/* Both configs from the options: the server asks for (and with a CA verifies) a client
 * certificate exactly when the client has one. */
static int make_configs(struct demo_options *o, hsmtls_config **server, hsmtls_config **client)
{
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER), *c = hsmtls_config_new(HSMTLS_CLIENT);
    *server = s;
    *client = c;
    if (!s || !c) {
        fprintf(stderr, "hsmtls demo: %s\n", hsmtls_error_message());
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        hsmtls_config *cfg = i ? c : s;
        if (o->pin_source && hsmtls_config_set_pin_source(cfg, o->pin_source) != HSMTLS_OK) {
            fprintf(stderr, "hsmtls demo: --pin-source %s: %s\n", o->pin_source, hsmtls_config_error(cfg));
            return -1;
        }
        if (!o->pin_source && hsmtls_config_set_pin_cb(cfg, ask_pin, NULL) != HSMTLS_OK) {
            fprintf(stderr, "hsmtls demo: the PIN prompt: %s\n", hsmtls_config_error(cfg));
            return -1;
        }
        if (o->ca && hsmtls_config_add_ca(cfg, o->ca) != HSMTLS_OK) {
            fprintf(stderr, "hsmtls demo: --ca %s: %s\n", o->ca, hsmtls_config_error(cfg));
            return -1;
        }
    }
    if (load_pair(s, &o->server_cert, &o->server_key, o->pin_source) < 0)
        return -1;
    if (o->client_key.ref && load_pair(c, &o->client_cert, &o->client_key, o->pin_source) < 0)
        return -1;
    enum hsmtls_verify_mode sv = !o->client_key.ref ? HSMTLS_VERIFY_NONE : o->ca ? HSMTLS_VERIFY_PEER
                                                                                 : HSMTLS_VERIFY_QUERY;
    if (hsmtls_config_set_verify_mode(s, sv) != HSMTLS_OK) {
        fprintf(stderr, "hsmtls demo: the server's verification: %s\n", hsmtls_config_error(s));
        return -1;
    }
    if (!o->ca && hsmtls_config_set_verify_mode(c, HSMTLS_VERIFY_QUERY) != HSMTLS_OK) {
        fprintf(stderr, "hsmtls demo: the client's verification: %s\n", hsmtls_config_error(c));
        return -1;
    }
    return 0;
}

int cmd_demo(int argc, char **argv)
{
    struct demo_options o = {
        .server_cert.what = "server certificate", .server_key.what = "server key",
        .client_cert.what = "client certificate", .client_key.what = "client key",
    };
    int rc = parse(argc, argv, &o);
    if (rc < 0)
        return rc == -2 ? CLI_OK : CLI_USAGE;
    int use_sandbox = o.sandbox || !o.server_key.ref;
    char *dir = NULL, *owned[4] = { NULL };
    hsmtls_config *server = NULL, *client = NULL;
    int status = CLI_FAILED;
    if (use_sandbox) {
        dir = o.sandbox ? strdup(o.sandbox) : demo_sandbox_default_dir();
        if (!dir || demo_sandbox_prepare(dir) < 0)
            goto out;
        /* What the options left out comes from the sandbox; the client is the smartcard. */
        if (!o.server_key.ref) {
            o.server_cert.ref = owned[0] = sandbox_path(dir, "certs/ec-p256.pem");
            o.server_key.ref = "pkcs11:token=server;object=ec-p256;type=private";
        }
        if (!o.client_key.ref) {
            o.client_cert.ref = owned[1] = sandbox_path(dir, "certs/client-p256.pem");
            o.client_key.ref = "pkcs11:token=client;object=client-p256;type=private";
        }
        if (!o.ca)
            o.ca = owned[2] = sandbox_path(dir, "ca.pem");
        if (!o.pin_source)
            o.pin_source = owned[3] = sandbox_path(dir, "pin.txt");
    }
    /* The command line's module wins for every lookup in the process: the token checks
     * below and the provider's key loads share one core, which reads the environment. */
    if (o.module)
        setenv("HSMTLS_PKCS11_MODULE", o.module, 1);
    if (o.fault && use_fault(o.fault) < 0)
        goto out;
    struct demo_ref *refs[] = { &o.server_cert, &o.server_key, &o.client_cert, &o.client_key };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        if (refs[i]->ref && demo_find_token(refs[i]) < 0)
            goto out;
    if (make_configs(&o, &server, &client) < 0)
        goto out;

    /* The sandbox's server certificate names localhost; a real one names its own host,
     * which this loopback demo cannot be, so there only the chain is checked. */
    o.verify_name = use_sandbox && o.server_cert.ref == owned[0] ? "localhost" : NULL;
    if (!o.verify_name && hsmtls_config_set_check_hostname(client, 0) != HSMTLS_OK) {
        fprintf(stderr, "hsmtls demo: turning the host name check off: %s\n", hsmtls_config_error(client));
        goto out;
    }
    struct demo_result r;
    struct counts before = read_counts(&o);
    int tls = demo_tls(server, client, o.verify_name, &r);
    struct counts after = read_counts(&o);
    if (tls == 0)
        report("TLS", &o, server, client, &r, before, after);
    else
        fprintf(stderr, "hsmtls demo: the TLS exchange failed: %s\n", r.error);
    before = after;
    int dtls = demo_dtls(server, client, o.verify_name, &r);
    after = read_counts(&o);
    if (dtls == 0)
        report("DTLS", &o, server, client, &r, before, after);
    else
        fprintf(stderr, "hsmtls demo: the DTLS exchange failed: %s\n", r.error);
    if (after.all < 0)
        fprintf(stderr, "hsmtls demo: signature counts: %s\n", hsmtls_error_message());
    status = tls == 0 && dtls == 0 ? CLI_OK : CLI_FAILED;
out:
    fflush(stdout);
    hsmtls_config_free(server);
    hsmtls_config_free(client);
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(owned[i]);
    free(dir);
    return status;
}
