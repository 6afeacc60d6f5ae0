/* hsmtls_config: everything a TLS connection is made from (Qt's QSslConfiguration,
 * Python's SSLContext, pyOpenSSL's Context).
 *
 * Reference-counted: one config serves many connections. Its values are fixed into a
 * connection when the connection is created; changing the config later does not change
 * live connections. Defaults are the safe ones: TLS 1.2 minimum, and for clients peer
 * verification and host name checks on (against the system CA store when no CA is set).
 *
 * Keys and certificates are named by a path, a `file:` URI or a `pkcs11:` URI, all
 * through the same calls: the library opens them with OSSL_STORE in its own
 * OSSL_LIB_CTX, into which it loads the default provider and, for `pkcs11:` URIs, the
 * hsmtls provider. Setters return 0 or HSMTLS_ERROR with a message (hsmtls_config_error).
 *
 * Threads: hsmtls_conn_new() may be called on one config from many threads at once;
 * setters must not run concurrently with each other or with hsmtls_conn_new(). */
#ifndef HSMTLS_CONFIG_H
#define HSMTLS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "hsmtls/cert.h"
#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_config hsmtls_config;
typedef struct hsmtls_conn hsmtls_conn;

enum hsmtls_role { HSMTLS_CLIENT = 0, HSMTLS_SERVER = 1 };

/* Protocol versions use the wire numbers. */
enum hsmtls_version {
    HSMTLS_TLS1_0 = 0x0301,
    HSMTLS_TLS1_1 = 0x0302,
    HSMTLS_TLS1_2 = 0x0303,
    HSMTLS_TLS1_3 = 0x0304,
};

/* Peer verification, Qt's names:
 * NONE   - do not ask for (server) or check (client) the peer's certificate; the
 *          verification result is still recorded on a client.
 * QUERY  - ask for the peer's certificate, record verification errors, never fail on them.
 * VERIFY - the peer's certificate must verify; a server also requires one unless
 *          hsmtls_config_set_peer_cert_required(cfg, 0).
 * AUTO   - VERIFY for clients, QUERY for servers (the default). */
enum hsmtls_verify_mode {
    HSMTLS_VERIFY_NONE = 0,
    HSMTLS_VERIFY_QUERY = 1,
    HSMTLS_VERIFY_PEER = 2,
    HSMTLS_VERIFY_AUTO = 3,
};

/* Where a key or certificate came from. */
enum hsmtls_location {
    HSMTLS_LOC_NONE = 0,
    HSMTLS_LOC_FILE = 1,    /* a path or file: URI */
    HSMTLS_LOC_MEMORY = 2,
    HSMTLS_LOC_TOKEN = 3,   /* a pkcs11: URI: the private half never leaves the token */
};

/* Asked for a PIN (pkcs11: URIs) or a passphrase (encrypted key files). Writes at most
 * size - 1 bytes and a NUL into buf and returns the length, or -1 to give up. */
typedef struct hsmtls_pin_request {
    const char *ref;        /* the path or URI being opened (never with its PIN) */
    int is_token;           /* 1 for a pkcs11: URI (a PIN), 0 for a file (a passphrase) */
    const char *token;      /* the URI's token label (token=...), NULL when it names none */
    int retry;              /* 1 when an earlier answer for this reference was rejected */
    const char *prompt;     /* a suggested prompt */
} hsmtls_pin_request;
typedef int (*hsmtls_pin_cb)(const hsmtls_pin_request *req, char *buf, size_t size, void *arg);

/* Server: called with the name a client asked for (SNI; NULL when none) during the
 * handshake. Return 0 to go on, setting *use to another server config to answer with
 * its certificate and key (the connection's other settings stay); or -1 to refuse the
 * client with an unrecognized_name alert. */
typedef int (*hsmtls_sni_cb)(hsmtls_conn *conn, const char *name, hsmtls_config **use, void *arg);

/* Pre-shared keys (TLS 1.2 PSK suites, TLS 1.3 external PSK). The client callback is
 * given the server's identity hint (TLS 1.2; NULL when none) and writes a NUL-terminated
 * identity and the key, returning the key's length or -1. The server callback is given
 * the identity and writes its key, returning the length or -1 for an unknown identity.
 * A server with a PSK callback needs no certificate. */
typedef int (*hsmtls_psk_client_cb)(hsmtls_conn *conn, const char *hint, char *identity,
                                    size_t identity_size, unsigned char *key, size_t key_size, void *arg);
