/* The retransmission timer of a DTLS association: the first timeout (1 s unless set),
 * doubled after each retransmission up to 60 s.
 *
 * On the system clock (the default) OpenSSL's own timer runs the schedule through the
 * timer callback, as it always has. On an application's clock (hsmtls_config_set_dtls_
 * clock) OpenSSL 3.0 cannot follow: its timer reads the system time itself. The library
 * then keeps the deadline and the doubling on that clock, gives OpenSSL a timeout it
 * never reaches on the system clock, and when its own deadline has passed makes
 * OpenSSL's timer expire at once (dgram_bio.c) before asking it to retransmit. */
#include "dtls_internal.h"

#include <openssl/err.h>

/* OpenSSL's timeout on an application's clock: an hour, never reached by a handshake
 * the application drives (and within OpenSSL's unsigned microseconds). */
#define FAR_US 3600000000u

static unsigned doubled(unsigned v, unsigned cap) { return v >= cap / 2 ? cap : v * 2; }

/* OpenSSL calls this with 0 when a flight's timer starts, and with the last timeout
 * when it retransmits; it answers the next timeout in microseconds. */
static unsigned int timer_cb(SSL *ssl, unsigned int us)
{
    hsmtls_dtls *d = hsmtls__dtls_of(ssl);
    struct hsmtls_dtls_timer *t = d ? &d->timer : NULL;
    unsigned first = t && t->first_ms ? t->first_ms : 1000;
    if (!t || !t->clock)
        return us == 0 ? first * 1000u : doubled(us, 60000000u);
    t->cur_ms = us == 0 ? first : doubled(t->cur_ms, 60000u);
    t->deadline = t->clock(t->clock_arg) + t->cur_ms;
    return FAR_US;
}

void hsmtls__dtls_timer_init(hsmtls_dtls *d, const hsmtls_config *cfg)
{
    d->timer = (struct hsmtls_dtls_timer){ .first_ms = 1000, .clock = cfg->dtls.clock,
                                           .clock_arg = cfg->dtls.clock_arg };
    DTLS_set_timer_cb(d->conn->ssl, timer_cb);
}

int hsmtls_dtls_set_retransmit_timeout(hsmtls_dtls *d, unsigned ms)
{
    if (ms < 10 || ms > 60000)
        return hsmtls__err_set(&d->err, "retransmission timeout %u ms: between 10 and 60000", ms);
    d->timer.first_ms = ms;
    return HSMTLS_OK;
}

long hsmtls_dtls_timeout_ms(const hsmtls_dtls *d)
{
    struct timeval tv;
    if (d->aborted || d->state == HSMTLS_DTLS_FAILED || !DTLSv1_get_timeout(d->conn->ssl, &tv))
        return -1;
    const struct hsmtls_dtls_timer *t = &d->timer;
    if (!t->clock)
        return (long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    uint64_t now = t->clock(t->clock_arg);
    return now >= t->deadline ? 0 : (long)(t->deadline - now);
}

int hsmtls_dtls_handle_timeout(hsmtls_dtls *d)
{
    if (hsmtls__dtls_usable(d, "handle timeout") != HSMTLS_OK)
        return HSMTLS_ERROR;
    ERR_clear_error();
    if (d->timer.clock) {
        struct timeval tv;
        const struct hsmtls_dtls_timer *t = &d->timer;
        if (!DTLSv1_get_timeout(d->conn->ssl, &tv) || t->clock(t->clock_arg) < t->deadline ||
            !hsmtls__dgram_bio_expire_timer(d->bio))
            return 0; /* nothing due */
    }
    int r = (int)DTLSv1_handle_timeout(d->conn->ssl);
    if (r >= 0)
        return r > 0 ? 1 : 0;
    d->state = HSMTLS_DTLS_FAILED;
    return hsmtls__err_ssl(&d->err, "DTLS: the peer did not answer (retransmissions exhausted)");
}
