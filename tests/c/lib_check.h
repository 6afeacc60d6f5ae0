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
/* Both handshakes over memory until both finish or one fails: the client's status
 * (the server's in *srv_status, which may be NULL). */
int check_handshake(hsmtls_conn *cli, hsmtls_conn *srv, int *srv_status);
/* A memory-mode client (host name "localhost") and server from the two configs. */
void check_pair(hsmtls_config *cc, hsmtls_config *sc, hsmtls_conn **cli, hsmtls_conn **srv);
/* Writes msg on one side and reads it on the other, moving bytes both ways while the
 * reader wants more (tickets, post-handshake messages): 0 when it arrived whole. */
int check_exchange(hsmtls_conn *from, hsmtls_conn *to, const char *msg);
/* close_notify both ways (so the session stays resumable), then frees both. */
void check_close(hsmtls_conn *cli, hsmtls_conn *srv);

#endif
