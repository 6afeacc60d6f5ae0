/* Unit tests of the stateless DTLS cookie exchange (lib/dtls_verifier.c) through
 * libhsmtls's public API (hsmtls/dtls_verifier.h), with no certificate, token or socket:
 * ClientHellos built here byte by byte and the library's own DTLS client in memory mode.
 * No cookie: a HelloVerifyRequest that echoes the record sequence number; the right
 * cookie: verified; a wrong cookie or another address or port: refused with a new
 * HelloVerifyRequest; truncated and garbage datagrams: no answer; and nothing is kept
 * between calls (another verifier with the same secret accepts the cookie). */
#include "check.h"
#include "hsmtls/config.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"
#include "hsmtls/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define REC 13 /* record header */
#define HS 12  /* handshake header */

static struct sockaddr_in v4(const char *ip, unsigned short port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, unsigned short port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

#define SA(a) ((const struct sockaddr *)&(a)), (socklen_t)sizeof(a)

static void put16(unsigned char *p, size_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put24(unsigned char *p, size_t v) { p[0] = (unsigned char)(v >> 16); put16(p + 1, v); }

/* A DTLS 1.2 ClientHello in one record: record sequence number `seq`, a session ID of
 * sid_len bytes, the cookie, two cipher suites, no compression, and `ext_len` bytes of
 * padding extension (0: no extensions). Returns the datagram's length. */
static size_t client_hello(unsigned char *out, uint64_t seq, size_t sid_len, const unsigned char *cookie,
                           size_t cookie_len, size_t ext_len)
{
    unsigned char *b = out + REC + HS, *p = b;
    *p++ = 0xFE, *p++ = 0xFD;
    memset(p, 0x11, 32), p += 32;
    *p++ = (unsigned char)sid_len;
    memset(p, 0x22, sid_len), p += sid_len;
    *p++ = (unsigned char)cookie_len;
    if (cookie_len)
        memcpy(p, cookie, cookie_len);
    p += cookie_len;
    put16(p, 4), p += 2;
    *p++ = 0xC0, *p++ = 0x2B, *p++ = 0x00, *p++ = 0xFF;
    *p++ = 1, *p++ = 0;
    if (ext_len) {
        put16(p, ext_len + 4), p += 2;
        put16(p, 0x0015), p += 2; /* padding */
        put16(p, ext_len), p += 2;
        memset(p, 0, ext_len), p += ext_len;
    }
    size_t body = (size_t)(p - b);
    unsigned char *h = out + REC;
    h[0] = 1;
    put24(h + 1, body);
    put16(h + 4, 0); /* message_seq */
    put24(h + 6, 0);
    put24(h + 9, body);
    out[0] = 22, out[1] = 0xFE, out[2] = 0xFD;
    put16(out + 3, 0); /* epoch */
    for (int i = 0; i < 6; i++)
        out[5 + i] = (unsigned char)(seq >> (8 * (5 - i)));
    put16(out + 11, HS + body);
    return REC + HS + body;
}

/* Checks a datagram; returns the verifier's answer, with the reply in reply and its
 * length in *reply_len. */
static int check_dg(hsmtls_dtls_verifier *v, const unsigned char *dg, size_t len, const struct sockaddr *peer,
                    socklen_t peerlen, unsigned char *reply, size_t *reply_len)
{
    *reply_len = 12345;
    return hsmtls_dtls_verifier_check(v, dg, len, peer, peerlen, reply, 300, reply_len);
}

/* The cookie inside a HelloVerifyRequest (checking its whole layout against the
 * ClientHello it answers); its length, 0 when the reply is not a well-formed one. */
static size_t hvr_cookie(const unsigned char *r, size_t len, const unsigned char *ch, unsigned char *cookie)
{
    if (len < REC + HS + 3)
        return 0;
    size_t clen = r[REC + HS + 2], body = 3 + clen;
    int ok = r[0] == 22 && r[1] == 0xFE && r[2] == 0xFF &&  /* DTLS 1.0 record version */
             memcmp(r + 3, ch + 3, 8) == 0 &&                /* epoch 0, the ClientHello's sequence */
             r[11] == ((HS + body) >> 8) && r[12] == (unsigned char)(HS + body) &&
             r[REC] == 3 &&                                  /* hello_verify_request */
             r[REC + 1] == 0 && r[REC + 2] == (body >> 8) && r[REC + 3] == (unsigned char)body &&
             r[REC + 4] == 0 && r[REC + 5] == 0 &&           /* message_seq 0 */
             r[REC + 6] == 0 && r[REC + 7] == 0 && r[REC + 8] == 0 &&
             r[REC + 9] == 0 && r[REC + 10] == (body >> 8) && r[REC + 11] == (unsigned char)body &&
             r[REC + HS] == 0xFE && r[REC + HS + 1] == 0xFF && /* server_version DTLS 1.0 */
             len == REC + HS + body;
    if (!ok)
        return 0;
    memcpy(cookie, r + REC + HS + 3, clen);
    return clen;
}

/* The cookie the verifier wants from `peer`, taken from its answer to a cookieless hello. */
static size_t cookie_for(hsmtls_dtls_verifier *v, const struct sockaddr *peer, socklen_t peerlen,
                         unsigned char *cookie)
{
    unsigned char ch[512], reply[300];
    size_t n = client_hello(ch, 0, 0, NULL, 0, 16), rl;
    if (check_dg(v, ch, n, peer, peerlen, reply, &rl) != 0)
        return 0;
    return hvr_cookie(reply, rl, ch, cookie);
}

static void test_defaults(void)
{
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    CHECK_MSG(v != NULL, hsmtls_error_message());
    if (!v)
        return;
    CHECK(strcmp(hsmtls_dtls_verifier_digest(v), "SHA256") == 0);
    CHECK(strcmp(hsmtls_dtls_verifier_error(v), "") == 0);
    hsmtls_dtls_verifier_free(v);
    hsmtls_dtls_verifier_free(NULL);
}

static void test_no_cookie_then_cookie(void)
{
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in peer = v4("192.0.2.7", 4433);
    unsigned char ch[512], reply[300], cookie[64];
    size_t rl;
    /* sequence numbers in the record header come back as they were sent */
    static const uint64_t seqs[] = { 0, 1, 0x0102030405ull, 0xFFFFFFFFFFFFull };
    size_t first_len = 0;
    unsigned char first[64];
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        size_t n = client_hello(ch, seqs[i], i, NULL, 0, 0);
        CHECK(check_dg(v, ch, n, SA(peer), reply, &rl) == 0);
        size_t clen = hvr_cookie(reply, rl, ch, cookie);
        CHECK_MSG(clen == 32, "a HelloVerifyRequest with a 32-byte cookie (SHA256)");
        CHECK(rl == REC + HS + 3 + 32 && rl <= n);
        /* the same peer gets the same cookie whatever its hello says */
        if (i == 0) {
            memcpy(first, cookie, clen);
            first_len = clen;
        } else {
            CHECK(clen == first_len && memcmp(cookie, first, clen) == 0);
        }
    }
    /* the cookie is accepted, in any hello from that peer, with no answer to send */
    for (size_t sid = 0; sid <= 32; sid += 16) {
        size_t n = client_hello(ch, 1, sid, first, first_len, sid);
        CHECK(check_dg(v, ch, n, SA(peer), reply, &rl) == 1 && rl == 0);
    }
    /* answering does not change the answer */
    size_t n = client_hello(ch, 9, 0, first, first_len, 0);
    for (int i = 0; i < 3; i++)
        CHECK(check_dg(v, ch, n, SA(peer), reply, &rl) == 1 && rl == 0);
    CHECK(strcmp(hsmtls_dtls_verifier_error(v), "") == 0);
    hsmtls_dtls_verifier_free(v);
}

/* A refused hello gets a HelloVerifyRequest carrying the cookie that peer should send. */
static void expect_refused(hsmtls_dtls_verifier *v, const unsigned char *ch, size_t n,
                           const struct sockaddr *peer, socklen_t peerlen, const char *what)
{
    unsigned char reply[300], got[64], want[64];
    size_t rl;
    int r = check_dg(v, ch, n, peer, peerlen, reply, &rl);
    size_t glen = r == 0 ? hvr_cookie(reply, rl, ch, got) : 0;
    size_t wlen = cookie_for(v, peer, peerlen, want);
    CHECK_MSG(r == 0 && glen > 0 && glen == wlen && memcmp(got, want, glen) == 0, what);
}

static void test_wrong_cookie_and_peer(void)
{
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in a = v4("192.0.2.7", 4433), port = v4("192.0.2.7", 4434), addr = v4("192.0.2.8", 4433);
    struct sockaddr_in6 a6 = v6("2001:db8::7", 4433), port6 = v6("2001:db8::7", 4434);
    struct sockaddr_in6 addr6 = v6("2001:db8::8", 4433), mapped = v6("::ffff:192.0.2.7", 4433);
    unsigned char ch[512], cookie[64], bad[64];
    size_t clen = cookie_for(v, SA(a), cookie), n;
    CHECK(clen == 32);

    n = client_hello(ch, 1, 0, cookie, clen, 0);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a), (unsigned char[300]){ 0 }, 300, &(size_t){ 0 }) == 1);
    expect_refused(v, ch, n, SA(port), "the cookie from another port");
    expect_refused(v, ch, n, SA(addr), "the cookie from another address");
    expect_refused(v, ch, n, SA(a6), "the cookie from an IPv6 address");
    expect_refused(v, ch, n, SA(mapped), "the cookie from the IPv4-mapped IPv6 address");

    for (size_t bit = 0; bit < clen * 8; bit += 37) {
        memcpy(bad, cookie, clen);
        bad[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        n = client_hello(ch, 1, 0, bad, clen, 0);
        expect_refused(v, ch, n, SA(a), "a cookie with one bit flipped");
    }
    n = client_hello(ch, 1, 0, cookie, clen - 1, 0);
    expect_refused(v, ch, n, SA(a), "the cookie without its last byte");
    memcpy(bad, cookie, clen);
    bad[clen] = 0;
    n = client_hello(ch, 1, 0, bad, clen + 1, 0);
    expect_refused(v, ch, n, SA(a), "the cookie with a byte more");
    n = client_hello(ch, 1, 0, NULL, 0, 0);
    expect_refused(v, ch, n, SA(a), "no cookie");

    /* IPv6 peers get cookies of their own */
    unsigned char c6[64];
    size_t c6len = cookie_for(v, SA(a6), c6);
    CHECK(c6len == 32 && memcmp(c6, cookie, 32) != 0);
    n = client_hello(ch, 1, 0, c6, c6len, 0);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a6), (unsigned char[300]){ 0 }, 300, &(size_t){ 0 }) == 1);
    expect_refused(v, ch, n, SA(port6), "an IPv6 cookie from another port");
    expect_refused(v, ch, n, SA(addr6), "an IPv6 cookie from another address");
    expect_refused(v, ch, n, SA(a), "an IPv6 cookie from IPv4");
    hsmtls_dtls_verifier_free(v);
}

