#include "lib_check.h"
#include "check.h"

#include <stdio.h>
#include <string.h>

hsmtls_config *check_server_config(const char *label)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "certs/%s.pem", label);
    snprintf(key, sizeof key, "soft/%s.key", label);
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK_MSG(hsmtls_config_set_cert_key(s, check_path(cert), check_path(key)) == 0, hsmtls_config_error(s));
    return s;
}

hsmtls_config *check_client_config(void)
{
    hsmtls_config *c = hsmtls_config_new(HSMTLS_CLIENT);
    CHECK_MSG(hsmtls_config_add_ca(c, check_path("ca.pem")) == 0, hsmtls_config_error(c));
    return c;
}

int check_move(hsmtls_conn *from, hsmtls_conn *to)
{
    char buf[4096];
    int total = 0, n;
    while ((n = hsmtls_conn_take(from, buf, sizeof buf)) > 0) {
        CHECK(hsmtls_conn_feed(to, buf, (size_t)n) == n);
        total += n;
    }
    return total;
}

int check_handshake(hsmtls_conn *cli, hsmtls_conn *srv, int *srv_status)
{
    int rc = 1, rs = 1;
    for (int round = 0; round < 50; round++) {
        if (rc != 0)
            rc = hsmtls_conn_handshake(cli);
        int moved = check_move(cli, srv);
        if (rs != 0)
            rs = hsmtls_conn_handshake(srv);
        moved += check_move(srv, cli);
        if ((rc == 0 && rs == 0) || rc == HSMTLS_ERROR || rs == HSMTLS_ERROR)
            break;
        if (!moved && rc != 0 && rs != 0)
            break;
    }
    if (srv_status)
        *srv_status = rs;
    return rc;
}

void check_pair(hsmtls_config *cc, hsmtls_config *sc, hsmtls_conn **cli, hsmtls_conn **srv)
{
    *cli = hsmtls_conn_new(cc);
    *srv = hsmtls_conn_new(sc);
    CHECK_MSG(*cli && *srv, hsmtls_error_message());
    CHECK(hsmtls_conn_use_memory(*cli) == 0 && hsmtls_conn_use_memory(*srv) == 0);
    CHECK(hsmtls_conn_set_hostname(*cli, "localhost") == 0);
}

int check_exchange(hsmtls_conn *from, hsmtls_conn *to, const char *msg)
{
    char buf[256];
    int w = HSMTLS_WANT_READ, n = HSMTLS_WANT_READ;
    for (int round = 0; round < 20 && (w < 0 || n < 0); round++) {
        if (w < 0)
            w = hsmtls_conn_write(from, msg, strlen(msg));
        check_move(from, to);
        if (n < 0)
            n = hsmtls_conn_read(to, buf, sizeof buf - 1);
        check_move(to, from);
        if (w == HSMTLS_ERROR || n == HSMTLS_ERROR)
            break;
    }
    if (n != (int)strlen(msg))
        return n < 0 ? n : HSMTLS_ERROR;
    buf[n] = '\0';
    return strcmp(buf, msg) == 0 ? 0 : HSMTLS_ERROR;
}

void check_close(hsmtls_conn *cli, hsmtls_conn *srv)
{
    /* OpenSSL forgets the session of a connection dropped without close_notify */
    if (hsmtls_conn_handshake_done(cli) && hsmtls_conn_handshake_done(srv)) {
        hsmtls_conn_shutdown(cli);
        hsmtls_conn_shutdown(srv);
    }
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
}
