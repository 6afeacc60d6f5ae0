/* Helpers shared by libhsmtls's C API tests (on top of check.h). */
#ifndef HSMTLS_TEST_LIB_CHECK_H
#define HSMTLS_TEST_LIB_CHECK_H

#include "hsmtls/config.h"
#include "hsmtls/conn.h"

/* A server config with the sandbox's certs/LABEL.pem and soft/LABEL.key. */
hsmtls_config *check_server_config(const char *label);
/* A client config trusting the sandbox CA. */
hsmtls_config *check_client_config(void);
/* Moves every outgoing byte of one memory-mode side into the other; returns the count. */
int check_move(hsmtls_conn *from, hsmtls_conn *to);

#endif