/* Datagrams that are not a whole DTLS ClientHello get no answer and change nothing. */
static void test_no_answer(void)
{
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in a = v4("192.0.2.7", 4433);
    unsigned char ch[512], dg[512], reply[300], cookie[64];
    size_t rl, clen = cookie_for(v, SA(a), cookie);
    size_t n = client_hello(ch, 5, 8, cookie, clen, 24);
    CHECK(check_dg(v, ch, n, SA(a), reply, &rl) == 1);

    /* every truncation of a valid hello (ASan checks the reads) */
    int all_quiet = 1;
    for (size_t len = 0; len < n; len++) {
        unsigned char *copy = malloc(len ? len : 1);
        memcpy(copy, ch, len);
        if (check_dg(v, copy, len, SA(a), reply, &rl) != 0 || rl != 0)
            all_quiet = 0;
        free(copy);
    }
    CHECK_MSG(all_quiet, "a truncated ClientHello gets no answer");
    CHECK(check_dg(v, NULL, 0, SA(a), reply, &rl) == 0 && rl == 0);

    /* one field wrong at a time */
    static const struct { size_t at; unsigned char value; const char *what; } fields[] = {
        { 0, 23, "application data record" }, { 0, 21, "alert record" },
        { 1, 0x03, "TLS record version" }, { 4, 1, "epoch 1" },
        { REC, 2, "ServerHello" }, { REC, 3, "HelloVerifyRequest" },
        { REC + 8, 1, "fragment offset 1" }, /* a fragment: not a whole hello */
        { REC + 11, 0, "fragment length differs from the message length" },
        { REC + HS + 34, 33, "session ID of 33 bytes" },
        { REC + HS + 34 + 1 + 8, 250, "a cookie running past the message" },
        { REC + 1, 0x7f, "message length beyond the record" },
        { 11, 0xff, "record length beyond the datagram" },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(dg, ch, n);
        dg[fields[i].at] = fields[i].value;
        int r = check_dg(v, dg, n, SA(a), reply, &rl);
        CHECK_MSG(r == 0 && rl == 0, fields[i].what);
    }
    /* a record length shorter than a handshake header */
    memcpy(dg, ch, n);
    put16(dg + 11, HS - 1);
    CHECK(check_dg(v, dg, n, SA(a), reply, &rl) == 0 && rl == 0);
    /* no room after the cookie for the cipher suites' length */
    size_t short_len = client_hello(dg, 0, 0, NULL, 0, 0);
    size_t body = 2 + 32 + 1 + 1 + 1; /* one byte after the empty cookie */
    put24(dg + REC + 1, body);
    put24(dg + REC + 9, body);
    put16(dg + 11, HS + body);
    CHECK(check_dg(v, dg, REC + HS + body, SA(a), reply, &rl) == 0 && rl == 0);
    (void)short_len;

    /* garbage of every size */
    uint32_t x = 0x2545F491u;
    for (size_t len = 1; len < 400; len += 3) {
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            dg[i] = (unsigned char)x;
        }
        int r = check_dg(v, dg, len, SA(a), reply, &rl);
        CHECK(r == 0 && rl <= len);
    }
    /* datagrams that look like a hello but for random bytes in it: an answer, when
     * there is one, is never larger than what it answers */
    for (int round = 0; round < 2000; round++) {
        memcpy(dg, ch, n);
        for (int f = 0; f < 2; f++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            dg[x % n] = (unsigned char)(x >> 8);
        }
        int r = check_dg(v, dg, n, SA(a), reply, &rl);
        CHECK(r >= 0 && rl <= n && (r == 0 || rl == 0));
    }

    /* and nothing of that was kept: the cookie still verifies, a cookieless hello still
     * gets the same cookie */
    CHECK(check_dg(v, ch, n, SA(a), reply, &rl) == 1 && rl == 0);
    unsigned char again[64];
    CHECK(cookie_for(v, SA(a), again) == clen && memcmp(again, cookie, clen) == 0);

    /* a reply buffer too small for the HelloVerifyRequest: no answer */
    n = client_hello(ch, 0, 0, NULL, 0, 0);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a), reply, REC + HS + 3 + 31, &rl) == 0 && rl == 0);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a), reply, REC + HS + 3 + 32, &rl) == 0 &&
          rl == REC + HS + 3 + 32);
    hsmtls_dtls_verifier_free(v);
}

