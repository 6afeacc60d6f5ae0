/* hsmtls_conn: one TLS connection (Qt's QSslSocket, Python's SSLSocket/SSLObject,
 * pyOpenSSL's Connection), client or server as its config says.
 *
 * I/O over a socket fd (blocking or non-blocking: HSMTLS_WANT_READ / HSMTLS_WANT_WRITE
 * tell what to wait for) or over memory buffers (Python's MemoryBIO): the application
 * feeds the bytes it received and takes the bytes to send. Every call returns 0 or a
 * byte count on success and a negative HSMTLS_* status otherwise; on HSMTLS_ERROR,
 * hsmtls_conn_error_message() says why, with OpenSSL's reason. A connection is used by
 * one thread at a time. */
#ifndef HSMTLS_CONN_H
#define HSMTLS_CONN_H

#include <stddef.h>

#include "hsmtls/cert.h"
#include "hsmtls/config.h"
#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_session hsmtls_session;

/* A connection from the config's current values (the config is referenced, not copied,
 * but later changes to it do not reach this connection). NULL on failure. */
hsmtls_conn *hsmtls_conn_new(hsmtls_config *cfg);
void hsmtls_conn_free(hsmtls_conn *conn);
enum hsmtls_role hsmtls_conn_role(const hsmtls_conn *conn);
const char *hsmtls_conn_error_message(const hsmtls_conn *conn);

/* I/O: one of these before the handshake. The fd stays the caller's; its blocking mode
 * decides whether calls block. */
int hsmtls_conn_set_fd(hsmtls_conn *conn, int fd);
int hsmtls_conn_use_memory(hsmtls_conn *conn);
/* Memory mode: bytes received from the peer (returns len), the end of them (the peer
 * closed), and the bytes to send to the peer (returns the count taken, 0 when none). */
int hsmtls_conn_feed(hsmtls_conn *conn, const void *data, size_t len);
int hsmtls_conn_feed_eof(hsmtls_conn *conn);
int hsmtls_conn_take(hsmtls_conn *conn, void *buf, size_t size);
size_t hsmtls_conn_outgoing(const hsmtls_conn *conn);

/* Callback I/O: the library calls read to get bytes from the peer and write to send
 * bytes. read returns the count, 0 at the end of the stream, HSMTLS_WANT_READ when
 * nothing is there yet, or HSMTLS_ERROR; write returns the count (a short write is
 * fine), HSMTLS_WANT_WRITE, or HSMTLS_ERROR. The WANT_ results pass through to the
 * caller of handshake/read/write, as with a non-blocking fd. */
typedef int (*hsmtls_read_cb)(void *arg, void *buf, size_t size);
typedef int (*hsmtls_write_cb)(void *arg, const void *data, size_t len);
int hsmtls_conn_set_io(hsmtls_conn *conn, hsmtls_read_cb read_cb, hsmtls_write_cb write_cb, void *arg);

/* Client: the server's name, sent as SNI (not for IP addresses) and checked against its
 * certificate when host name checks are on. */
int hsmtls_conn_set_hostname(hsmtls_conn *conn, const char *name);
/* Client: resume this session (from hsmtls_conn_session of an earlier connection). */
int hsmtls_conn_set_session(hsmtls_conn *conn, hsmtls_session *sess);

/* 0 when the handshake is done. read returns bytes read, 0 when the peer closed
 * cleanly (close_notify), HSMTLS_CLOSED when it closed the socket without one, or a
 * status; write returns len or a status (after HSMTLS_WANT_*, call it again with the
 * same arguments). */
int hsmtls_conn_handshake(hsmtls_conn *conn);
int hsmtls_conn_read(hsmtls_conn *conn, void *buf, size_t size);
int hsmtls_conn_write(hsmtls_conn *conn, const void *data, size_t len);
/* Decrypted bytes ready to read without touching the fd. */
size_t hsmtls_conn_pending(const hsmtls_conn *conn);
/* Sends close_notify (0 once sent). Reading may continue until read returns 0. */
int hsmtls_conn_shutdown(hsmtls_conn *conn);
enum { HSMTLS_SHUTDOWN_SENT = 1, HSMTLS_SHUTDOWN_RECEIVED = 2 };
int hsmtls_conn_shutdown_state(const hsmtls_conn *conn);

