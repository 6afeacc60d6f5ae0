/* What the DTLS fuzz targets and the seed maker share: the verifier's fixed secret, the
 * peer, the input format of fuzz_dtls_server, and putting the right cookie into a
 * ClientHello. */
#ifndef HSMTLS_FUZZ_DTLS_H
#define HSMTLS_FUZZ_DTLS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_DTLS_PEER "192.0.2.7"
#define FUZZ_DTLS_PORT 4433
#define FUZZ_DTLS_REC 13 /* record header */
#define FUZZ_DTLS_HS 12  /* handshake header */

static const unsigned char fuzz_dtls_secret[32] = "hsmtls fuzz cookie secret 32 b!";

static inline struct sockaddr_in fuzz_dtls_peer(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(FUZZ_DTLS_PORT);
    inet_pton(AF_INET, FUZZ_DTLS_PEER, &a.sin_addr);
    return a;
}

static inline size_t fuzz_get16(const unsigned char *p) { return (size_t)p[0] << 8 | p[1]; }
static inline size_t fuzz_get24(const unsigned char *p) { return (size_t)p[0] << 16 | fuzz_get16(p + 1); }
static inline void fuzz_put16(unsigned char *p, size_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static inline void fuzz_put24(unsigned char *p, size_t v) { p[0] = (unsigned char)(v >> 16); fuzz_put16(p + 1, v); }

/* When dg (len bytes) starts with a whole unfragmented ClientHello record, writes it to
 * out (room for len + 256 bytes) with `cookie` in place of its cookie, lengths fixed,
 * any bytes after the record kept; returns the new length. 0 when it is no such thing
 * (the datagram then goes as it is). */
static inline size_t fuzz_dtls_set_cookie(const unsigned char *dg, size_t len,
                                          const unsigned char *cookie, size_t cookie_len,
                                          unsigned char *out)
{
    const size_t R = FUZZ_DTLS_REC, H = FUZZ_DTLS_HS;
    if (len < R + H || dg[0] != 22 || cookie_len > 255)
        return 0;
    size_t rec = fuzz_get16(dg + 11);
    if (R + rec > len || rec < H || dg[R] != 1)
        return 0;
    size_t body = fuzz_get24(dg + R + 1);
    if (fuzz_get24(dg + R + 6) != 0 || fuzz_get24(dg + R + 9) != body || H + body != rec)
        return 0;
    const unsigned char *b = dg + R + H;
    size_t at = 2 + 32; /* client_version, random */
    if (body < at + 1 || body < at + 1 + b[at] + 1)
        return 0;
    at += 1 + b[at]; /* session_id */
    size_t old = b[at];
    if (body < at + 1 + old)
        return 0;
    if (H + body - old + cookie_len > 0xFFFF)
        return 0;
    size_t head = R + H + at + 1, tail = len - (head + old);
    memcpy(out, dg, head - 1);
    out[head - 1] = (unsigned char)cookie_len;
    memcpy(out + head, cookie, cookie_len);
    memcpy(out + head + cookie_len, dg + head + old, tail);
    size_t nbody = body - old + cookie_len;
    fuzz_put16(out + 11, H + nbody);
    fuzz_put24(out + R + 1, nbody);
    fuzz_put24(out + R + 9, nbody);
    return len - old + cookie_len;
}

#endif