static void test_bad_arguments(void)
{
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    struct sockaddr_in a = v4("192.0.2.7", 4433);
    unsigned char ch[512], reply[300];
    size_t rl = 0, n = client_hello(ch, 0, 0, NULL, 0, 0);
    CHECK(hsmtls_dtls_verifier_check(NULL, ch, n, SA(a), reply, sizeof reply, &rl) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_verifier_check(v, NULL, n, SA(a), reply, sizeof reply, &rl) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_dtls_verifier_error(v), "bad arguments"));
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, NULL, 0, reply, sizeof reply, &rl) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a), NULL, sizeof reply, &rl) == HSMTLS_ERROR);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(a), reply, sizeof reply, NULL) == HSMTLS_ERROR);

    /* a peer that is no IP address (or is cut short) has no cookie */
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof un.sun_path, "/tmp/peer");
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, SA(un), reply, sizeof reply, &rl) == HSMTLS_ERROR);
    CHECK_MSG(check_contains(hsmtls_dtls_verifier_error(v), "cannot compute a cookie"), hsmtls_dtls_verifier_error(v));
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, (struct sockaddr *)&a, sizeof a - 1, reply, sizeof reply, &rl) ==
          HSMTLS_ERROR);
    struct sockaddr_in6 a6 = v6("::1", 1);
    CHECK(hsmtls_dtls_verifier_check(v, ch, n, (struct sockaddr *)&a6, sizeof(struct sockaddr_in), reply,
                                     sizeof reply, &rl) == HSMTLS_ERROR);
    hsmtls_dtls_verifier_free(v);
}

