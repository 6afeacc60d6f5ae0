/* More of the connection: post-handshake client authentication (TLS 1.3), TLS 1.2
 * renegotiation, and the CA names a server sent to the client. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

int hsmtls_conn_request_client_cert(hsmtls_conn *conn)
{
    if (conn->role != HSMTLS_SERVER)
        return hsmtls__fail(conn->err, "post-handshake authentication: only a server asks");
    if (!SSL_is_init_finished(conn->ssl) || SSL_version(conn->ssl) != TLS1_3_VERSION)
        return hsmtls__fail(conn->err, "post-handshake authentication: needs an established TLS 1.3 connection");
    ERR_clear_error();
    if (!SSL_verify_client_post_handshake(conn->ssl))
        return hsmtls__fail_ssl(conn->err, "post-handshake authentication refused (the client must offer it: "
                                "hsmtls_config_set_post_handshake_auth)");
    /* what was known of the peer may change with the certificate to come */
    hsmtls__conn_clear_info(conn);
    /* the request goes out now; the answer arrives with the next read */
    int r = SSL_do_handshake(conn->ssl);
    if (r <= 0) {
        int e = SSL_get_error(conn->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return hsmtls__fail_ssl(conn->err, "post-handshake authentication: cannot send the request");
    }
    return HSMTLS_OK;
}

int hsmtls_conn_renegotiate(hsmtls_conn *conn)
{
    if (!SSL_is_init_finished(conn->ssl) || SSL_version(conn->ssl) != TLS1_2_VERSION)
        return hsmtls__fail(conn->err, "renegotiation: needs an established TLS 1.2 connection");
    if (!conn->cfg->renegotiation)
        return hsmtls__fail(conn->err, "renegotiation is off (hsmtls_config_set_renegotiation)");
    ERR_clear_error();
    if (!SSL_renegotiate(conn->ssl))
        return hsmtls__fail_ssl(conn->err, "renegotiation refused");
    hsmtls__conn_clear_info(conn);
    int r = SSL_do_handshake(conn->ssl);
    if (r <= 0) {
        int e = SSL_get_error(conn->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return hsmtls__fail_ssl(conn->err, "renegotiation failed");
    }
    return HSMTLS_OK;
}

int hsmtls_conn_renegotiate_pending(const hsmtls_conn *conn)
{
    return SSL_renegotiate_pending(conn->ssl);
}

static void make_peer_ca(hsmtls_conn *conn)
{
    if (conn->peer_ca_made || conn->role != HSMTLS_CLIENT)
        return;
    const STACK_OF(X509_NAME) *sk = SSL_get0_peer_CA_list(conn->ssl);
    if (!sk)
        sk = SSL_get_client_CA_list(conn->ssl);
    int n = sk ? sk_X509_NAME_num(sk) : 0;
    if (n > 0 && !(conn->peer_ca_names = calloc((size_t)n, sizeof *conn->peer_ca_names)))
        return;
    for (int i = 0; i < n; i++) {
        char *s = hsmtls__name_line(sk_X509_NAME_value(sk, i));
        if (s)
            conn->peer_ca_names[conn->n_peer_ca_names++] = s;
    }
    conn->peer_ca_made = SSL_is_init_finished(conn->ssl) || n > 0;
}

int hsmtls_conn_peer_ca_count(const hsmtls_conn *conn)
{
    make_peer_ca((hsmtls_conn *)conn);
    return conn->n_peer_ca_names;
}

const char *hsmtls_conn_peer_ca_name(const hsmtls_conn *conn, int i)
{
    make_peer_ca((hsmtls_conn *)conn);
    return i >= 0 && i < conn->n_peer_ca_names ? conn->peer_ca_names[i] : NULL;
}

void hsmtls__conn_free_more(hsmtls_conn *conn)
{
    for (int i = 0; i < conn->n_peer_ca_names; i++)
        free(conn->peer_ca_names[i]);
    free(conn->peer_ca_names);
}
