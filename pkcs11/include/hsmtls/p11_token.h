/* Tokens and slots, login and PINs. A token is found once and kept for the process;
 * it owns a thread-safe pool of sessions and its login state, so one login serves
 * every thread and every later lookup. */
#ifndef HSMTLS_P11_TOKEN_H
#define HSMTLS_P11_TOKEN_H

#include <stddef.h>
#include <p11-kit/pkcs11.h>
#include "hsmtls/p11_module.h"
#include "hsmtls/p11_uri.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_p11_token hsmtls_p11_token;

/* What a PIN callback is told. The PIN itself is never part of a message. */
typedef struct hsmtls_p11_pin_request {
    const char *uri;          /* the URI being opened, pin-value masked; may be NULL */
    const char *token_label;
    int context_specific;     /* a CKA_ALWAYS_AUTHENTICATE key wants its own PIN entry */
    int retry;                /* an earlier PIN for this token was rejected */
} hsmtls_p11_pin_request;

/* Writes a NUL-terminated PIN of at most `size`-1 bytes into `pin`; returns its length,
 * or -1 to give up. */
typedef int (*hsmtls_p11_pin_cb)(const hsmtls_p11_pin_request *req, char *pin, size_t size,
                                 void *arg);

enum hsmtls_p11_login_mode {
    HSMTLS_P11_LOGIN_AUTO = 0,  /* log in when private objects are sought and a PIN is at hand */
    HSMTLS_P11_LOGIN_ALWAYS,    /* log in before any search; no PIN is an error */
    HSMTLS_P11_LOGIN_NEVER,     /* public objects only */
};

/* How a program looks things up: its configured module and PIN sources. All optional;
 * a zeroed struct (or NULL) means: modules from the environment/registry, PIN only
 * from the URI. */
typedef struct hsmtls_p11_lookup {
    const char *module_path;
    const char *pin;            /* a configured PIN, after the URI's */
    const char *pin_source;     /* a configured pin-source file, after the URI's */
    hsmtls_p11_pin_cb pin_cb;   /* asked last */
    void *pin_cb_arg;
    enum hsmtls_p11_login_mode login;
} hsmtls_p11_lookup;

/* Every present token that matches `uri` (NULL: all) in the modules the URI resolves
 * to. `*out` is malloc'd (free() it); the tokens are the core's. 0 tokens is not an
 * error here. */
int hsmtls_p11_tokens_list(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                           hsmtls_p11_token ***out, size_t *n);

hsmtls_p11_module *hsmtls_p11_token_module(const hsmtls_p11_token *t);
CK_SLOT_ID hsmtls_p11_token_slot(const hsmtls_p11_token *t);
const CK_TOKEN_INFO *hsmtls_p11_token_info(const hsmtls_p11_token *t);
const char *hsmtls_p11_token_label(const hsmtls_p11_token *t);

int hsmtls_p11_token_logged_in(hsmtls_p11_token *t);

/* Signatures the token made in this process (through any front) since it started:
 * successful C_Sign calls that returned a signature (length queries and failures do not
 * count). Counted per token, so two tokens with one label stay apart. */
unsigned long hsmtls_p11_token_signatures(const hsmtls_p11_token *t);
/* Calls fn for every token the process's core has seen in any loaded module, present
 * or not, without asking the modules anything. fn runs under the core's locks: it must
 * not call back into the core. */
void hsmtls_p11_tokens_each(void (*fn)(const hsmtls_p11_token *t, void *arg), void *arg);


/* Sessions the core holds: idle in the pool now, and open in all (the pool's and the
 * key cache's). */
size_t hsmtls_p11_token_idle_sessions(hsmtls_p11_token *t);
size_t hsmtls_p11_token_open_sessions(hsmtls_p11_token *t);
/* 1 while the key cache (hsmtls/p11_object.h) keeps a session open on the token for the
 * copies of its keys: one of the open sessions, never idle. */
int hsmtls_p11_token_holds_copies(hsmtls_p11_token *t);
/* C_CloseAllSessions behind the pool's back, as a token reset or another application
 * would: for tests of the pool's recovery. */
int hsmtls_p11_token_close_all_sessions(hsmtls_p11_token *t);

#ifdef __cplusplus
}
#endif
#endif