typedef int (*hsmtls_psk_server_cb)(hsmtls_conn *conn, const char *identity, unsigned char *key,
                                    size_t key_size, void *arg);

/* Called with each SSLKEYLOGFILE-format line (no newline). */
typedef void (*hsmtls_keylog_cb)(const hsmtls_conn *conn, const char *line, void *arg);

/* A config for a client or a server with the safe defaults above (NULL + message on
 * failure); up_ref adds a reference, free drops one (the last frees it). */
hsmtls_config *hsmtls_config_new(enum hsmtls_role role);
int hsmtls_config_up_ref(hsmtls_config *cfg);
void hsmtls_config_free(hsmtls_config *cfg);
/* A new config (reference count 1) with the same values; keys and certificates are
 * shared, callbacks kept. NULL on failure. */
hsmtls_config *hsmtls_config_copy(const hsmtls_config *cfg);
enum hsmtls_role hsmtls_config_role(const hsmtls_config *cfg);
/* The last message of a call on this config ("" when none). */
const char *hsmtls_config_error(const hsmtls_config *cfg);

/* Where to find the hsmtls provider module (a file, or the directory holding hsmtls.so).
 * Default: $HSMTLS_PROVIDER, else the build's module, else the installed one. The
 * provider is loaded once per process, at the first pkcs11: URI. */
int hsmtls_config_set_provider_path(hsmtls_config *cfg, const char *path);
const char *hsmtls_config_provider_path(const hsmtls_config *cfg);

/* The PIN/passphrase callback, for every key and certificate reference of this config. */
int hsmtls_config_set_pin_cb(hsmtls_config *cfg, hsmtls_pin_cb cb, void *arg);

/* A file whose first line is the PIN or passphrase, used when no callback is set (the
 * URI's own pin-value, when present, goes first). NULL clears. */
int hsmtls_config_set_pin_source(hsmtls_config *cfg, const char *path);

/* "none", "file", "memory", "token". */
const char *hsmtls_location_name(enum hsmtls_location loc);

/* Protocol range; 0 means "no bound" on either side (max = newest). TLS 1.0/1.1 are
 * refused unless hsmtls_config_allow_legacy_protocols(cfg, 1) came first. */
int hsmtls_config_set_protocols(hsmtls_config *cfg, int min_version, int max_version);
int hsmtls_config_allow_legacy_protocols(hsmtls_config *cfg, int allow);
int hsmtls_config_min_protocol(const hsmtls_config *cfg);
int hsmtls_config_max_protocol(const hsmtls_config *cfg);

/* The local certificate: the first certificate the reference holds is the leaf, any
 * others its chain. A PEM or DER file, a file: or pkcs11: URI. */
int hsmtls_config_set_cert(hsmtls_config *cfg, const char *ref);
int hsmtls_config_set_cert_mem(hsmtls_config *cfg, const void *data, size_t len);
/* The private key: a path (PEM, DER, encrypted PEM with the PIN callback), a file: URI,
 * a pkcs11: URI (a token key, used in place). */
int hsmtls_config_set_key(hsmtls_config *cfg, const char *ref);
int hsmtls_config_set_key_mem(hsmtls_config *cfg, const void *data, size_t len);
/* Both at once: use this to replace a pair. Each single setter checks the new half
 * against the other when both are set, and keeps the old one if they do not match. */
int hsmtls_config_set_cert_key(hsmtls_config *cfg, const char *cert_ref, const char *key_ref);
enum hsmtls_location hsmtls_config_key_location(const hsmtls_config *cfg);
enum hsmtls_location hsmtls_config_cert_location(const hsmtls_config *cfg);
/* The reference as given, with any pin-value removed; NULL when none. */
const char *hsmtls_config_key_ref(const hsmtls_config *cfg);
const char *hsmtls_config_cert_ref(const hsmtls_config *cfg);
/* The leaf's subject (RFC 2253), NULL when none. */
const char *hsmtls_config_cert_subject(const hsmtls_config *cfg);

/* CA certificates for verifying peers: every certificate a file or URI holds, a hashed
 * directory (c_rehash), the system default store. */
int hsmtls_config_add_ca(hsmtls_config *cfg, const char *ref);
int hsmtls_config_add_ca_dir(hsmtls_config *cfg, const char *dir);
int hsmtls_config_add_ca_cert(hsmtls_config *cfg, const hsmtls_cert *cert);
/* Every certificate of every file a glob(3) pattern matches (all the .pem files of a
 * directory, say); returns the number of certificates added. A pattern that matches
 * nothing, or a matching file that holds no certificate, fails (and adds none). */
