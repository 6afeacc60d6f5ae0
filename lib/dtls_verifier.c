/* hsmtls_dtls_verifier: the stateless cookie exchange. A ClientHello is parsed with
 * bounds checks only as far as its cookie; the cookie is an HMAC of the peer's address
 * and port, so nothing is kept between the HelloVerifyRequest and the second
 * ClientHello. The HelloVerifyRequest is built here (RFC 6347 4.2.1: DTLS 1.0 version
 * numbers, the ClientHello's record sequence number) and never sent when it would be
 * larger than what it answers. */
#include "dtls_internal.h"
#include "lib_internal.h"
#include "hsmtls/dtls_verifier.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

struct hsmtls_dtls_verifier {
    struct hsmtls_cookie_params params;
    struct hsmtls_err err;
};

static struct hsmtls_cookie_params default_params;
static int default_ok;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    strcpy(default_params.digest, "SHA256");
    default_params.secret_len = 32;
    default_ok = RAND_bytes(default_params.secret, 32) == 1;
}

const struct hsmtls_cookie_params *hsmtls__cookie_default(void)
{
    pthread_once(&default_once, make_default);
    return default_ok ? &default_params : NULL;
}

size_t hsmtls__cookie(const struct hsmtls_cookie_params *p, const struct sockaddr *peer, socklen_t peerlen,
                      unsigned char *out)
{
    unsigned char msg[1 + 16 + 2];
    size_t n = 0;
    if (!p || !peer)
        return 0;
    if (peer->sa_family == AF_INET && peerlen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
        msg[n++] = 4;
        memcpy(msg + n, &a->sin_addr, 4);
        n += 4;
        memcpy(msg + n, &a->sin_port, 2);
        n += 2;
    } else if (peer->sa_family == AF_INET6 && peerlen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
        msg[n++] = 6;
        memcpy(msg + n, &a->sin6_addr, 16);
        n += 16;
        memcpy(msg + n, &a->sin6_port, 2);
        n += 2;
    } else {
        return 0;
    }
    OSSL_LIB_CTX *lc = hsmtls__libctx(NULL);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    if (!lc || !EVP_Q_mac(lc, "HMAC", NULL, p->digest, NULL, p->secret, p->secret_len, msg, n, mac, sizeof mac,
                          &maclen))
        return 0;
    if (maclen > HSMTLS_COOKIE_MAX)
        maclen = HSMTLS_COOKIE_MAX;
    memcpy(out, mac, maclen);
    OPENSSL_cleanse(mac, sizeof mac);
    return maclen;
}

hsmtls_dtls_verifier *hsmtls_dtls_verifier_new(void)
{
    const struct hsmtls_cookie_params *d = hsmtls__cookie_default();
    if (!d) {
        hsmtls__err_set(NULL, "hsmtls_dtls_verifier_new: no random secret");
        return NULL;
    }
    hsmtls_dtls_verifier *v = calloc(1, sizeof *v);
    if (!v) {
        hsmtls__err_set(NULL, "out of memory");
        return NULL;
    }
    v->params = *d;
    return v;
}

void hsmtls_dtls_verifier_free(hsmtls_dtls_verifier *v)
{
    if (!v)
        return;
    hsmtls__err_free(&v->err);
    OPENSSL_cleanse(v, sizeof *v);
    free(v);
}

const char *hsmtls_dtls_verifier_error(const hsmtls_dtls_verifier *v) { return v ? hsmtls__err_message(&v->err) : hsmtls_error_message(); }
const char *hsmtls_dtls_verifier_digest(const hsmtls_dtls_verifier *v) { return v->params.digest; }

int hsmtls_dtls_verifier_set_secret(hsmtls_dtls_verifier *v, const char *digest, const void *secret, size_t len)
{
    if (!digest || !*digest || strlen(digest) >= sizeof v->params.digest)
        return hsmtls__err_set(&v->err, "cookie secret: a digest name is needed");
    if (!secret || len == 0 || len > sizeof v->params.secret)
        return hsmtls__err_set(&v->err, "cookie secret: 1 to %zu bytes", sizeof v->params.secret);
    OSSL_LIB_CTX *lc = hsmtls__libctx(&v->err);
    if (!lc)
        return HSMTLS_ERROR;
    EVP_MD *md = EVP_MD_fetch(lc, digest, NULL);
    if (!md)
        return hsmtls__err_ssl(&v->err, "cookie secret: unknown digest \"%s\"", hsmtls__short(digest).s);
    int size = EVP_MD_get_size(md);
    EVP_MD_free(md);
    if (size < 16)
        return hsmtls__err_set(&v->err, "cookie secret: digest \"%s\" is too short for cookies", digest);
    snprintf(v->params.digest, sizeof v->params.digest, "%s", digest);
    memcpy(v->params.secret, secret, len);
    v->params.secret_len = len;
    return HSMTLS_OK;
}

