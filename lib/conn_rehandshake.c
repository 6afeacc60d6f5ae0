/* New handshakes on an established connection: TLS 1.3 post-handshake client
 * authentication (the server asks for the client's certificate) and TLS 1.2
 * renegotiation. Both send their first message now; the peer's answer arrives with the
 * next read, which completes them. */
#include "lib_internal.h"

#include <errno.h>

/* Pushes the first message out; waiting for the peer is expected, anything else fails. */
static int sent(hsmtls_conn *conn, const char *what)
{
    errno = 0;
    int r = SSL_do_handshake(conn->ssl);
    if (r > 0)
        return HSMTLS_OK;
    int st = hsmtls__status_of(SSL_get_error(conn->ssl, r), ERR_peek_error(), errno);
    if (st == HSMTLS_WANT_READ || st == HSMTLS_WANT_WRITE)
        return HSMTLS_OK;
    return hsmtls__err_ssl(&conn->err, "%s", what);
}

int hsmtls_conn_request_client_cert(hsmtls_conn *conn)
{
    if (conn->role != HSMTLS_SERVER)
        return hsmtls__err_set(&conn->err, "post-handshake authentication: only a server asks");
    if (!SSL_is_init_finished(conn->ssl) || SSL_version(conn->ssl) != TLS1_3_VERSION)
        return hsmtls__err_set(&conn->err, "post-handshake authentication: needs an established TLS 1.3 connection");
    ERR_clear_error();
    if (!SSL_verify_client_post_handshake(conn->ssl))
        return hsmtls__err_ssl(&conn->err, "post-handshake authentication refused (the client must offer it: "
                                "hsmtls_config_set_post_handshake_auth)");
    /* what was known of the peer may change with the certificate to come */
    hsmtls__conn_clear_info(conn);
    /* the request goes out now; the answer arrives with the next read */
    return sent(conn, "post-handshake authentication: cannot send the request");
}

int hsmtls_conn_renegotiate(hsmtls_conn *conn)
{
    if (!SSL_is_init_finished(conn->ssl) || SSL_version(conn->ssl) != TLS1_2_VERSION)
        return hsmtls__err_set(&conn->err, "renegotiation: needs an established TLS 1.2 connection");
    if (!conn->cfg->proto.renegotiation)
        return hsmtls__err_set(&conn->err, "renegotiation is off (hsmtls_config_set_renegotiation)");
    ERR_clear_error();
    if (!SSL_renegotiate(conn->ssl))
        return hsmtls__err_ssl(&conn->err, "renegotiation refused");
    hsmtls__conn_clear_info(conn);
    return sent(conn, "renegotiation failed");
}

int hsmtls_conn_renegotiate_pending(const hsmtls_conn *conn)
{
    return SSL_renegotiate_pending(conn->ssl);
}