int hsmtls_config_add_ca_glob(hsmtls_config *cfg, const char *pattern);
int hsmtls_config_use_default_ca(hsmtls_config *cfg, int use);
/* Number of CA certificates added from files/URIs. */
int hsmtls_config_ca_count(const hsmtls_config *cfg);

/* Peer verification mode (enum hsmtls_verify_mode, default AUTO) and the longest chain
 * accepted (-1: OpenSSL's default, 100). */
int hsmtls_config_set_verify_mode(hsmtls_config *cfg, enum hsmtls_verify_mode mode);
enum hsmtls_verify_mode hsmtls_config_verify_mode(const hsmtls_config *cfg);
int hsmtls_config_set_verify_depth(hsmtls_config *cfg, int depth);
int hsmtls_config_verify_depth(const hsmtls_config *cfg);
/* Server, VERIFY mode: whether a client without a certificate is refused (default 1). */
int hsmtls_config_set_peer_cert_required(hsmtls_config *cfg, int required);
int hsmtls_config_peer_cert_required(const hsmtls_config *cfg);
/* Verification flags (OpenSSL's X509_V_FLAG_* underneath), OR-ed together. */
enum hsmtls_verify_flag {
    HSMTLS_VFLAG_CRL_CHECK = 1 << 0,      /* CRLs for the leaf (load them with the CAs) */
    HSMTLS_VFLAG_CRL_CHECK_ALL = 1 << 1,  /* CRLs for the whole chain */
    HSMTLS_VFLAG_STRICT = 1 << 2,         /* strict X.509 checks */
    HSMTLS_VFLAG_PARTIAL_CHAIN = 1 << 3,  /* a trusted intermediate or leaf is enough */
    HSMTLS_VFLAG_TRUSTED_FIRST = 1 << 4,  /* prefer trusted certificates when building */
};
int hsmtls_config_set_verify_flags(hsmtls_config *cfg, unsigned flags);
unsigned hsmtls_config_verify_flags(const hsmtls_config *cfg);

/* Client, VERIFY mode: pause the handshake on verification errors (it returns
 * HSMTLS_WANT_VERIFY) so the application can look at them, ignore some with
 * hsmtls_conn_ignore_verify_error() and call hsmtls_conn_handshake() again: it goes on
 * when every error was accepted and fails otherwise (Qt's sslErrors/ignoreSslErrors).
 * Off by default: errors end the handshake. */
int hsmtls_config_set_interrupt_on_verify_error(hsmtls_config *cfg, int on);
int hsmtls_config_interrupt_on_verify_error(const hsmtls_config *cfg);

/* Client: check the server's certificate against the host name (default on). */
int hsmtls_config_set_check_hostname(hsmtls_config *cfg, int check);
int hsmtls_config_check_hostname(const hsmtls_config *cfg);
/* Client: whether a certificate without DNS names in its subjectAltName may match by
 * its subject's common name (off by default, as RFC 6125 and browsers have it). */
int hsmtls_config_set_hostname_cn_fallback(hsmtls_config *cfg, int on);
int hsmtls_config_hostname_cn_fallback(const hsmtls_config *cfg);

/* ALPN protocols, comma-separated in preference order ("h2,http/1.1"); NULL clears. A
 * server picks its first protocol the client offers, and goes on without ALPN when none. */
int hsmtls_config_set_alpn(hsmtls_config *cfg, const char *list);
const char *hsmtls_config_alpn(const hsmtls_config *cfg);

/* OpenSSL cipher strings: the TLS 1.2 cipher list and the TLS 1.3 suites. */
int hsmtls_config_set_ciphers(hsmtls_config *cfg, const char *list);
const char *hsmtls_config_ciphers(const hsmtls_config *cfg);
int hsmtls_config_set_ciphersuites(hsmtls_config *cfg, const char *list);
const char *hsmtls_config_ciphersuites(const hsmtls_config *cfg);
/* Key exchange groups, colon-separated ("X25519:P-256"). */
int hsmtls_config_set_groups(hsmtls_config *cfg, const char *list);
const char *hsmtls_config_groups(const hsmtls_config *cfg);

/* OCSP stapling. Server: the DER OCSP response to staple when a client asks (NULL
 * clears; the application refreshes it). Client: ask for a stapled response; it is
 * then hsmtls_conn_ocsp_response() (the application checks it). */