/* Used by dtls.c. */
const struct hsmtls_cookie_params *hsmtls__verifier_params(const hsmtls_dtls_verifier *v)
{
    return &v->params;
}

static unsigned get16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long get24(const unsigned char *p) { return (unsigned long)p[0] << 16 | (unsigned long)p[1] << 8 | p[2]; }

#define REC_HDR 13
#define HS_HDR 12

int hsmtls_dtls_verifier_check(hsmtls_dtls_verifier *v, const void *datagram, size_t len,
                               const struct sockaddr *peer, socklen_t peerlen, void *reply, size_t reply_size,
                               size_t *reply_len)
{
    if (!v || !reply_len || (!datagram && len) || !peer || !reply)
        return v ? hsmtls__err_set(&v->err, "hsmtls_dtls_verifier_check: bad arguments") : HSMTLS_ERROR;
    *reply_len = 0;
    const unsigned char *p = datagram;
    /* record: type 22 (handshake), a DTLS version, epoch 0, one whole record */
    if (len < REC_HDR + HS_HDR || p[0] != 22 || p[1] != 0xFE || get16(p + 3) != 0)
        return 0;
    size_t rlen = get16(p + 11);
    if (REC_HDR + rlen > len || rlen < HS_HDR)
        return 0;
    const unsigned char *h = p + REC_HDR;
    /* handshake: ClientHello, not fragmented */
    unsigned long mlen = get24(h + 1), foff = get24(h + 6), flen = get24(h + 9);
    if (h[0] != 1 || foff != 0 || flen != mlen || HS_HDR + mlen > rlen)
        return 0;
    const unsigned char *b = h + HS_HDR, *end = b + mlen;
    /* client_version, random, session_id, cookie */
    if (end - b < 2 + 32 + 1)
        return 0;
    b += 2 + 32;
    size_t sid = *b++;
    if (sid > 32 || (size_t)(end - b) < sid + 1)
        return 0;
    b += sid;
    size_t clen = *b++;
    if ((size_t)(end - b) < clen + 2) /* the cipher suites' length follows */
        return 0;
    unsigned char want[HSMTLS_COOKIE_MAX];
    size_t wlen = hsmtls__cookie(&v->params, peer, peerlen, want);
    if (wlen == 0)
        return hsmtls__err_set(&v->err, "cannot compute a cookie for this peer address");
    if (clen == wlen && CRYPTO_memcmp(b, want, wlen) == 0)
        return 1;
    /* HelloVerifyRequest */
    size_t body = 2 + 1 + wlen, total = REC_HDR + HS_HDR + body;
    if (total > len || total > reply_size)
        return 0;
    unsigned char *r = reply;
    r[0] = 22;
    r[1] = 0xFE;
    r[2] = 0xFF;
    memcpy(r + 3, p + 3, 8); /* epoch 0 and the ClientHello's record sequence number */
    r[11] = (unsigned char)((HS_HDR + body) >> 8);
    r[12] = (unsigned char)(HS_HDR + body);
    unsigned char *q = r + REC_HDR;
    q[0] = 3; /* hello_verify_request */
    q[1] = 0;
    q[2] = (unsigned char)(body >> 8);
    q[3] = (unsigned char)body;
    q[4] = 0; /* message_seq 0 */
    q[5] = 0;
    memset(q + 6, 0, 3); /* fragment_offset */
    q[9] = 0;
    q[10] = (unsigned char)(body >> 8);
    q[11] = (unsigned char)body;
    q += HS_HDR;
    q[0] = 0xFE;
    q[1] = 0xFF;
    q[2] = (unsigned char)wlen;
    memcpy(q + 3, want, wlen);
    *reply_len = total;
    return 0;
}
