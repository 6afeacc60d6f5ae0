/* libhsmtls DTLS internals: the association (dtls.c, dtls_peer.c), its context
 * (dtls_ctx.c), its retransmission timer (dtls_timer.c), the datagram BIO
 * (dgram_bio.c) and the cookie verifier (dtls_verifier.c). */
#ifndef HSMTLS_DTLS_INTERNAL_H
#define HSMTLS_DTLS_INTERNAL_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/bio.h>

#include "lib_internal.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

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
                      unsigned char *out) HSMTLS_MUST_CHECK;

/* The datagram BIO: one incoming datagram at a time (pushed by the application), and
 * outgoing datagrams either queued (memory) or sent on an fd to a peer. */
BIO *hsmtls__dgram_bio_new(void) HSMTLS_MUST_CHECK;
/* Offers one datagram to the next read (replacing any unread one). */
int hsmtls__dgram_bio_push(BIO *b, const void *data, size_t len) HSMTLS_MUST_CHECK;
void hsmtls__dgram_bio_clear_in(BIO *b);
/* Sends with sendto(fd, peer) from now on (peer may be NULL: send()). */
void hsmtls__dgram_bio_set_fd(BIO *b, int fd);
void hsmtls__dgram_bio_set_peer(BIO *b, const struct sockaddr *peer, socklen_t len);
int hsmtls__dgram_bio_take(BIO *b, void *buf, size_t size);
size_t hsmtls__dgram_bio_next_size(BIO *b);
size_t hsmtls__dgram_bio_count(BIO *b);
void hsmtls__dgram_bio_clear_out(BIO *b);
/* Makes OpenSSL's retransmission timer (running) expire now, through the deadline
 * OpenSSL handed the BIO (before 3.2: its own); 0 when no timer runs. */
int hsmtls__dgram_bio_expire_timer(BIO *b);
/* Drops everything sent from now on (abort). */
void hsmtls__dgram_bio_mute(BIO *b);

/* The verifier's secret and digest (dtls_verifier.c). */
const struct hsmtls_cookie_params *hsmtls__verifier_params(const hsmtls_dtls_verifier *v);

/* The retransmission schedule (dtls_timer.c): the first timeout, doubled after each
 * retransmission up to 60 s. On the system clock OpenSSL's own timer runs it; on an
 * application's clock the library keeps the deadline and doubling itself. */
struct hsmtls_dtls_timer {
    unsigned first_ms;
    hsmtls_clock_cb clock;          /* NULL: OpenSSL's timer on the system clock */
    void *clock_arg;
    unsigned cur_ms;                /* the running timeout, on the clock */
    uint64_t deadline;              /* when it expires, on the clock */
};

struct hsmtls_dtls {
    hsmtls_conn *conn;
    BIO *bio;
    enum hsmtls_role role;
    enum hsmtls_dtls_state state;
    int cookie;                     /* server: enter through DTLSv1_listen */
    int listened;
    int aborted;
    struct hsmtls_cookie_params cookie_params;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[64];
    char *verify_name;
    unsigned mtu;
    struct hsmtls_dtls_timer timer;
    struct hsmtls_err err;
};

/* The ex_data index that finds an association from its SSL (dtls_ctx.c); -1 when
 * OpenSSL had none to give. */
int hsmtls__dtls_index(void);
hsmtls_dtls *hsmtls__dtls_of(const SSL *ssl);
/* The timer of a new association, from the config's clock (dtls_timer.c). */
void hsmtls__dtls_timer_init(hsmtls_dtls *d, const hsmtls_config *cfg);
/* HSMTLS_OK, or HSMTLS_ERROR when the association was aborted or failed (dtls.c). */
int hsmtls__dtls_usable(hsmtls_dtls *d, const char *what);
/* HSMTLS_OK before the handshake, else HSMTLS_ERROR saying what came too late (dtls.c). */
int hsmtls__dtls_not_started(hsmtls_dtls *d, const char *what);

#endif
