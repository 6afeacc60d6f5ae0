/* The DTLS cookie verifier (lib/dtls_verifier.c) on any datagram: the input is one
 * datagram, checked as coming from an IPv4 and from an IPv6 peer. The rules: the answer is
 * 1 (a valid cookie, nothing to send) or 0 with a reply no larger than the datagram and
 * than the 300 bytes the API promises (no amplification), which, when there is one, is a
 * HelloVerifyRequest record. The secret is fixed, so a seed with the cookie for
 * 192.0.2.7:4433 (fuzz/corpus/fuzz_dtls_verifier/) is verified. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_dtls.h"
#include "hsmtls/dtls_verifier.h"
#include "hsmtls/error.h"

static hsmtls_dtls_verifier *verifier;
static struct sockaddr_in peer4;
static struct sockaddr_in6 peer6;

static void check(const uint8_t *data, size_t size, const struct sockaddr *peer, socklen_t len)
{
    unsigned char reply[300 + 64];
    memset(reply + 300, 0xA5, 64);
    size_t reply_len = 12345;
    int r = hsmtls_dtls_verifier_check(verifier, data, size, peer, len, reply, 300, &reply_len);
    FUZZ_CHECK(r == 0 || r == 1, "answer %d: %s", r, hsmtls_dtls_verifier_error(verifier));
    if (r == 1)
        FUZZ_CHECK(reply_len == 0, "verified, with %zu bytes to send", reply_len);
    FUZZ_CHECK(reply_len <= size && reply_len <= 300, "a reply of %zu bytes to a datagram of %zu",
               reply_len, size);
    for (int i = 0; i < 64; i++)
        FUZZ_CHECK(reply[300 + i] == 0xA5, "written past the reply buffer");
    if (reply_len)
        FUZZ_CHECK(reply_len >= 13 + 12 + 3 && reply[0] == 22 && reply[13] == 3,
                   "a reply that is no HelloVerifyRequest");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!verifier) {
        verifier = hsmtls_dtls_verifier_new();
        FUZZ_CHECK(verifier && hsmtls_dtls_verifier_set_secret(verifier, "SHA256", fuzz_dtls_secret,
                                                              sizeof fuzz_dtls_secret) == 0,
                   "verifier: %s", hsmtls_error_message());
        peer4 = fuzz_dtls_peer();
        peer6.sin6_family = AF_INET6;
        peer6.sin6_port = htons(4433);
        inet_pton(AF_INET6, "2001:db8::7", &peer6.sin6_addr);
    }
    check(data, size, (const struct sockaddr *)&peer4, sizeof peer4);
    check(data, size, (const struct sockaddr *)&peer6, sizeof peer6);
    return 0;
}
