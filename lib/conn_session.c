/* Sessions kept as bytes (DER), so a client can resume across processes (openssl's
 * s_client -sess_out / -sess_in), and what a session says about its ticket. */
#include "lib_internal.h"

#include <limits.h>
#include <string.h>

int hsmtls_session_save(const hsmtls_session *sess, void *buf, size_t size)
{
    if (!sess)
        return hsmtls__err_set(NULL, "hsmtls_session_save: no session");
    int n = i2d_SSL_SESSION((SSL_SESSION *)sess, NULL);
    if (n <= 0)
        return hsmtls__err_ssl(NULL, "hsmtls_session_save: cannot encode the session");
    if (!buf)
        return n;
    if (size < (size_t)n)
        return hsmtls__err_set(NULL, "hsmtls_session_save: %d bytes needed, %zu given", n, size);
    unsigned char *p = buf;
    return i2d_SSL_SESSION((SSL_SESSION *)sess, &p);
}

hsmtls_session *hsmtls_session_load(const void *data, size_t len)
{
    if (!hsmtls__libctx(NULL))
        return NULL;
    if (!data || len == 0 || len > LONG_MAX) {
        hsmtls__err_set(NULL, "hsmtls_session_load: no bytes");
        return NULL;
    }
    ERR_clear_error();
    const unsigned char *p = data;
    SSL_SESSION *s = d2i_SSL_SESSION(NULL, &p, (long)len); /* 3.0 has no _ex; ciphers are found by id */
    if (!s) {
        hsmtls__err_ssl(NULL, "hsmtls_session_load: not a TLS session");
        return NULL;
    }
    return (hsmtls_session *)s;
}

int hsmtls_session_up_ref(hsmtls_session *sess)
{
    return sess && SSL_SESSION_up_ref((SSL_SESSION *)sess) ? HSMTLS_OK : HSMTLS_ERROR;
}

int hsmtls_session_has_ticket(const hsmtls_session *sess)
{
    return sess && SSL_SESSION_has_ticket((const SSL_SESSION *)sess);
}

unsigned long hsmtls_session_ticket_lifetime_hint(const hsmtls_session *sess)
{
    return sess ? SSL_SESSION_get_ticket_lifetime_hint((const SSL_SESSION *)sess) : 0;
}

int hsmtls_session_version(const hsmtls_session *sess)
{
    return sess ? SSL_SESSION_get_protocol_version((const SSL_SESSION *)sess) : 0;
}