static void test_secret_and_digest(void)
{
    static const unsigned char secret[] = "a secret of the unit test, 40 bytes long";
    hsmtls_dtls_verifier *v1 = hsmtls_dtls_verifier_new(), *v2 = hsmtls_dtls_verifier_new();
    hsmtls_dtls_verifier *dflt = hsmtls_dtls_verifier_new();
    struct sockaddr_in a = v4("198.51.100.1", 5684);
    unsigned char ch[512], c1[64], c2[64], cd[64], reply[300];
    size_t rl;

    /* two verifiers with the library-wide default secret agree: nothing is per object */
    size_t l1 = cookie_for(v1, SA(a), c1), l2 = cookie_for(v2, SA(a), c2);
    CHECK(l1 == 32 && l2 == 32 && memcmp(c1, c2, 32) == 0);
    memcpy(cd, c1, 32);

    /* one with a secret of its own refuses the default cookie; another with the same
     * secret and digest accepts its cookies */
    CHECK(hsmtls_dtls_verifier_set_secret(v1, "SHA256", secret, sizeof secret - 1) == 0);
    CHECK(hsmtls_dtls_verifier_set_secret(v2, "SHA256", secret, sizeof secret - 1) == 0);
    size_t n = client_hello(ch, 1, 0, cd, 32, 0);
    expect_refused(v1, ch, n, SA(a), "the default secret's cookie under another secret");
    CHECK(check_dg(dflt, ch, n, SA(a), reply, &rl) == 1);
    l1 = cookie_for(v1, SA(a), c1);
    CHECK(l1 == 32 && memcmp(c1, cd, 32) != 0);
    n = client_hello(ch, 1, 0, c1, l1, 0);
    CHECK(check_dg(v2, ch, n, SA(a), reply, &rl) == 1 && rl == 0);
    expect_refused(dflt, ch, n, SA(a), "a set secret's cookie under the default secret");

    /* digests: the cookie is the HMAC, cut to 32 bytes */
    static const struct { const char *digest; size_t len; } digests[] = {
        { "SHA1", 20 }, { "SHA224", 28 }, { "SHA256", 32 }, { "SHA384", 32 }, { "SHA512", 32 },
        { "SHA3-256", 32 }, { "MD5", 16 },
    };
    unsigned char prev[64];
    size_t prev_len = 0;
    for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++) {
        int r = hsmtls_dtls_verifier_set_secret(v1, digests[i].digest, secret, sizeof secret - 1);
        CHECK_MSG(r == 0, hsmtls_dtls_verifier_error(v1));
        CHECK(strcmp(hsmtls_dtls_verifier_digest(v1), digests[i].digest) == 0);
        l1 = cookie_for(v1, SA(a), c1);
        CHECK_MSG(l1 == digests[i].len, digests[i].digest);
        CHECK(prev_len == 0 || l1 != prev_len || memcmp(c1, prev, l1) != 0);
        n = client_hello(ch, 2, 0, c1, l1, 0);
        CHECK(check_dg(v1, ch, n, SA(a), reply, &rl) == 1);
        /* the same secret under SHA256 does not take it */
        CHECK(hsmtls_dtls_verifier_set_secret(v2, strcmp(digests[i].digest, "SHA256") ? "SHA256" : "SHA384",
                                              secret, sizeof secret - 1) == 0);
        expect_refused(v2, ch, n, SA(a), "a cookie under another digest");
        memcpy(prev, c1, l1);
        prev_len = l1;
    }

    /* secrets of 1 and 256 bytes; a secret differing in its last byte */
    unsigned char big[256];
    memset(big, 0x5a, sizeof big);
    CHECK(hsmtls_dtls_verifier_set_secret(v1, "SHA256", big, 1) == 0);
    CHECK(hsmtls_dtls_verifier_set_secret(v1, "SHA256", big, sizeof big) == 0);
    CHECK(hsmtls_dtls_verifier_set_secret(v2, "SHA256", big, sizeof big) == 0);
    l1 = cookie_for(v1, SA(a), c1);
    big[255] ^= 1;
    CHECK(hsmtls_dtls_verifier_set_secret(v2, "SHA256", big, sizeof big) == 0);
    n = client_hello(ch, 3, 0, c1, l1, 0);
    CHECK(check_dg(v1, ch, n, SA(a), reply, &rl) == 1);
    expect_refused(v2, ch, n, SA(a), "a secret one bit apart");

    /* refused settings leave the verifier as it was */
    static const struct { const char *digest; size_t len; const char *what; } bad[] = {
        { NULL, 16, "a digest name is needed" },
        { "", 16, "a digest name is needed" },
        { "SHA256-with-a-name-far-too-long-for-the-field-of-the-verifier", 16, "a digest name is needed" },
        { "SHA256", 0, "1 to 256 bytes" },
        { "SHA256", 257, "1 to 256 bytes" },
        { "NO-SUCH-DIGEST", 16, "unknown digest \"NO-SUCH-DIGEST\"" },
    };
    unsigned char secret257[257];
    memset(secret257, 1, sizeof secret257);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(hsmtls_dtls_verifier_set_secret(v1, bad[i].digest, secret257, bad[i].len) == HSMTLS_ERROR);
        CHECK_MSG(check_contains(hsmtls_dtls_verifier_error(v1), bad[i].what), hsmtls_dtls_verifier_error(v1));
        CHECK(strcmp(hsmtls_dtls_verifier_digest(v1), "SHA256") == 0);
        CHECK(check_dg(v1, ch, n, SA(a), reply, &rl) == 1);
    }
    CHECK(hsmtls_dtls_verifier_set_secret(v1, "SHA256", NULL, 16) == HSMTLS_ERROR);
    hsmtls_dtls_verifier_free(v1);
    hsmtls_dtls_verifier_free(v2);
    hsmtls_dtls_verifier_free(dflt);
}

