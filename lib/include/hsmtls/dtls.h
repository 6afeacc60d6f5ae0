/* hsmtls_dtls: one DTLS association with one peer (Qt's QDtls), client or server as its
 * config says. The config gives keys and certificates (files or pkcs11: URIs), CAs,
 * verification, PSK, ciphers, exactly as for hsmtls_conn; DTLS 1.2 is the minimum.
 *
 * The application owns the transport and demultiplexes peers: it passes each datagram
 * it received from the peer to hsmtls_dtls_handshake() or hsmtls_dtls_read(). What the
 * association sends goes either
 *   - to a UDP socket the application owns (hsmtls_dtls_set_fd: sendto() to the peer
 *     address, QDtls's way; one socket may serve many associations), or
 *   - into memory (the default), one datagram at a time for hsmtls_dtls_take().
 *
 * A server's first datagram is the client's ClientHello, verified by a
 * hsmtls_dtls_verifier (hsmtls/dtls_verifier.h) when the config's cookie verification
 * is on (the default): the association checks the cookie again with the same secret.
 *
 * Retransmission: when hsmtls_dtls_timeout_ms() says a timer runs, call
 * hsmtls_dtls_handle_timeout() once it expires (it resends the last flight). The timer
 * runs on the system clock, or on the config's (hsmtls_config_set_dtls_clock).
 *
 * Calls return 0 (or a byte count) or a negative HSMTLS_* status; on HSMTLS_ERROR,
 * hsmtls_dtls_error_message() says why. One thread at a time per association. */
#ifndef HSMTLS_DTLS_H
#define HSMTLS_DTLS_H

#include <stddef.h>
#include <sys/socket.h>

#include "hsmtls/config.h"
#include "hsmtls/conn.h"
#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_dtls hsmtls_dtls;
typedef struct hsmtls_dtls_verifier hsmtls_dtls_verifier;

enum hsmtls_dtls_state {
    HSMTLS_DTLS_NOT_STARTED = 0,
    HSMTLS_DTLS_IN_PROGRESS = 1,
    HSMTLS_DTLS_PEER_VERIFICATION_FAILED = 2, /* paused on verification errors: ignore
                                                 them and resume, or give up */
    HSMTLS_DTLS_COMPLETE = 3,
    HSMTLS_DTLS_FAILED = 4,                   /* a fatal error, alert or timeout */
    HSMTLS_DTLS_CLOSED = 5,                   /* close_notify received (or aborted) */
};

/* The largest datagram a DTLS object reads or writes. */
#define HSMTLS_DTLS_MAX_DATAGRAM 65536

/* A new association from the config's current values (client or server as its role
 * says; NULL with hsmtls_error_message() on failure), freeing it, its role, and why the
 * last call on it failed. */
hsmtls_dtls *hsmtls_dtls_new(hsmtls_config *cfg);
void hsmtls_dtls_free(hsmtls_dtls *dtls);
enum hsmtls_role hsmtls_dtls_role(const hsmtls_dtls *dtls);
const char *hsmtls_dtls_error_message(const hsmtls_dtls *dtls);

/* The peer: an IPv4 or IPv6 address and port (the unspecified address, multicast and
 * broadcast addresses are refused), and the name its certificate is checked against
 * (clients; NULL: the address itself). Before the handshake. */
int hsmtls_dtls_set_peer(hsmtls_dtls *dtls, const struct sockaddr *addr, socklen_t addrlen,
                         const char *verify_name);
/* The same from text: "127.0.0.1" or "::1", and a port. */
int hsmtls_dtls_set_peer_address(hsmtls_dtls *dtls, const char *address, unsigned port,
                                 const char *verify_name);
/* "127.0.0.1:4433" / "[::1]:4433", "" when not set. */
const char *hsmtls_dtls_peer(const hsmtls_dtls *dtls);
const char *hsmtls_dtls_verify_name(const hsmtls_dtls *dtls);

/* The largest datagram (UDP payload) to send; handshake messages are fragmented to fit.
 * 0 means 1400 (the default). At least 256. Before the handshake. */
int hsmtls_dtls_set_mtu_hint(hsmtls_dtls *dtls, unsigned mtu);
unsigned hsmtls_dtls_mtu_hint(const hsmtls_dtls *dtls);
/* The first retransmission timeout in milliseconds (default 1000; doubled each time up
 * to 60 s). */
int hsmtls_dtls_set_retransmit_timeout(hsmtls_dtls *dtls, unsigned ms);

/* Send with sendto() on this UDP socket (which stays the application's) to the peer
 * set with hsmtls_dtls_set_peer (or send() on a connected socket without one). */
int hsmtls_dtls_set_fd(hsmtls_dtls *dtls, int fd);
/* Memory mode (the default): the next datagram to send, into buf; returns its length,
 * 0 when none waits, HSMTLS_ERROR when buf is smaller than
 * hsmtls_dtls_next_datagram_size() (the datagram stays). */