/* After the handshake. Strings belong to the connection; NULL when not known. */
int hsmtls_conn_handshake_done(const hsmtls_conn *conn);
const char *hsmtls_conn_version(const hsmtls_conn *conn);   /* "TLSv1.3" */
int hsmtls_conn_version_number(const hsmtls_conn *conn);     /* HSMTLS_TLS1_3 */
const char *hsmtls_conn_cipher(const hsmtls_conn *conn);    /* "TLS_AES_256_GCM_SHA384" */
int hsmtls_conn_cipher_bits(const hsmtls_conn *conn);
const char *hsmtls_conn_alpn(const hsmtls_conn *conn);
const char *hsmtls_conn_hostname(const hsmtls_conn *conn);  /* client: set; server: SNI received */
const char *hsmtls_conn_peer_subject(const hsmtls_conn *conn);
int hsmtls_conn_session_reused(const hsmtls_conn *conn);

/* ALPN's outcome (Qt's NextProtocolNegotiationStatus): NONE when this end had no list
 * (or the handshake is not done), NEGOTIATED when a protocol was chosen, UNSUPPORTED when
 * it had a list and none was chosen (the peer offered or accepted none of it). */
enum hsmtls_alpn_status { HSMTLS_ALPN_NONE = 0, HSMTLS_ALPN_NEGOTIATED = 1, HSMTLS_ALPN_UNSUPPORTED = 2 };
int hsmtls_conn_alpn_status(const hsmtls_conn *conn);

/* Client: the OCSP response the server stapled (DER; NULL and *len 0 when none). */
const unsigned char *hsmtls_conn_ocsp_response(const hsmtls_conn *conn, size_t *len);
/* Server: the PSK identity the client used (NULL when none). */
const char *hsmtls_conn_psk_identity(const hsmtls_conn *conn);

/* The key exchange group or ephemeral key type ("X25519", "prime256v1"); NULL when
 * not known. */
const char *hsmtls_conn_ephemeral_key(const hsmtls_conn *conn);
/* The size of that ephemeral key in bits (2048 for ffdhe2048, 253 for X25519); 0 when
 * not known. */
int hsmtls_conn_ephemeral_key_bits(const hsmtls_conn *conn);
/* Channel binding (RFC 5056) by name, into buf: "tls-exporter" (RFC 9266: 32 bytes of
 * the exporter labelled EXPORTER-Channel-Binding, without context), "tls-unique"
 * (RFC 5929, TLS 1.2 only: the first Finished message of the latest handshake) and
 * "tls-server-end-point" (RFC 5929: the server certificate's hash with its signature's
 * hash, SHA-256 in place of MD5/SHA-1; undefined for Ed25519/Ed448 certificates).
 * Before TLS 1.3, tls-exporter and tls-unique are refused ("no extended master
 * secret") when the handshake did not use RFC 7627's extended master secret, as
 * RFC 9266 section 3 requires. Returns the length, which may exceed size (nothing is written then; buf may be NULL
 * to ask), or HSMTLS_ERROR with a message. */
int hsmtls_conn_channel_binding(hsmtls_conn *conn, const char *type, void *buf, size_t size);
/* RFC 5705 / RFC 8446 exporter: len bytes into out; context may be NULL. */
int hsmtls_conn_export_keying_material(hsmtls_conn *conn, void *out, size_t len, const char *label,
                                       const void *context, size_t context_len);
/* TLS 1.3: new traffic keys for what we send (and asks the peer for its own too when
 * update_peer is 1); goes out with the next write or handshake call. */
int hsmtls_conn_key_update(hsmtls_conn *conn, int update_peer);

