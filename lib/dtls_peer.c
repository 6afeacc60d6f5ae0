/* The peer of a DTLS association: its address (no unspecified, multicast or broadcast
 * ones), where the association sends, the name its certificate is checked against and
 * the server name. */
#include "dtls_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hsmtls_dtls_peer(const hsmtls_dtls *d) { return d->peer_text; }
const char *hsmtls_dtls_verify_name(const hsmtls_dtls *d) { return d->verify_name; }

const char *hsmtls_dtls_server_name(const hsmtls_dtls *d)
{
    return hsmtls_conn_hostname(d->conn);
}

/* Unspecified, multicast and broadcast addresses are no DTLS peers. */
static const char *bad_v4(uint32_t v)
{
    if (v == 0)
        return "the unspecified address";
    if ((v >> 28) == 0xE)
        return "a multicast address";
    if (v == 0xFFFFFFFFu)
        return "the broadcast address";
    return NULL;
}

static const char *bad_address(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET) {
        struct sockaddr_in v4;
        memcpy(&v4, a, sizeof v4);
        return bad_v4(ntohl(v4.sin_addr.s_addr));
    }
    struct sockaddr_in6 v6;
    memcpy(&v6, a, sizeof v6);
    const unsigned char *x = v6.sin6_addr.s6_addr;
    static const unsigned char zero[16], mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
    if (memcmp(x, zero, 16) == 0)
        return "the unspecified address";
    if (x[0] == 0xFF)
        return "a multicast address";
    if (memcmp(x, mapped, 12) == 0)
        return bad_v4((uint32_t)x[12] << 24 | (uint32_t)x[13] << 16 | (uint32_t)x[14] << 8 | x[15]);
    return NULL;
}

int hsmtls_dtls_set_peer(hsmtls_dtls *d, const struct sockaddr *addr, socklen_t len, const char *verify_name)
{
    if (hsmtls__dtls_not_started(d, "hsmtls_dtls_set_peer") != HSMTLS_OK)
        return HSMTLS_ERROR;
    if (!addr || !((addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
                   (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))))
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_peer: an IPv4 or IPv6 address is needed");
    const char *bad = bad_address(addr);
    if (bad)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_peer: %s cannot be a DTLS peer", bad);
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        len = sizeof *a;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        len = sizeof *a;
    }
    if (port == 0)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_peer: port 0");
    const char *name = verify_name && *verify_name ? verify_name : host;
    if (d->role == HSMTLS_CLIENT && hsmtls_conn_set_hostname(d->conn, name) != HSMTLS_OK)
        return hsmtls__err_set(&d->err, "%s", hsmtls_conn_error_message(d->conn));
    char *copy = strdup(name);
    if (!copy)
        return hsmtls__err_set(&d->err, "out of memory");
    free(d->verify_name);
    d->verify_name = copy;
    memcpy(&d->peer, addr, len);
    d->peer_len = len;
    snprintf(d->peer_text, sizeof d->peer_text, addr->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
    hsmtls__dgram_bio_set_peer(d->bio, addr, len);
    return HSMTLS_OK;
}

int hsmtls_dtls_set_peer_address(hsmtls_dtls *d, const char *address, unsigned port, const char *verify_name)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (port > 65535 || !address)
        return hsmtls__err_set(&d->err, "hsmtls_dtls_set_peer_address: bad address or port");
    if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return hsmtls_dtls_set_peer(d, (struct sockaddr *)a4, sizeof *a4, verify_name);
    }
    if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return hsmtls_dtls_set_peer(d, (struct sockaddr *)a6, sizeof *a6, verify_name);
    }
    return hsmtls__err_set(&d->err, "hsmtls_dtls_set_peer_address: \"%s\" is not an IP address", hsmtls__short(address).s);
}
