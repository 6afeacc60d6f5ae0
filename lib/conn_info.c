/* What a connection knows after its handshake: version, cipher, ALPN, names, chains,
 * key exchange, and the CA names a server sent. Verification errors are
 * conn_verify.c's. */
#include "lib_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

void hsmtls__conn_clear_info(hsmtls_conn *conn)
{
    for (int i = 0; i < conn->n_verrs; i++) {
        free(conn->verrs[i].message);
        hsmtls_cert_free(conn->verrs[i].cert);
    }
    struct cert_list *lists[] = { &conn->peer_chain, &conn->verified_chain };
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < lists[l]->n; i++)
            hsmtls_cert_free(lists[l]->v[i]);
        free(lists[l]->v);
        memset(lists[l], 0, sizeof *lists[l]);
    }
    free(conn->verrs);
    conn->verrs = NULL;
    conn->n_verrs = 0;
    free(conn->alpn);
    free(conn->peer_subject);
    free(conn->summary);
    free(conn->ephemeral);
    conn->alpn = conn->peer_subject = conn->summary = conn->ephemeral = NULL;
}

const char *hsmtls_conn_version(const hsmtls_conn *conn)
{
    return SSL_is_init_finished(conn->ssl) ? SSL_get_version(conn->ssl) : NULL;
}

int hsmtls_conn_version_number(const hsmtls_conn *conn)
{
    return SSL_is_init_finished(conn->ssl) ? SSL_version(conn->ssl) : 0;
}

const char *hsmtls_conn_cipher(const hsmtls_conn *conn)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(conn->ssl);
    return c ? SSL_CIPHER_get_name(c) : NULL;
}

int hsmtls_conn_cipher_bits(const hsmtls_conn *conn)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(conn->ssl);
    return c ? SSL_CIPHER_get_bits(c, NULL) : 0;
}

/* The getters below cache a string on the connection; it lives as long as the
 * connection, so the const is only about what the caller sees. */
const char *hsmtls_conn_alpn(const hsmtls_conn *cconn)
{
    hsmtls_conn *conn = (hsmtls_conn *)cconn;
    if (!conn->alpn) {
        const unsigned char *p;
        unsigned int n;
        SSL_get0_alpn_selected(conn->ssl, &p, &n);
        if (!n || !(conn->alpn = malloc(n + 1)))
            return NULL;
        memcpy(conn->alpn, p, n);
        conn->alpn[n] = '\0';
    }
    return conn->alpn;
}

int hsmtls_conn_alpn_status(const hsmtls_conn *conn)
{
    if (!SSL_is_init_finished(conn->ssl) || !conn->alpn_listed)
        return HSMTLS_ALPN_NONE;
    return hsmtls_conn_alpn(conn) ? HSMTLS_ALPN_NEGOTIATED : HSMTLS_ALPN_UNSUPPORTED;
}