/* Verification: the result (0 = X509_V_OK), whether the peer verified, and each error
 * seen during the handshake: OpenSSL's X509_V_ERR_* code, the certificate's depth in
 * the chain, and a message "depth 0 (CN=...): hostname mismatch". */
long hsmtls_conn_verify_result(const hsmtls_conn *conn);
int hsmtls_conn_peer_verified(const hsmtls_conn *conn);
int hsmtls_conn_verify_error_count(const hsmtls_conn *conn);
const char *hsmtls_conn_verify_error(const hsmtls_conn *conn, int i, long *code, int *depth);

/* Treat this X509_V_ERR_* code as no error, before the handshake or while it waits
 * (HSMTLS_WANT_VERIFY). Ignored errors stay listed, and hsmtls_conn_peer_verified()
 * stays 0: the application took responsibility. */
int hsmtls_conn_ignore_verify_error(hsmtls_conn *conn, long code);

/* The certificate behind verification error i (NULL when none). */
const hsmtls_cert *hsmtls_conn_verify_error_cert(const hsmtls_conn *conn, int i);
/* The chain the peer sent, leaf first (on servers too), and the chain verification
 * built up to a trusted CA (empty when it did not verify). Certificates belong to the
 * connection: hsmtls_cert_up_ref one to keep it longer. */
int hsmtls_conn_peer_chain_count(const hsmtls_conn *conn);
const hsmtls_cert *hsmtls_conn_peer_chain_cert(const hsmtls_conn *conn, int i);
int hsmtls_conn_verified_chain_count(const hsmtls_conn *conn);
const hsmtls_cert *hsmtls_conn_verified_chain_cert(const hsmtls_conn *conn, int i);

/* TLS 1.3 post-handshake client authentication (both configs need
 * hsmtls_config_set_post_handshake_auth): a server asks an established client for its
 * certificate; the request goes out now, the answer is handled by the next reads, after
 * which the peer getters (subject, chains, verification) tell about it. */
int hsmtls_conn_request_client_cert(hsmtls_conn *conn);
/* TLS 1.2 renegotiation, when the config allows it (hsmtls_config_set_renegotiation):
 * starts a new handshake, carried on by the next handshake/read/write calls; pending
 * says whether it is still under way. */
int hsmtls_conn_renegotiate(hsmtls_conn *conn);
int hsmtls_conn_renegotiate_pending(const hsmtls_conn *conn);
/* Client: the CA names the server sent with its certificate request (RFC 2253). */
int hsmtls_conn_peer_ca_count(const hsmtls_conn *conn);
const char *hsmtls_conn_peer_ca_name(const hsmtls_conn *conn, int i);

/* One-line summaries for people: "TLSv1.3 TLS_AES_256_GCM_SHA384 (256 bits), ALPN h2,
 * new session", and the peer's "CN=..., verified" or the verification errors. */
const char *hsmtls_conn_summary(hsmtls_conn *conn);

/* The session to resume later (NULL when none yet; with TLS 1.3 it arrives after the
 * handshake, with the first data read). Reference-counted. */
hsmtls_session *hsmtls_conn_session(hsmtls_conn *conn);
void hsmtls_session_free(hsmtls_session *sess);
int hsmtls_session_up_ref(hsmtls_session *sess);
/* A session as bytes (DER) to keep, and back (openssl's -sess_out / -sess_in). save
 * returns the length (with buf NULL: the length needed) or HSMTLS_ERROR; load returns
 * NULL with hsmtls_error_message() on bytes that are not a session. */
int hsmtls_session_save(const hsmtls_session *sess, void *buf, size_t size);
hsmtls_session *hsmtls_session_load(const void *data, size_t len);
/* Whether the server gave a ticket for it, the ticket's lifetime hint in seconds, and
 * the protocol version (HSMTLS_TLS1_3). */
int hsmtls_session_has_ticket(const hsmtls_session *sess);
unsigned long hsmtls_session_ticket_lifetime_hint(const hsmtls_session *sess);
int hsmtls_session_version(const hsmtls_session *sess);

#ifdef __cplusplus
}
#endif
#endif
