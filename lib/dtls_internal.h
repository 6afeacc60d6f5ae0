/* libhsmtls DTLS internals (dtls.c, dgram_bio.c, dtls_verifier.c). */
#ifndef HSMTLS_DTLS_INTERNAL_H
#define HSMTLS_DTLS_INTERNAL_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/bio.h>

#define HSMTLS_COOKIE_MAX 32
#define HSMTLS_DTLS_MAX_DATAGRAM_INTERNAL 65536

/* The cookie secret and digest shared by verifiers and server associations. */
struct hsmtls_cookie_params {
    char digest[32];
    unsigned char secret[256];
    size_t secret_len;
};

/* The library-wide default (a random secret made once, SHA256). */
const struct hsmtls_cookie_params *hsmtls__cookie_default(void);
/* The cookie for a peer address: HMAC(secret, family | address | port), at most
 * HSMTLS_COOKIE_MAX bytes; returns its length, or 0 on failure. */
size_t hsmtls__cookie(const struct hsmtls_cookie_params *p, const struct sockaddr *peer, socklen_t peerlen,
                      unsigned char *out);

/* The datagram BIO: one incoming datagram at a time (pushed by the application), and
 * outgoing datagrams either queued (memory) or sent on an fd to a peer. */
BIO *hsmtls__dgram_bio_new(void);
/* Offers one datagram to the next read (replacing any unread one). */
int hsmtls__dgram_bio_push(BIO *b, const void *data, size_t len);
void hsmtls__dgram_bio_clear_in(BIO *b);
/* Sends with sendto(fd, peer) from now on (peer may be NULL: send()). */
void hsmtls__dgram_bio_set_fd(BIO *b, int fd);
void hsmtls__dgram_bio_set_peer(BIO *b, const struct sockaddr *peer, socklen_t len);
int hsmtls__dgram_bio_take(BIO *b, void *buf, size_t size);
size_t hsmtls__dgram_bio_next_size(BIO *b);
size_t hsmtls__dgram_bio_count(BIO *b);
void hsmtls__dgram_bio_clear_out(BIO *b);
/* Drops everything sent from now on (abort). */
void hsmtls__dgram_bio_mute(BIO *b);

#endif
