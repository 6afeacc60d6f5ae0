/* hsmtls_dtls_verifier: the stateless DTLS cookie exchange (Qt's QDtlsClientVerifier).
 *
 * A server passes every ClientHello from an unknown peer through it before keeping any
 * state for that peer. A ClientHello with a valid cookie (an HMAC of the peer's address
 * and port under a secret) is verified: make a hsmtls_dtls for the peer and hand it that
 * datagram. Otherwise the answer is a HelloVerifyRequest to send back, never larger than
 * the ClientHello (a datagram that is not a whole ClientHello gets no answer), and
 * nothing is kept. */
#ifndef HSMTLS_DTLS_VERIFIER_H
#define HSMTLS_DTLS_VERIFIER_H

#include <stddef.h>
#include <sys/socket.h>

#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_dtls_verifier hsmtls_dtls_verifier;

/* A verifier with the library-wide random secret and SHA256 (what hsmtls_dtls servers
 * check by default). */
hsmtls_dtls_verifier *hsmtls_dtls_verifier_new(void);
void hsmtls_dtls_verifier_free(hsmtls_dtls_verifier *v);
const char *hsmtls_dtls_verifier_error(const hsmtls_dtls_verifier *v);

/* The HMAC digest ("SHA256", "SHA384", "SHA1"...) and secret (1..256 bytes). Servers
 * that set their own give it to each association (hsmtls_dtls_use_verifier_secret). */
int hsmtls_dtls_verifier_set_secret(hsmtls_dtls_verifier *v, const char *digest, const void *secret,
                                    size_t len);
const char *hsmtls_dtls_verifier_digest(const hsmtls_dtls_verifier *v);

/* Checks a datagram from peer. Returns 1 when it is a ClientHello with a valid cookie
 * (*reply_len 0); 0 when not, with the HelloVerifyRequest to send in reply (*reply_len
 * bytes, 0 when the datagram deserves no answer); HSMTLS_ERROR on bad arguments (reply
 * needs 300 bytes). */
int hsmtls_dtls_verifier_check(hsmtls_dtls_verifier *v, const void *datagram, size_t len,
                               const struct sockaddr *peer, socklen_t peerlen, void *reply,
                               size_t reply_size, size_t *reply_len);

#ifdef __cplusplus
}
#endif
#endif
