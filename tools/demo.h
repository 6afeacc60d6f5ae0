/* hsmtls demo's parts: the SoftHSM2 sandbox it makes by default (demo_sandbox.c), the
 * tokens its keys name, found before any key is loaded (demo_tokens.c), and the TLS
 * and DTLS exchanges whose two ends both run in this process (demo_exchange.c). */
#ifndef HSMTLS_DEMO_H
#define HSMTLS_DEMO_H

#include <stddef.h>

#include "hsmtls/config.h"

/* ${XDG_CACHE_HOME:-$HOME/.cache}/hsmtls/sandbox, malloc'd; NULL with a message printed. */
char *demo_sandbox_default_dir(void);
/* Makes (or reuses) the sandbox in dir with the sandbox script, then takes the
 * environment the PKCS#11 module needs from its env.sh (SOFTHSM2_CONF and
 * HSMTLS_PKCS11_MODULE), so this must run before the first PKCS#11 call. Returns 0, or
 * -1 with a message printed. */
int demo_sandbox_prepare(const char *dir);

/* The hsmtls-fault module for --fault: this build tree's for a binary running from it,
 * else the installed one (LIBDIR/pkcs11/hsmtls-fault.so). */
const char *demo_fault_module(void);

/* A key or certificate the demo uses, and for a pkcs11: reference the token found for
 * it (its label: what the signature counts are read by). */
struct demo_ref {
    const char *what;        /* "server key", "client certificate" ... for messages */
    const char *ref;         /* a path or a pkcs11: URI */
    char token[33];          /* "" for a file */
    char shown[1024];        /* ref as it may be printed: a pin-value masked */
};
/* For a pkcs11: reference, checks that a token it names is present and records its
 * label; nothing is logged in to. When none is, prints which token was looked for,
 * the tokens that are present (or that none are) and what to do next, and returns -1.
 * A file reference returns 0 at once. */
int demo_find_token(struct demo_ref *r);
/* Explains a key or certificate that did not load (the config's message): a rejected
 * PIN in one line, an object missing from its token with where to look. */
void demo_explain_load_error(const struct demo_ref *r, const char *message, const char *pin_source);

/* What one exchange showed, for the report. */
struct demo_result {
    char version[32], cipher[96];
    char server_subject[512];   /* the server's certificate as the client received it */
    char client_subject[512];   /* the client's as the server received it; "" without one */
    int server_verified, client_verified;
    char request[128], answer[640];
    unsigned hello_verify_requests; /* DTLS: cookie exchanges before the handshake */
    char error[1200];           /* why it failed; "" when it did not */
};

/* One TLS connection over a socketpair: a server thread and the client here, one
 * request and its answer, close_notify both ways. verify_name: the name the client
 * checks the server's certificate against (NULL: no host name check). 0 or -1. */
int demo_tls(hsmtls_config *server, hsmtls_config *client, const char *verify_name,
             struct demo_result *r);
/* The same over DTLS on two loopback UDP sockets, the server verifying the client's
 * cookie (HelloVerifyRequest) before it keeps any state. */
int demo_dtls(hsmtls_config *server, hsmtls_config *client, const char *verify_name,
              struct demo_result *r);

#endif
