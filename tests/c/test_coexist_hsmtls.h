/* The libhsmtls side of the coexistence tests (test_coexist_gnutls.c,
 * test_coexist_libp11.c, test_coexist_both.c): mutual TLS 1.3 handshakes in memory whose
 * server key is on the sandbox's "server" token and whose client key is on its "client"
 * token, each checked to have signed exactly once on each token
 * (hsmtls_token_signatures). The other PKCS#11 users in those programs sign with the same
 * client key, so they all log in to one token. */
#ifndef HSMTLS_TEST_COEXIST_HSMTLS_H
#define HSMTLS_TEST_COEXIST_HSMTLS_H

#include "hsmtls/config.h"

#define COEXIST_SERVER_KEY "pkcs11:token=server;object=ec-p256;type=private"
#define COEXIST_CLIENT_KEY "pkcs11:token=client;object=client-p256;type=private"

/* Set: a failed handshake or key load is printed ("FAILED (tolerated): REASON") but
 * fails no check, for steps after another library pulled the module away, where a clear
 * failure is acceptable and the test runner judges the reason. */
extern int coexist_tolerate_failures;
/* CHECK_MSG, or under coexist_tolerate_failures a printed "# tolerated ..." line that
 * counts nothing: for the other library's steps too (test_coexist_gnutls_pkcs11.c). */
void coexist_expect(int ok, const char *file, int line, const char *expr, const char *detail);
#define COEXIST_EXPECT_MSG(expr, detail) coexist_expect(!!(expr), __FILE__, __LINE__, #expr, (detail))

/* The sandbox's user PIN (pin.txt; check_set_dir first). */
const char *coexist_pin(void);
/* The module the sandbox names (HSMTLS_PKCS11_MODULE). */
const char *coexist_module(void);
/* A server and a client config with the token keys: NULL, or why a key did not load
 * (the configs are made either way). */
const char *coexist_configs(hsmtls_config **server, hsmtls_config **client);
/* One handshake with these configs: 1 when it finished as TLS 1.3 with one signature on
 * each token. Prints "# STEP: hsmtls handshake ok" or the failure with its reason. */
int coexist_handshake(const char *step, hsmtls_config *server, hsmtls_config *client);
/* A handshake with the kept configs (keys loaded before), then one with new configs (the
 * keys looked up again): 1 when both passed. */
int coexist_hsmtls_round(const char *step, hsmtls_config *server, hsmtls_config *client);

#endif
