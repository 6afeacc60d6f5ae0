/* Helpers shared by the DTLS API tests (on top of check.h). */
#ifndef HSMTLS_TEST_DTLS_CHECK_H
#define HSMTLS_TEST_DTLS_CHECK_H

#include <netinet/in.h>

#include "hsmtls/config.h"
#include "hsmtls/dtls.h"
#include "hsmtls/dtls_verifier.h"

/* The server's key reference (the soft ec-p256 key, or the token's). */
extern const char *dtls_server_key;
/* The largest datagram dtls_pump moved since it was last set to 0. */
extern unsigned dtls_largest;

struct sockaddr_in dtls_addr(const char *ip, unsigned port);
/* A server config with certs/ec-p256.pem and dtls_server_key. */
hsmtls_config *dtls_server_config(void);
/* A client config, trusting the sandbox CA when with_ca. */
hsmtls_config *dtls_client_config(int with_ca);
/* Moves every waiting datagram of one memory-mode side into the other (handshake or
 * read; *status gets the last handshake result); returns the count. */
int dtls_pump(hsmtls_dtls *from, hsmtls_dtls *to, int *status);
/* The client's first ClientHello, the verifier's HelloVerifyRequest, the verified
 * ClientHello: returns the server association made for it (peer caddr). */
hsmtls_dtls *dtls_cookie_exchange(hsmtls_dtls_verifier *v, hsmtls_config *scfg, hsmtls_dtls *cl,
                                  struct sockaddr_in *caddr, int *sst);
/* Pumps both ways until both sides are complete and quiet; 1 when they are. */
int dtls_run_handshake(hsmtls_dtls *cl, hsmtls_dtls *sv, int *cst, int *sst);

/* test_dtls_sessions.c */
void test_dtls_resume(void);
void test_dtls_sni(void);
void test_dtls_fd_mode(void);
void test_dtls_getters(void);

#endif
