/* libhsmtls internals shared by its .c files. */
#ifndef HSMTLS_LIB_INTERNAL_H
#define HSMTLS_LIB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hsmtls/cert.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"
#include "hsmtls/error.h"
#include "hsmtls/key.h"

/* Internal functions whose result says whether they worked: ignoring it is a bug. */
#define HSMTLS_MUST_CHECK __attribute__((warn_unused_result))

/* ---- errors (error.c) ---- */
/* A per-object error record: the status of the last failure and its message, on the
 * heap and sized to fit. Zeroed is empty. The buffer only grows, so a message the
 * application holds stays a valid string until a longer one replaces it. */
struct hsmtls_err {
    int code;                       /* HSMTLS_* status of the last failure; 0: none */
    char *msg;                      /* NULL: none */
    size_t cap;
};
/* Each formats "what failed" into e (which may be NULL) and into the thread's last
 * message, and returns the status it recorded. _set: HSMTLS_ERROR, OpenSSL's queue
 * cleared. _ssl: HSMTLS_ERROR with OpenSSL's queued reasons appended (": reason;
 * reason"), draining the queue. _status: a status of the caller's (WANT_VERIFY,
 * CLOSED). _append: more text after e's message, the status kept. */
int hsmtls__err_ssl(struct hsmtls_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hsmtls__err_status(struct hsmtls_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define hsmtls__err_set(e, ...) hsmtls__err_status((e), HSMTLS_ERROR, __VA_ARGS__)
int hsmtls__err_append(struct hsmtls_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message ("" when none); clearing keeps the buffer; freeing empties the record. */
const char *hsmtls__err_message(const struct hsmtls_err *e);
void hsmtls__err_clear(struct hsmtls_err *e);
void hsmtls__err_free(struct hsmtls_err *e);
/* OpenSSL's queued reasons as ": reason; reason" ("" when none), draining the queue;
 * malloc'd, NULL when out of memory. */
char *hsmtls__ssl_reasons(void) HSMTLS_MUST_CHECK;

/* Long input quoted in a message is shortened to its first HSMTLS_QUOTE_MAX bytes,
 * "..." and its length, so the reason after it stays in view:
 *     hsmtls__err_set(e, "key %s: %s", hsmtls__short(ref).s, why)
 * (the array lives until the end of the full expression, C11 6.2.4). */
#define HSMTLS_QUOTE_MAX 200
struct hsmtls_short { char s[HSMTLS_QUOTE_MAX + 32]; };
struct hsmtls_short hsmtls__short(const char *text);

/* The one mapping from SSL_get_error()'s value to a status: queued is the first error
 * in OpenSSL's queue (ERR_peek_error), sys_errno errno after the call. ZERO_RETURN maps
 * to HSMTLS_ERROR: a read that expects it checks before. */
int hsmtls__status_of(int ssl_error, unsigned long queued, int sys_errno) HSMTLS_MUST_CHECK;

/* ---- library context and provider (libctx.c) ---- */
/* The library's own OSSL_LIB_CTX with the default provider; NULL on failure. */
OSSL_LIB_CTX *hsmtls__libctx(struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* Loads the hsmtls provider into it (once per process); path may be NULL. */
int hsmtls__load_provider(const char *path, struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* Hands the application's token settings (hsmtls/token.h) to a loaded provider: 0, or
 * -1 when there is no library context. */
int hsmtls__token_apply_settings(void);
/* The path the provider would be (or was) loaded from. */
const char *hsmtls__provider_default_path(void);

/* ---- loading keys and certificates (loader.c) ---- */
struct hsmtls_pin {
    hsmtls_pin_cb cb;
    void *arg;
    const char *source;             /* pin-source file, used when cb is NULL */
};
/* A reference is a token reference when it is a pkcs11: URI. */
int hsmtls__is_token_ref(const char *ref);
/* A copy of ref without any pin-value / pin-source secrets in its query. */
char *hsmtls__redact(const char *ref);
/* Every certificate the reference (or memory) holds, in order; NULL + err on failure. */
STACK_OF(X509) *hsmtls__load_certs(const char *ref, const void *mem, size_t len,
                                   const struct hsmtls_pin *pin, const char *provider_path,
                                   struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* The first private key the reference (or memory) holds. */
EVP_PKEY *hsmtls__load_key(const char *ref, const void *mem, size_t len,
                           const struct hsmtls_pin *pin, const char *provider_path, struct hsmtls_err *err)
    HSMTLS_MUST_CHECK;

/* ---- certificates (cert.c) ---- */
/* A new hsmtls_cert holding its own reference to x; NULL when out of memory. */
hsmtls_cert *hsmtls__cert_wrap(X509 *x) HSMTLS_MUST_CHECK;
X509 *hsmtls__cert_x509(const hsmtls_cert *cert);
/* ---- keys (key.c) ---- */
EVP_PKEY *hsmtls__key_pkey(const hsmtls_key *key);

/* ---- the config ----
 * Its values are grouped by concern. Each group's file holds the group's setters and
 * getters and its life cycle (struct hsmtls_cfg_group below), listed once in
 * config.c's table: a new setting touches one struct here and one file. */
struct backend_opt { char *name, *value; };

/* config_protocol.c: versions, cipher preference, renegotiation */
struct hsmtls_cfg_protocol {
    int min_version, max_version, allow_legacy;
    int server_preference;
    int renegotiation;              /* TLS 1.2 renegotiation allowed (default 0) */
};

/* config_creds.c: our certificate chain and key, and how keys are unlocked and found */
struct hsmtls_cfg_creds {
    STACK_OF(X509) *chain;          /* leaf first */
    EVP_PKEY *key;
    enum hsmtls_location cert_loc, key_loc;
    char *cert_ref, *key_ref, *cert_subject;
    struct hsmtls_pin pin;
    char *pin_source;               /* owns pin.source */
    char *provider_path;
};

/* config_trust.c: what verifies the peer (CAs, CRLs) and the CA names a server sends */
struct hsmtls_cfg_trust {
    STACK_OF(X509) *ca;
    char **ca_dirs;
    int n_ca_dirs;
    int ca_default;                 /* -1: not said (clients use it when no CA is set) */
    STACK_OF(X509_CRL) *crls;       /* for the CRL-check verify flags */
    STACK_OF(X509_NAME) *client_ca; /* server: CA names sent to clients; NULL: the trusted CAs' */
    char **client_ca_names;
    int n_client_ca_names;
};

/* config_verify.c: how the peer is verified */
struct hsmtls_cfg_verify {
    enum hsmtls_verify_mode mode;
    int depth;                      /* -1: OpenSSL's default */
    int peer_cert_required;
    int check_hostname;
    int cn_fallback;                /* host names may match the subject's CN (default 0) */
    int interrupt;                  /* pause the handshake on verification errors */
    unsigned flags;                 /* HSMTLS_VFLAG_* */
    int pha;                        /* post-handshake client auth (TLS 1.3) */
};

/* config_lists.c: cipher lists, groups and OpenSSL SSL_CONF options */
struct hsmtls_cfg_lists {
    char *ciphers, *ciphersuites, *groups;
    struct backend_opt *opts;
    int n_opts;
};

/* config_dh.c: TLS 1.2 DHE parameters of a server */
struct hsmtls_cfg_dh {
    char *group;                    /* an RFC 7919 group, NULL: ffdhe2048 */
    EVP_PKEY *params;               /* custom parameters instead */
};

/* config_session.c: resumption */
struct hsmtls_cfg_session {
    int cache_mode;                 /* HSMTLS_SESS_CACHE_* */
    long cache_size;                /* -1: OpenSSL's default */
    int tickets;
    long timeout;                   /* 0: OpenSSL's default */
};

/* config_callbacks.c: the application's callbacks (connections copy them when made) */
struct hsmtls_cfg_callbacks {
    hsmtls_keylog_cb keylog;
    void *keylog_arg;
    hsmtls_sni_cb sni;
    void *sni_arg;
    hsmtls_psk_client_cb psk_client;
    hsmtls_psk_server_cb psk_server;
    void *psk_arg;
    char *psk_hint;                 /* owned by the config; NULL in a connection's copy */
};

/* config_ext.c: hello extensions: ALPN and OCSP stapling */
struct hsmtls_cfg_ext {
    unsigned char *alpn_wire;
    size_t alpn_wire_len;
    char *alpn;
    unsigned char *ocsp;            /* server: the response to staple */
    size_t ocsp_len;
    int ocsp_request;               /* client: ask for one */
};

/* config_dtls.c: DTLS associations */
struct hsmtls_cfg_dtls {
    int cookie_off;                 /* servers: 1 when cookie verification is off */
    hsmtls_clock_cb clock;          /* NULL: the system clock */
    void *clock_arg;
};

struct hsmtls_config {
    atomic_int refs;
    pthread_mutex_t lock;           /* guards built against concurrent conn_new */
    enum hsmtls_role role;
    struct hsmtls_err err;
    SSL_CTX *built;                 /* made from the values at the first conn_new,
                                       dropped by every setter */
    struct hsmtls_cfg_protocol proto;
    struct hsmtls_cfg_creds creds;
    struct hsmtls_cfg_trust trust;
    struct hsmtls_cfg_verify verify;
    struct hsmtls_cfg_lists lists;
    struct hsmtls_cfg_dh dh;
    struct hsmtls_cfg_session sess;
    struct hsmtls_cfg_callbacks cb;
    struct hsmtls_cfg_ext ext;
    struct hsmtls_cfg_dtls dtls;
};

/* One group's life cycle, written once in the group's file.
 *   init   the defaults, on a zeroed group of a config whose role is set
 *   copy   into a config fresh from init; -1 when out of memory (dst is freed after)
 *   free   what the group owns (also after a partial init or copy)
 *   equal  1 when both configs' values of the group are the same
 *   apply  the values into an SSL_CTX being built, in the table's order (lists last:
 *          backend options have the last word); NULL when the group has none */
struct hsmtls_cfg_group {
    const char *name;
    int (*init)(hsmtls_config *cfg);
    int (*copy)(hsmtls_config *dst, const hsmtls_config *src);
    void (*free)(hsmtls_config *cfg);
    int (*equal)(const hsmtls_config *a, const hsmtls_config *b);
    int (*apply)(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e);
};
extern const struct hsmtls_cfg_group hsmtls__cfg_protocol, hsmtls__cfg_creds, hsmtls__cfg_trust,
    hsmtls__cfg_verify, hsmtls__cfg_dh, hsmtls__cfg_session, hsmtls__cfg_callbacks, hsmtls__cfg_ext,
    hsmtls__cfg_lists, hsmtls__cfg_dtls;
/* Every group, in the order they are applied (config.c). */
extern const struct hsmtls_cfg_group *const hsmtls__cfg_groups[];
extern const int hsmtls__cfg_ngroups;

/* Helpers for the groups' copy and equal. */
int hsmtls__str_eq(const char *a, const char *b);
int hsmtls__dup_str(char **dst, const char *src) HSMTLS_MUST_CHECK;       /* -1: out of memory */
int hsmtls__dup_strv(char ***dst, int *n, char *const *src, int nsrc) HSMTLS_MUST_CHECK;
void hsmtls__free_strv(char **v, int n);
int hsmtls__push_str(char ***v, int *n, char *s) HSMTLS_MUST_CHECK;      /* takes s; -1: s freed */

/* config_build.c: the SSL_CTX for a new connection (a new reference), shared by the
 * config's connections until a setter changes the config; NULL + err on failure. */
SSL_CTX *hsmtls__config_ctx(hsmtls_config *cfg, struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* A context of its own built from the values (not the shared one), for DTLS (dtls.c). */
SSL_CTX *hsmtls__config_build_new(hsmtls_config *cfg, struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* Drops the built SSL_CTX after a change (live connections keep their reference). */
void hsmtls__config_changed(hsmtls_config *cfg);
int hsmtls__config_effective_verify(const hsmtls_config *cfg);
/* The config's DTLS context (a new reference, dtls_ctx.c), where SNI switches a DTLS SSL. */
SSL_CTX *hsmtls__dtls_ctx(hsmtls_config *cfg, struct hsmtls_err *err) HSMTLS_MUST_CHECK;
/* The DTLS context hung on a TLS context, if one was made (a new reference), or NULL. */
SSL_CTX *hsmtls__dtls_ctx_of(SSL_CTX *tls);
/* Domain parameters of a named finite-field group ("ffdhe2048"); NULL if unknown. */
EVP_PKEY *hsmtls__ffdhe(OSSL_LIB_CTX *lc, const char *name) HSMTLS_MUST_CHECK;

/* ---- the connection (conn.c, conn_info.c) ---- */
struct verify_error {
    long code;
    int depth;
    char *message;
    hsmtls_cert *cert;
};

struct cert_list {
    hsmtls_cert **v;
    int n, made;
};

enum { MODE_NONE = 0, MODE_FD = 1, MODE_MEMORY = 2, MODE_CALLBACKS = 3 };

struct hsmtls_conn {
    hsmtls_config *cfg;
    SSL *ssl;
    enum hsmtls_role role;
    int mode;                       /* MODE_* */
    BIO *in, *out;                  /* memory mode: feed into in, take from out */
    int effective_verify;
    char *hostname;
    struct hsmtls_err err;
    struct verify_error *verrs;
    int n_verrs;
    char *alpn, *peer_subject, *summary, *ephemeral;
    struct cert_list peer_chain, verified_chain;
    int shutdown_sent;
    int check_hostname;
    int alpn_listed;                /* the config had an ALPN list when the conn was made */
    struct hsmtls_cfg_callbacks cb; /* the config's, as they were when the conn was made */
    char *psk_identity;             /* the one the server accepted (OpenSSL 3.0 keeps it
                                       only for TLS 1.2) */
    int interrupt_on_verify;
    int verify_paused;              /* told the application; the retry decides */
    long *ignored;                  /* X509_V_ERR_* codes the application accepts */
    int n_ignored;
    char **peer_ca_names;           /* client: the CA names the server sent */
    int n_peer_ca_names, peer_ca_made;
};

/* The ex_data index that finds a hsmtls_conn from its SSL. */
int hsmtls__conn_index(void);
/* The verify callback that records each error on the connection. */
int hsmtls__verify_cb(int ok, X509_STORE_CTX *store);
/* The whole-chain callback that pauses on errors (interrupt-on-verify-error). */
int hsmtls__verify_chain_cb(X509_STORE_CTX *store, void *arg);
void hsmtls__conn_clear_info(hsmtls_conn *conn);
/* An SSL_* result r of the connection's SSL as a status, its message on e: what failed,
 * OpenSSL's reason and the verification errors. link names the connection in messages
 * ("connection", "association"). */
int hsmtls__conn_result(hsmtls_conn *conn, int r, const char *what, const char *link, struct hsmtls_err *e)
    HSMTLS_MUST_CHECK;
void hsmtls__conn_free_peer_ca(hsmtls_conn *conn);   /* conn_info.c */
/* Takes the config's values a new connection (or DTLS association) keeps: role,
 * verification, callbacks; and a reference to the config (conn.c). */
void hsmtls__conn_adopt(hsmtls_conn *conn, hsmtls_config *cfg);

/* A name in RFC 2253 form ("CN=localhost,O=..."), malloc'd (cert.c). */
char *hsmtls__name_line(const X509_NAME *name);
/* The `_pem` calls' contract: a memory BIO's bytes into buf as a string when they fit
 * with the NUL; frees b and returns the length either way. */
int hsmtls__bio_take_string(BIO *b, char *buf, size_t size);

/* strdup that tolerates NULL */
char *hsmtls__strdup(const char *s);

#endif
