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

#define HSMTLS_ERRLEN 1024

/* ---- errors (error.c) ---- */
/* Formats "what: OpenSSL reasons" into dst (and the thread's last message), draining
 * OpenSSL's error queue; returns HSMTLS_ERROR. dst may be NULL. */
int hsmtls__fail_ssl(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes OpenSSL's queued reasons as ": reason; reason" (empty when none). */
void hsmtls__openssl_reasons(char *buf, size_t size);
/* The same without OpenSSL's queue (which is cleared). */
int hsmtls__fail(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies a message into dst and the thread's last message. */
void hsmtls__set_error(char *dst, const char *msg);

/* ---- library context and provider (libctx.c) ---- */
/* The library's own OSSL_LIB_CTX with the default provider; NULL on failure. */
OSSL_LIB_CTX *hsmtls__libctx(char *err);
/* Loads the hsmtls provider into it (once per process); path may be NULL. */
int hsmtls__load_provider(const char *path, char *err);
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
                                   char *err);
/* The first private key the reference (or memory) holds. */
EVP_PKEY *hsmtls__load_key(const char *ref, const void *mem, size_t len,
                           const struct hsmtls_pin *pin, const char *provider_path, char *err);

/* ---- certificates (cert.c) ---- */
/* A new hsmtls_cert holding its own reference to x; NULL when out of memory. */
hsmtls_cert *hsmtls__cert_wrap(X509 *x);
X509 *hsmtls__cert_x509(const hsmtls_cert *cert);
/* ---- keys (key.c) ---- */
EVP_PKEY *hsmtls__key_pkey(const hsmtls_key *key);

/* ---- the config (config.c, config_build.c) ---- */
struct backend_opt { char *name, *value; };

struct hsmtls_config {
    atomic_int refs;
    pthread_mutex_t lock;           /* guards built and err against concurrent conn_new */
    enum hsmtls_role role;
    char err[HSMTLS_ERRLEN];
    char *provider_path;
    struct hsmtls_pin pin;
    char *pin_source;               /* owns pin.source */

    int min_version, max_version, allow_legacy;

    STACK_OF(X509) *chain;          /* leaf first */
    EVP_PKEY *key;
    enum hsmtls_location cert_loc, key_loc;
    char *cert_ref, *key_ref, *cert_subject;

    STACK_OF(X509) *ca;
    char **ca_dirs;
    int n_ca_dirs;
    int ca_default;                 /* -1: not said (clients use it when no CA is set) */

    enum hsmtls_verify_mode verify_mode;
    int verify_depth;               /* -1: OpenSSL's default */
    int peer_cert_required;
    int check_hostname;
    int cn_fallback;                /* host names may match the subject's CN (default 0) */
    int interrupt_on_verify;
    unsigned verify_flags;
    long session_timeout;
    int server_preference;

    unsigned char *alpn_wire;
    size_t alpn_wire_len;
    char *alpn;
    char *ciphers, *ciphersuites, *groups;
    char *dh_group;                 /* TLS 1.2 DHE: an RFC 7919 group, NULL: ffdhe2048 */
    EVP_PKEY *dh_params;            /* custom DHE parameters instead (config_dh.c) */
    int sess_cache_mode;            /* HSMTLS_SESS_CACHE_* (config_session.c) */
    long sess_cache_size;           /* -1: OpenSSL's default */
    int tickets;
    unsigned char *ocsp;            /* server: the response to staple */
    size_t ocsp_len;
    int ocsp_request;               /* client: ask for one */
    hsmtls_keylog_cb keylog;
    void *keylog_arg;
    hsmtls_sni_cb sni;
    void *sni_arg;
    hsmtls_psk_client_cb psk_client;
    hsmtls_psk_server_cb psk_server;
    void *psk_arg;
    char *psk_hint;
    struct backend_opt *opts;
    int n_opts;
    STACK_OF(X509_CRL) *crls;       /* for the CRL-check verify flags (config_more.c) */
    STACK_OF(X509_NAME) *client_ca; /* server: CA names sent to clients; NULL: the trusted CAs' */
    char **client_ca_names;
    int n_client_ca_names;
    int pha;                        /* post-handshake client auth (TLS 1.3) */
    int renegotiation;              /* TLS 1.2 renegotiation allowed (default 0) */

    SSL_CTX *built;                 /* made from the values above at the first conn_new,
                                       dropped by every setter */
    int dtls_cookie_off;            /* DTLS servers: 1 when cookie verification is off (dtls.c) */
};

/* The SSL_CTX for a new connection (a new reference); NULL + cfg->err on failure. */
SSL_CTX *hsmtls__config_ctx(hsmtls_config *cfg, char *err);
/* A context of its own built from the values (not the shared one), for DTLS (dtls.c). */
SSL_CTX *hsmtls__config_build_new(hsmtls_config *cfg, char *err);
/* The config's DTLS context (a new reference, dtls.c), where SNI switches a DTLS SSL. */
SSL_CTX *hsmtls__dtls_ctx(hsmtls_config *cfg, char *err);
/* The DTLS context hung on a TLS context, if one was made (a new reference), or NULL. */
SSL_CTX *hsmtls__dtls_ctx_of(SSL_CTX *tls);
/* Drops the built SSL_CTX after a change (live connections keep their reference). */
void hsmtls__config_changed(hsmtls_config *cfg);
/* Applies the cipher/group/SSL_CONF values to a scratch SSL_CTX, to check them early. */
int hsmtls__config_apply_lists(const hsmtls_config *cfg, SSL_CTX *ctx, char *err);
int hsmtls__config_effective_verify(const hsmtls_config *cfg);
/* config_more.c: CRLs, client CA names, PHA, renegotiation into the SSL_CTX; copy; free */
int hsmtls__config_apply_more(const hsmtls_config *cfg, SSL_CTX *ctx, char *err);
/* config_session.c: the session cache mode and size into the SSL_CTX */
void hsmtls__config_apply_session_cache(const hsmtls_config *cfg, SSL_CTX *ctx);
int hsmtls__config_copy_more(hsmtls_config *dst, const hsmtls_config *src);
void hsmtls__config_free_more(hsmtls_config *cfg);
/* Domain parameters of a named finite-field group ("ffdhe2048"); NULL if unknown. */
EVP_PKEY *hsmtls__ffdhe(OSSL_LIB_CTX *lc, const char *name);

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
    char err[HSMTLS_ERRLEN];
    struct verify_error *verrs;
    int n_verrs;
    char *alpn, *peer_subject, *summary, *ephemeral;
    struct cert_list peer_chain, verified_chain;
    int shutdown_sent;
    int check_hostname;
    int alpn_listed;                /* the config had an ALPN list when the conn was made */
    hsmtls_keylog_cb keylog;        /* the config's, as it was when the conn was made */
    void *keylog_arg;
    hsmtls_sni_cb sni;
    void *sni_arg;
    hsmtls_psk_client_cb psk_client;
    hsmtls_psk_server_cb psk_server;
    void *psk_arg;
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
void hsmtls__conn_free_more(hsmtls_conn *conn);   /* conn_more.c */

/* A name in RFC 2253 form ("CN=localhost,O=..."), malloc'd (cert.c). */
char *hsmtls__name_line(const X509_NAME *name);
/* The `_pem` calls' contract: a memory BIO's bytes into buf as a string when they fit
 * with the NUL; frees b and returns the length either way. */
int hsmtls__bio_take_string(BIO *b, char *buf, size_t size);

/* strdup that tolerates NULL */
char *hsmtls__strdup(const char *s);

#endif