/* The library's own DTLS client (memory mode, no certificate needed to start): its
 * first hello is answered, its second (with the cookie) is verified, and each
 * HelloVerifyRequest echoes the sequence number of the hello it answers. */
static void test_real_client(void)
{
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_CLIENT);
    hsmtls_dtls *cl = cfg ? hsmtls_dtls_new(cfg) : NULL;
    CHECK_MSG(cl != NULL, hsmtls_error_message());
    if (!cl) {
        hsmtls_config_free(cfg);
        return;
    }
    struct sockaddr_in server = v4("127.0.0.1", 4433), me = v4("127.0.0.1", 50000);
    CHECK(hsmtls_dtls_set_peer(cl, SA(server), "localhost") == 0);
    hsmtls_dtls_verifier *v = hsmtls_dtls_verifier_new();
    unsigned char ch[HSMTLS_DTLS_MAX_DATAGRAM], reply[300], cookie[64];
    size_t rl;
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    int n = hsmtls_dtls_take(cl, ch, sizeof ch);
    CHECK(n > REC + HS);
    if (n <= REC + HS)
        goto done;
    CHECK(check_dg(v, ch, (size_t)n, SA(me), reply, &rl) == 0);
    size_t clen = hvr_cookie(reply, rl, ch, cookie);
    CHECK(clen == 32 && rl <= (size_t)n);
    CHECK(hsmtls_dtls_handshake(cl, reply, rl) == HSMTLS_WANT_READ);
    unsigned char ch2[HSMTLS_DTLS_MAX_DATAGRAM];
    int n2 = hsmtls_dtls_take(cl, ch2, sizeof ch2);
    CHECK(n2 > n); /* the cookie is in it */
    if (n2 <= 0)
        goto done;
    CHECK(memcmp(ch2 + 5, ch + 5, 6) != 0); /* a later record sequence number */
    CHECK(check_dg(v, ch2, (size_t)n2, SA(me), reply, &rl) == 1 && rl == 0);
    /* from another port it is answered again, echoing the second hello's number */
    struct sockaddr_in other = v4("127.0.0.1", 50001);
    CHECK(check_dg(v, ch2, (size_t)n2, SA(other), reply, &rl) == 0);
    unsigned char c2[64];
    CHECK(hvr_cookie(reply, rl, ch2, c2) == 32 && memcmp(c2, cookie, 32) != 0);
done:
    hsmtls_dtls_verifier_free(v);
    hsmtls_dtls_free(cl);
    hsmtls_config_free(cfg);
}

int main(void)
{
    test_defaults();
    test_no_cookie_then_cookie();
    test_wrong_cookie_and_peer();
    test_no_answer();
    test_bad_arguments();
    test_secret_and_digest();
    test_real_client();
    return check_finish();
}
