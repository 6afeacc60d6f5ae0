#include "lib_check.h"
#include "check.h"

#include <stdio.h>

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
