/* Peer verification as a connection sees it: the verify callback records each error
 * (with its certificate) as it happens, since OpenSSL keeps only the last one and Qt
 * and Python applications want the list; errors the application accepts; pausing the
 * handshake on errors (OpenSSL's retry-verify) and resuming it. */
#include "lib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void record(hsmtls_conn *conn, long code, int depth, X509 *cert)
{
    for (int i = 0; i < conn->n_verrs; i++)
        if (conn->verrs[i].code == code && conn->verrs[i].depth == depth)
            return;
    struct verify_error *v = realloc(conn->verrs, (size_t)(conn->n_verrs + 1) * sizeof *v);
    if (!v)
        return;
    conn->verrs = v;
    char *subj = cert ? hsmtls__name_line(X509_get_subject_name(cert)) : NULL;
    char msg[768];
    snprintf(msg, sizeof msg, "depth %d (%s): %s", depth, subj ? subj : "?",
             X509_verify_cert_error_string(code));
    free(subj);
    v[conn->n_verrs].code = code;
    v[conn->n_verrs].depth = depth;
    v[conn->n_verrs].cert = cert ? hsmtls__cert_wrap(cert) : NULL;
    if ((v[conn->n_verrs].message = strdup(msg)))
        conn->n_verrs++;
    else
        hsmtls_cert_free(v[conn->n_verrs].cert);
}

static int ignored(const hsmtls_conn *conn, long code)
{
    for (int i = 0; i < conn->n_ignored; i++)
        if (conn->ignored[i] == code)
            return 1;
    return 0;
}

int hsmtls__verify_cb(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    hsmtls_conn *conn = ssl ? SSL_get_ex_data(ssl, hsmtls__conn_index()) : NULL;
    if (!conn)
        return ok;
    if (ok)
        return 1;
    long code = X509_STORE_CTX_get_error(store);
    record(conn, code, X509_STORE_CTX_get_error_depth(store), X509_STORE_CTX_get_current_cert(store));
    /* Only VERIFY stops the handshake, and not on an error the application accepts;
     * the other modes go on with the errors recorded. When the handshake pauses on
     * errors, verification goes on to list them all and the chain callback decides. */
    if (conn->effective_verify != HSMTLS_VERIFY_PEER || conn->interrupt_on_verify || ignored(conn, code))
        return 1;
    return 0;
}

static int all_ignored(const hsmtls_conn *conn)
{
    for (int i = 0; i < conn->n_verrs; i++)
        if (!ignored(conn, conn->verrs[i].code))
            return 0;
    return 1;
}

int hsmtls__verify_chain_cb(X509_STORE_CTX *store, void *arg)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    hsmtls_conn *conn = ssl ? SSL_get_ex_data(ssl, hsmtls__conn_index()) : NULL;
    int ok = X509_verify_cert(store);
    if (!conn || !conn->interrupt_on_verify)
        return ok;
    if (all_ignored(conn)) {
        /* nothing left that the application did not accept */
        conn->verify_paused = 0;
        if (conn->n_verrs)
            X509_STORE_CTX_set_error(store, X509_V_OK);
        return ok >= 0 ? 1 : ok;
    }
    if (conn->verify_paused) {
        /* resumed without accepting every error: fail as VERIFY mode would */
        conn->verify_paused = 0;
        X509_STORE_CTX_set_error(store, conn->verrs[0].code);
        for (int i = 0; i < conn->n_verrs; i++)
            if (!ignored(conn, conn->verrs[i].code)) {
                X509_STORE_CTX_set_error(store, conn->verrs[i].code);
                break;
            }
        return 0;
    }
    conn->verify_paused = 1;
    return SSL_set_retry_verify(ssl);
}

long hsmtls_conn_verify_result(const hsmtls_conn *conn) { return SSL_get_verify_result(conn->ssl); }

int hsmtls_conn_peer_verified(const hsmtls_conn *conn)
{
    return SSL_get0_peer_certificate(conn->ssl) && SSL_get_verify_result(conn->ssl) == X509_V_OK &&
           conn->n_verrs == 0;
}

int hsmtls_conn_verify_error_count(const hsmtls_conn *conn) { return conn->n_verrs; }

const char *hsmtls_conn_verify_error(const hsmtls_conn *conn, int i, long *code, int *depth)
{
    if (i < 0 || i >= conn->n_verrs)
        return NULL;
    if (code)
        *code = conn->verrs[i].code;
    if (depth)
        *depth = conn->verrs[i].depth;
    return conn->verrs[i].message;
}

const hsmtls_cert *hsmtls_conn_verify_error_cert(const hsmtls_conn *conn, int i)
{
    return i >= 0 && i < conn->n_verrs ? conn->verrs[i].cert : NULL;
}

int hsmtls_conn_ignore_verify_error(hsmtls_conn *conn, long code)
{
    for (int i = 0; i < conn->n_ignored; i++)
        if (conn->ignored[i] == code)
            return HSMTLS_OK;
    long *v = realloc(conn->ignored, (size_t)(conn->n_ignored + 1) * sizeof *v);
    if (!v)
        return hsmtls__err_set(&conn->err, "out of memory");
    conn->ignored = v;
    v[conn->n_ignored++] = code;
    return HSMTLS_OK;
}