const char *hsmtls_conn_hostname(const hsmtls_conn *conn)
{
    if (conn->role == HSMTLS_CLIENT)
        return conn->hostname;
    return SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *hsmtls_conn_peer_subject(const hsmtls_conn *cconn)
{
    hsmtls_conn *conn = (hsmtls_conn *)cconn;
    X509 *peer = conn->peer_subject ? NULL : SSL_get0_peer_certificate(conn->ssl);
    if (peer)
        conn->peer_subject = hsmtls__name_line(X509_get_subject_name(peer));
    return conn->peer_subject;
}

int hsmtls_conn_session_reused(const hsmtls_conn *conn) { return SSL_session_reused(conn->ssl); }

/* Appends to a fixed buffer, truncating instead of overrunning. */
static void add(char *buf, size_t size, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    if (*used >= size - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = *used + (size_t)n < size ? *used + (size_t)n : size - 1;
}

const char *hsmtls_conn_summary(hsmtls_conn *conn)
{
    if (!SSL_is_init_finished(conn->ssl))
        return "handshake not done";
    char buf[2048];
    size_t n = 0;
    const char *alpn = hsmtls_conn_alpn(conn), *peer = hsmtls_conn_peer_subject(conn);
    const char *group = hsmtls_conn_ephemeral_key(conn);
    add(buf, sizeof buf, &n, "%s, %s (%d bits)", hsmtls_conn_version(conn), hsmtls_conn_cipher(conn),
        hsmtls_conn_cipher_bits(conn));
    if (group)
        add(buf, sizeof buf, &n, ", key exchange %s", group);
    add(buf, sizeof buf, &n, ", %s%s, %s; peer ", alpn ? "ALPN " : "no ALPN", alpn ? alpn : "",
        hsmtls_conn_session_reused(conn) ? "resumed session" : "new session");
    if (!peer)
        add(buf, sizeof buf, &n, "certificate: none");
    else
        add(buf, sizeof buf, &n, "%s: %s", peer, hsmtls_conn_peer_verified(conn) ? "verified" : "NOT verified");
    for (int i = 0; i < conn->n_verrs; i++)
        add(buf, sizeof buf, &n, "%s%s", i ? "; " : " (", conn->verrs[i].message);
    if (conn->n_verrs)
        add(buf, sizeof buf, &n, ")");
    free(conn->summary);
    conn->summary = strdup(buf);
    return conn->summary ? conn->summary : "";
}

/* The peer's share, of the same group as ours; a server's own share of a TLS 1.2 DHE
 * exchange is gone once the handshake is done. */
static EVP_PKEY *ephemeral(const hsmtls_conn *conn)
{
    EVP_PKEY *k = NULL;
    if (SSL_get_peer_tmp_key(conn->ssl, &k) || SSL_get_tmp_key(conn->ssl, &k))
        return k;
    return NULL;
}

/* The size of a negotiated group by its NID, for a server whose TLS 1.2 shares are
 * gone (0 when not known). */
static int group_bits(int nid)
{
    if (nid <= 0 || (nid & TLSEXT_nid_unknown))
        return 0;
    if (nid == NID_X25519)
        return 253;
    if (nid == NID_X448)
        return 448;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(nid);
    int bits = g ? EC_GROUP_get_degree(g) : 0;
    EC_GROUP_free(g);
    const char *sn = bits ? NULL : OBJ_nid2sn(nid);
    if (sn && strncmp(sn, "ffdhe", 5) == 0)
        bits = atoi(sn + 5);
    ERR_clear_error();
    return bits;
}

/* A TLS 1.2 DHE server keeps neither share after the handshake: its config's
 * parameters say which group it was (the values the connection was made with, unless
 * the config changed since). */
static int dhe_server(const hsmtls_conn *conn)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(conn->ssl);
    return conn->role == HSMTLS_SERVER && c && SSL_CIPHER_get_kx_nid(c) == NID_kx_dhe;
}

const char *hsmtls_conn_ephemeral_key(const hsmtls_conn *cconn)
{
    hsmtls_conn *conn = (hsmtls_conn *)cconn;
    if (conn->ephemeral || !SSL_is_init_finished(conn->ssl))
        return conn->ephemeral;
    EVP_PKEY *k = ephemeral(conn);
    if (!k) {
        int nid = SSL_get_negotiated_group(conn->ssl);
        if (nid > 0 && !(nid & TLSEXT_nid_unknown) && OBJ_nid2sn(nid))
            conn->ephemeral = strdup(OBJ_nid2sn(nid));
        else if (dhe_server(conn))
            conn->ephemeral = strdup(hsmtls_config_dh_group(conn->cfg) ? hsmtls_config_dh_group(conn->cfg) : "DH");
        return conn->ephemeral;
    }
    char group[80];
    size_t n = 0;
    if (EVP_PKEY_get_group_name(k, group, sizeof group, &n) == 1 && n > 0)
        conn->ephemeral = strdup(group);
    else if (EVP_PKEY_get0_type_name(k))
        conn->ephemeral = strdup(EVP_PKEY_get0_type_name(k));
    EVP_PKEY_free(k);
    return conn->ephemeral;
}

/* Wraps a chain once, after the handshake (it does not change after that). */
static struct cert_list *chain(const hsmtls_conn *cconn, int verified)
{
    hsmtls_conn *conn = (hsmtls_conn *)cconn;
    struct cert_list *l = verified ? &conn->verified_chain : &conn->peer_chain;
    if (l->made || !SSL_is_init_finished(conn->ssl))
        return l;
    STACK_OF(X509) *sk = verified ? SSL_get0_verified_chain(conn->ssl) : SSL_get_peer_cert_chain(conn->ssl);
    X509 *leaf = SSL_get0_peer_certificate(conn->ssl);
    /* OpenSSL leaves the leaf out of a server's view of the client's chain */
    int add_leaf = !verified && leaf && conn->role == HSMTLS_SERVER;
    int n = sk_X509_num(sk) > 0 ? sk_X509_num(sk) : 0;
    if (verified && SSL_get_verify_result(conn->ssl) != X509_V_OK)
        n = 0;
    l->v = calloc((size_t)(n + add_leaf) + 1, sizeof *l->v);
    if (!l->v)
        return l;
    if (add_leaf && (l->v[l->n] = hsmtls__cert_wrap(leaf)))
        l->n++;
    for (int i = 0; i < n; i++)
        if ((l->v[l->n] = hsmtls__cert_wrap(sk_X509_value(sk, i))))
            l->n++;
    l->made = 1;
    return l;
}

int hsmtls_conn_peer_chain_count(const hsmtls_conn *conn) { return chain(conn, 0)->n; }
int hsmtls_conn_verified_chain_count(const hsmtls_conn *conn) { return chain(conn, 1)->n; }

const hsmtls_cert *hsmtls_conn_peer_chain_cert(const hsmtls_conn *conn, int i)
{
    struct cert_list *l = chain(conn, 0);
    return i >= 0 && i < l->n ? l->v[i] : NULL;
}

const hsmtls_cert *hsmtls_conn_verified_chain_cert(const hsmtls_conn *conn, int i)
{
    struct cert_list *l = chain(conn, 1);
    return i >= 0 && i < l->n ? l->v[i] : NULL;
}

const char *hsmtls_conn_psk_identity(const hsmtls_conn *conn)
{
    return conn->role == HSMTLS_SERVER ? conn->psk_identity : NULL;
}

const unsigned char *hsmtls_conn_ocsp_response(const hsmtls_conn *conn, size_t *len)
{
    unsigned char *p = NULL;
    long n = conn->role == HSMTLS_CLIENT ? SSL_get_tlsext_status_ocsp_resp(conn->ssl, &p) : -1;
    if (len)
        *len = n > 0 && p ? (size_t)n : 0;
    return n > 0 ? p : NULL;
}

int hsmtls_conn_ephemeral_key_bits(const hsmtls_conn *conn)
{
    if (!SSL_is_init_finished(conn->ssl))
        return 0;
    EVP_PKEY *k = ephemeral(conn);
    if (!k) {
        int bits = group_bits(SSL_get_negotiated_group(conn->ssl));
        return bits ? bits : dhe_server(conn) ? hsmtls_config_dh_bits(conn->cfg) : 0;
    }
    int bits = EVP_PKEY_get_bits(k);
    EVP_PKEY_free(k);
    return bits > 0 ? bits : 0;
}

/* ---- the CA names a server sent to the client ---- */

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

void hsmtls__conn_free_peer_ca(hsmtls_conn *conn)
{
    for (int i = 0; i < conn->n_peer_ca_names; i++)
        free(conn->peer_ca_names[i]);
    free(conn->peer_ca_names);
}
