/* Channel bindings (RFC 5056): values both ends of one TLS connection compute alike, so
 * an authentication protocol above TLS (SCRAM-PLUS, GSS-API, token binding) can tie
 * itself to this very connection. RFC 9266 "tls-exporter", RFC 5929 "tls-unique" and
 * "tls-server-end-point". */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

/* RFC 5929 section 3: the first Finished message of the latest handshake: the
 * client's in a full handshake, the server's in an abbreviated one (resumption). */
static int tls_unique(hsmtls_conn *conn, unsigned char *buf, size_t size)
{
    if (SSL_version(conn->ssl) != TLS1_2_VERSION)
        return hsmtls__err_set(&conn->err, "channel binding tls-unique: TLS 1.2 only (RFC 9266 replaces it with "
                            "tls-exporter for TLS 1.3)");
    int ours = SSL_session_reused(conn->ssl) == (conn->role == HSMTLS_SERVER);
    return (int)(ours ? SSL_get_finished(conn->ssl, buf, size) : SSL_get_peer_finished(conn->ssl, buf, size));
}

/* RFC 5929 section 4.1: the server certificate's hash, with the hash of its signature
 * algorithm, MD5 and SHA-1 replaced by SHA-256. */
static int server_end_point(hsmtls_conn *conn, unsigned char *buf, size_t size)
{
    X509 *x = conn->role == HSMTLS_CLIENT ? SSL_get0_peer_certificate(conn->ssl) : SSL_get_certificate(conn->ssl);
    if (!x)
        return hsmtls__err_set(&conn->err, "channel binding tls-server-end-point: no server certificate");
    int md_nid = NID_undef;
    if (!X509_get_signature_info(x, &md_nid, NULL, NULL, NULL) || md_nid == NID_undef) {
        char *subj = hsmtls__name_line(X509_get_subject_name(x));
        hsmtls__err_set(&conn->err, "channel binding tls-server-end-point: undefined for the certificate %s, "
                     "whose signature algorithm has no separate hash (RFC 5929 section 4.1)", subj ? subj : "?");
        free(subj);
        return HSMTLS_ERROR;
    }
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        md_nid = NID_sha256;
    OSSL_LIB_CTX *lc = hsmtls__libctx(&conn->err);
    EVP_MD *md = lc ? EVP_MD_fetch(lc, OBJ_nid2sn(md_nid), NULL) : NULL;
    unsigned char tmp[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = md && X509_digest(x, md, tmp, &n);
    EVP_MD_free(md);
    if (!ok)
        return hsmtls__err_ssl(&conn->err, "channel binding tls-server-end-point: hash %s failed", OBJ_nid2sn(md_nid));
    if (buf && n <= size)
        memcpy(buf, tmp, n);
    return (int)n;
}

int hsmtls_conn_channel_binding(hsmtls_conn *conn, const char *type, void *buf, size_t size)
{
    if (!type)
        return hsmtls__err_set(&conn->err, "channel binding: a type is needed");
    if (!SSL_is_init_finished(conn->ssl))
        return hsmtls__err_set(&conn->err, "channel binding %s: the handshake is not done", type);
    /* RFC 7627 / RFC 9266 section 3: without the extended master secret a TLS 1.2 (or
     * older, or DTLS) master secret can be shared by two connections (triple handshake),
     * so values derived from it bind nothing. tls-server-end-point does not use it. */
    int secret_bound = strcmp(type, "tls-exporter") == 0 || strcmp(type, "tls-unique") == 0;
    if (secret_bound && SSL_version(conn->ssl) != TLS1_3_VERSION && SSL_get_extms_support(conn->ssl) != 1)
        return hsmtls__err_set(&conn->err, "channel binding %s: no extended master secret on this %s connection "
                            "(RFC 7627, RFC 9266 section 3)", type, SSL_get_version(conn->ssl));
    if (strcmp(type, "tls-exporter") == 0) {
        /* RFC 9266: label EXPORTER-Channel-Binding, no context, 32 bytes */
        if (!buf || size < 32)
            return 32;
        ERR_clear_error();
        if (SSL_export_keying_material(conn->ssl, buf, 32, "EXPORTER-Channel-Binding", 24, NULL, 0, 0) != 1)
            return hsmtls__err_ssl(&conn->err, "channel binding tls-exporter failed");
        return 32;
    }
    if (strcmp(type, "tls-unique") == 0) {
        unsigned char tmp[EVP_MAX_MD_SIZE];
        int n = tls_unique(conn, tmp, sizeof tmp);
        if (n <= 0)
            return n < 0 ? n : hsmtls__err_set(&conn->err, "channel binding tls-unique: no Finished message");
        if (buf && (size_t)n <= size)
            memcpy(buf, tmp, (size_t)n);
        return n;
    }
    if (strcmp(type, "tls-server-end-point") == 0)
        return server_end_point(conn, size ? buf : NULL, size);
    return hsmtls__err_set(&conn->err, "channel binding \"%s\": unknown type (tls-exporter, tls-unique, "
                        "tls-server-end-point)", hsmtls__short(type).s);
}
