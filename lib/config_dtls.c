/* The DTLS group: what DTLS associations take from the config beyond what TLS
 * connections do: a server's cookie exchange, and the clock their retransmission timers
 * run on (dtls_timer.c). Nothing of it goes into an SSL_CTX. */
#include "lib_internal.h"

#include <openssl/crypto.h>

/* Kept as "off" so a zeroed group has it on. */
int hsmtls_config_set_dtls_cookie_verification(hsmtls_config *cfg, int on)
{
    cfg->dtls.cookie_off = !on;
    return HSMTLS_OK;
}

int hsmtls_config_dtls_cookie_verification(const hsmtls_config *cfg) { return !cfg->dtls.cookie_off; }

int hsmtls_config_set_dtls_clock(hsmtls_config *cfg, hsmtls_clock_cb clock, void *arg)
{
    /* dtls_timer.c moves OpenSSL's timer through the pointer its BIO is handed, which
     * is OpenSSL's own deadline only before 3.2 */
    if (clock && (OPENSSL_VERSION_NUMBER >= 0x30200000L || OpenSSL_version_num() >= 0x30200000UL))
        return hsmtls__err_set(&cfg->err, "hsmtls_config_set_dtls_clock: not with OpenSSL %s (before 3.2 only)",
                               OpenSSL_version(OPENSSL_VERSION_STRING));
    cfg->dtls.clock = clock;
    cfg->dtls.clock_arg = clock ? arg : NULL;
    return HSMTLS_OK;
}

/* ---- the group ---- */

static int init(hsmtls_config *cfg)
{
    (void)cfg; /* cookies on, the system clock */
    return 0;
}

static int copy(hsmtls_config *dst, const hsmtls_config *src)
{
    dst->dtls = src->dtls; /* no pointers the config owns */
    return 0;
}

static void release(hsmtls_config *cfg) { (void)cfg; }

static int equal(const hsmtls_config *a, const hsmtls_config *b)
{
    return a->dtls.cookie_off == b->dtls.cookie_off && a->dtls.clock == b->dtls.clock &&
           a->dtls.clock_arg == b->dtls.clock_arg;
}

static int apply(const hsmtls_config *cfg, SSL_CTX *ctx, struct hsmtls_err *e)
{
    (void)cfg, (void)ctx, (void)e; /* the associations take it when made (dtls.c) */
    return HSMTLS_OK;
}

const struct hsmtls_cfg_group hsmtls__cfg_dtls = { "DTLS", init, copy, release, equal, apply };