int hsmtls_dtls_take(hsmtls_dtls *dtls, void *buf, size_t size);
size_t hsmtls_dtls_next_datagram_size(const hsmtls_dtls *dtls);
size_t hsmtls_dtls_outgoing(const hsmtls_dtls *dtls); /* datagrams waiting */

/* Servers: the cookie secret and HMAC digest a verifier uses (the same library-wide
 * random secret and SHA256 by default, so nothing needs setting when both keep theirs). */
int hsmtls_dtls_use_verifier_secret(hsmtls_dtls *dtls, const hsmtls_dtls_verifier *verifier);

/* One handshake step with the datagram just received (NULL to start a client, or to
 * resume after verification errors). Returns 0 when the handshake is complete,
 * HSMTLS_WANT_READ while it waits for the peer (or the timeout), HSMTLS_WANT_VERIFY
 * when paused on verification errors (config: interrupt on verify errors), or
 * HSMTLS_ERROR. A datagram that does not belong (garbage, a replay) is dropped. */
int hsmtls_dtls_handshake(hsmtls_dtls *dtls, const void *datagram, size_t len);
enum hsmtls_dtls_state hsmtls_dtls_state(const hsmtls_dtls *dtls);
const char *hsmtls_dtls_state_name(enum hsmtls_dtls_state state);
/* Verification errors: the list is hsmtls_conn_verify_error(hsmtls_dtls_conn(dtls), ...).
 * Accept one (before the handshake or while paused), then resume. */
int hsmtls_dtls_ignore_verify_error(hsmtls_dtls *dtls, long code);
int hsmtls_dtls_resume_handshake(hsmtls_dtls *dtls);

/* Milliseconds until the retransmission timer expires (0: expired), -1 when none runs. */
long hsmtls_dtls_timeout_ms(const hsmtls_dtls *dtls);
/* After the timer expired: resends the last flight. 1 when something was resent, 0 when
 * nothing was due, HSMTLS_ERROR when the peer never answered (too many retries). */
int hsmtls_dtls_handle_timeout(hsmtls_dtls *dtls);

/* Encrypts len bytes (at most 16384) into one datagram and sends it (or queues it in
 * memory mode). Returns len. */
int hsmtls_dtls_write(hsmtls_dtls *dtls, const void *data, size_t len);
/* Decrypts a datagram received from the peer into buf: returns the byte count, 0 when it
 * carried no application data (a retransmission, a record dropped as garbage, truncated
 * or replayed, the peer's close_notify: the state says CLOSED), or HSMTLS_ERROR on a
 * fatal alert. Several records in one datagram: call again with datagram NULL to get
 * the next (0 when no more). */
int hsmtls_dtls_read(hsmtls_dtls *dtls, const void *datagram, size_t len, void *buf, size_t size);
/* Sends close_notify. */
int hsmtls_dtls_shutdown(hsmtls_dtls *dtls);
/* Drops the association without a word to the peer; later calls fail. */
int hsmtls_dtls_abort(hsmtls_dtls *dtls);

/* After the handshake (NULL before). */
const char *hsmtls_dtls_version(const hsmtls_dtls *dtls);   /* "DTLSv1.2" */
int hsmtls_dtls_version_number(const hsmtls_dtls *dtls);     /* 0xFEFD */
const char *hsmtls_dtls_cipher(const hsmtls_dtls *dtls);
int hsmtls_dtls_cipher_bits(const hsmtls_dtls *dtls);
const char *hsmtls_dtls_summary(hsmtls_dtls *dtls);
/* Resumption (hsmtls_session from hsmtls/conn.h; hsmtls_session_save/load keep it as
 * bytes). Client: the session to resume later (NULL until the handshake is complete;
 * a new reference: hsmtls_session_free it), and, before the handshake of a new
 * association, the session to offer (a DTLS one; the server may still choose a full
 * handshake). Both sides: 1 when the handshake resumed a session. */
hsmtls_session *hsmtls_dtls_session(hsmtls_dtls *dtls);
int hsmtls_dtls_set_session(hsmtls_dtls *dtls, hsmtls_session *sess);
int hsmtls_dtls_session_reused(const hsmtls_dtls *dtls);
/* SNI. A client sends its verification name (hsmtls_dtls_set_peer) as the server name
 * unless it is an IP address. A server's config callback (hsmtls_config_set_sni_cb,
 * handed hsmtls_dtls_conn()) may switch the association to another server config by
 * that name, as for TLS. This returns the name: the client's verification name, or
 * what the client asked the server for (NULL when none). */
const char *hsmtls_dtls_server_name(const hsmtls_dtls *dtls);

/* The association's TLS side, for hsmtls_conn's getters (verification errors, peer
 * chain, exporter, PSK identity...) and what the config's callbacks are handed. Never
 * for hsmtls_conn I/O calls. */
hsmtls_conn *hsmtls_dtls_conn(hsmtls_dtls *dtls);

#ifdef __cplusplus
}
#endif
#endif