int hsmtls_config_set_ocsp_response(hsmtls_config *cfg, const void *der, size_t len);
int hsmtls_config_set_ocsp_request(hsmtls_config *cfg, int on);
int hsmtls_config_ocsp_request(const hsmtls_config *cfg);

/* Server, TLS 1.2 DHE suites: the RFC 7919 group ("ffdhe2048", the default, up to
 * "ffdhe8192"), or custom parameters from a PEM file or memory ("DH PARAMETERS" as
 * `openssl dhparam` writes them; refused, naming the size, when the prime has fewer
 * than 2048 bits, and with OpenSSL's reason when it rejects them). The last call wins. The group getter gives the group's
 * name, or NULL for custom parameters that are no named group; the bits getter the
 * prime's size in use (2048 by default). */
int hsmtls_config_set_dh_group(hsmtls_config *cfg, const char *name);
const char *hsmtls_config_dh_group(const hsmtls_config *cfg);
int hsmtls_config_set_dh_params(hsmtls_config *cfg, const char *path);
int hsmtls_config_set_dh_params_mem(hsmtls_config *cfg, const void *pem, size_t len);
int hsmtls_config_dh_bits(const hsmtls_config *cfg);

/* Session tickets (on by default). Off, a server sends no NewSessionTicket at all:
 * TLS 1.2 still resumes by session ID through the server's cache, TLS 1.3 does not
 * resume (no stateful TLS 1.3 tickets either). */
int hsmtls_config_set_session_tickets(hsmtls_config *cfg, int on);
int hsmtls_config_session_tickets(const hsmtls_config *cfg);

/* How long a session may be resumed, in seconds (0: OpenSSL's default, 7200). */
int hsmtls_config_set_session_timeout(hsmtls_config *cfg, long seconds);
long hsmtls_config_session_timeout(const hsmtls_config *cfg);
/* The session cache (OpenSSL's SSL_CTX_set_session_cache_mode and SSL_CTX_sess_*):
 * which side keeps sessions (the values are OpenSSL's SSL_SESS_CACHE_*; default SERVER),
 * and how many (0: no limit; default OpenSSL's 20480). A server needs its cache to
 * resume by session ID (TLS 1.2 without tickets; with tickets off TLS 1.3 does not
 * resume, see above); a client's cache only keeps and counts its sessions:
 * resuming takes hsmtls_conn_set_session. The cache and its counters belong to the
 * context the config's connections share: a setter called afterwards starts a new one,
 * empty. */
enum hsmtls_session_cache_mode {
    HSMTLS_SESS_CACHE_OFF = 0,
    HSMTLS_SESS_CACHE_CLIENT = 1,
    HSMTLS_SESS_CACHE_SERVER = 2,
    HSMTLS_SESS_CACHE_BOTH = 3,
};
int hsmtls_config_set_session_cache_mode(hsmtls_config *cfg, int mode);
int hsmtls_config_session_cache_mode(const hsmtls_config *cfg);
int hsmtls_config_set_session_cache_size(hsmtls_config *cfg, long size);
long hsmtls_config_session_cache_size(const hsmtls_config *cfg);
/* Removes the expired sessions from the cache (all = 0) or every session (all = 1);
 * returns how many went. TLS connections and DTLS associations of one config keep
 * separate caches (their contexts differ); this and the counters below cover both. */
int hsmtls_config_flush_sessions(hsmtls_config *cfg, int all);
/* The cache's counters (OpenSSL's SSL_CTX_sess_number, _hits, ...): sessions cached,
 * resumptions found in it and not, handshakes begun and finished on each side, the TLS
 * and the DTLS cache added up. All 0 before the first connection since the last
 * change. */
typedef struct hsmtls_session_stats {
    long number, hits, misses, timeouts, cache_full;
    long accept, accept_good, accept_renegotiate;
    long connect, connect_good, connect_renegotiate;
} hsmtls_session_stats;
int hsmtls_config_session_stats(hsmtls_config *cfg, hsmtls_session_stats *out);

/* Server: choose the cipher by its own preference order, not the client's (default on). */
int hsmtls_config_set_server_preference(hsmtls_config *cfg, int on);
int hsmtls_config_server_preference(const hsmtls_config *cfg);

/* The callbacks above (hsmtls_keylog_cb, hsmtls_sni_cb for servers, the PSK ones for
 * their side), each with the argument it is given; NULL turns one off. */
int hsmtls_config_set_keylog_cb(hsmtls_config *cfg, hsmtls_keylog_cb cb, void *arg);
int hsmtls_config_set_sni_cb(hsmtls_config *cfg, hsmtls_sni_cb cb, void *arg);
int hsmtls_config_set_psk_client_cb(hsmtls_config *cfg, hsmtls_psk_client_cb cb, void *arg);
int hsmtls_config_set_psk_server_cb(hsmtls_config *cfg, hsmtls_psk_server_cb cb, void *arg);
/* Server, TLS 1.2: the hint sent to clients (NULL: none). */
int hsmtls_config_set_psk_identity_hint(hsmtls_config *cfg, const char *hint);
const char *hsmtls_config_psk_identity_hint(const hsmtls_config *cfg);

/* OpenSSL SSL_CONF commands in configuration-file form ("Options", "-SessionTicket";
 * "SignatureAlgorithms", "ECDSA+SHA256"), applied last, in the order given. */
int hsmtls_config_set_backend_option(hsmtls_config *cfg, const char *name, const char *value);
int hsmtls_config_backend_option_count(const hsmtls_config *cfg);

/* Certificate revocation lists (PEM, one or more, or one DER) used when the verify
 * flags ask for CRL checks (HSMTLS_VFLAG_CRL_CHECK / _CHECK_ALL). */
int hsmtls_config_add_crl(hsmtls_config *cfg, const char *file);
int hsmtls_config_crl_count(const hsmtls_config *cfg);

/* Server: the CA names sent to clients in a certificate request, from every certificate
 * a file or URI holds (added up). Without any, the names of the trusted CAs are sent. */
int hsmtls_config_add_client_ca(hsmtls_config *cfg, const char *ref);
int hsmtls_config_client_ca_count(const hsmtls_config *cfg);
const char *hsmtls_config_client_ca_name(const hsmtls_config *cfg, int i);   /* RFC 2253 */

/* TLS 1.3 post-handshake client authentication (off by default). Client: offer it.
 * Server: ask for the client certificate only when hsmtls_conn_request_client_cert()
 * says so, not during the handshake. */
int hsmtls_config_set_post_handshake_auth(hsmtls_config *cfg, int on);
int hsmtls_config_post_handshake_auth(const hsmtls_config *cfg);

/* TLS 1.2 renegotiation, by either side (off by default: a peer's request is refused
 * with a no_renegotiation alert). TLS 1.3 has none. */
int hsmtls_config_set_renegotiation(hsmtls_config *cfg, int on);
int hsmtls_config_renegotiation(const hsmtls_config *cfg);

/* Equality (Qt's operator==): 1 when both hold the same values, certificates and keys
 * (compared by content), CRLs and callbacks. */
int hsmtls_config_equal(const hsmtls_config *a, const hsmtls_config *b);
/* Null-ness (Qt's isNull): 1 when the config holds only the defaults of its role. */
int hsmtls_config_is_default(const hsmtls_config *cfg);

/* What this library and its OpenSSL support, colon-separated; the caller free()s the
 * string (NULL when out of memory). TLS 1.2 ciphers (those of the legacy versions too
 * when the config allows them), TLS 1.3 suites, key exchange groups. */
char *hsmtls_config_supported_ciphers(const hsmtls_config *cfg);
char *hsmtls_config_supported_ciphersuites(const hsmtls_config *cfg);
char *hsmtls_config_supported_groups(const hsmtls_config *cfg);

/* DTLS servers: the stateless cookie exchange (HelloVerifyRequest) before a client gets
 * any state (hsmtls/dtls_verifier.h). On by default; no effect on clients. */
int hsmtls_config_set_dtls_cookie_verification(hsmtls_config *cfg, int on);
int hsmtls_config_dtls_cookie_verification(const hsmtls_config *cfg);

/* A monotonic clock in milliseconds (any origin; it must never go back), for DTLS
 * associations made from the config from now on: their retransmission timers
 * (hsmtls_dtls_timeout_ms, hsmtls_dtls_handle_timeout) run on it instead of the system
 * clock. Meant for tests, which advance a clock of their own instead of sleeping, and
 * for event loops that keep their own time. NULL: the system clock (the default).
 * HSMTLS_ERROR when the OpenSSL in use cannot be driven this way (3.2 and later). */
typedef uint64_t (*hsmtls_clock_cb)(void *arg);
int hsmtls_config_set_dtls_clock(hsmtls_config *cfg, hsmtls_clock_cb clock, void *arg);

#ifdef __cplusplus
}
#endif
#endif
