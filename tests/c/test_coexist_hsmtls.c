/* The libhsmtls side of the coexistence tests: see test_coexist_hsmtls.h. */
#include "test_coexist_hsmtls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/conn.h"
#include "hsmtls/token.h"

int coexist_tolerate_failures;

void coexist_expect(int ok, const char *file, int line, const char *expr, const char *detail)
{
    if (!coexist_tolerate_failures)
        check_report(ok, file, line, expr, detail);
    else if (!ok)
        printf("# tolerated %s:%d: %s%s%s\n", file, line, expr, detail ? ": " : "", detail ? detail : "");
}

const char *coexist_pin(void)
{
    static char pin[64];
    if (!pin[0]) {
        FILE *f = fopen(check_path("pin.txt"), "r");
        CHECK_MSG(f != NULL, check_path("pin.txt"));
        if (f) {
            if (!fgets(pin, sizeof pin, f))
                pin[0] = '\0';
            fclose(f);
        }
        pin[strcspn(pin, "\r\n")] = '\0';
        CHECK_MSG(pin[0] != '\0', "pin.txt holds a PIN");
    }
    return pin;
}

const char *coexist_module(void)
{
    const char *m = getenv("HSMTLS_PKCS11_MODULE");
    CHECK_MSG(m && *m, "HSMTLS_PKCS11_MODULE names the sandbox's module");
    return m ? m : "";
}

const char *coexist_configs(hsmtls_config **server, hsmtls_config **client)
{
    static char why[1200];
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER), *c = check_client_config();
    CHECK(hsmtls_config_set_pin_source(s, check_path("pin.txt")) == 0);
    CHECK(hsmtls_config_set_pin_source(c, check_path("pin.txt")) == 0);
    int s_ok = hsmtls_config_set_cert_key(s, check_path("certs/ec-p256.pem"), COEXIST_SERVER_KEY) == 0;
    COEXIST_EXPECT_MSG(s_ok, hsmtls_config_error(s));
    if (!s_ok)
        snprintf(why, sizeof why, "server key: %s", hsmtls_config_error(s));
    int c_ok = hsmtls_config_set_cert_key(c, check_path("certs/client-p256.pem"), COEXIST_CLIENT_KEY) == 0;
    COEXIST_EXPECT_MSG(c_ok, hsmtls_config_error(c));
    if (!c_ok && s_ok)
        snprintf(why, sizeof why, "client key: %s", hsmtls_config_error(c));
    CHECK(hsmtls_config_add_ca(s, check_path("ca.pem")) == 0);
    CHECK(hsmtls_config_set_verify_mode(s, HSMTLS_VERIFY_PEER) == 0);
    CHECK(hsmtls_config_set_protocols(s, HSMTLS_TLS1_3, HSMTLS_TLS1_3) == 0);
    *server = s;
    *client = c;
    return s_ok && c_ok ? NULL : why;
}

static long signatures(const char *token)
{
    long n = hsmtls_token_signatures(token);
    CHECK_MSG(n >= 0, hsmtls_error_message());
    return n;
}

static void report(const char *step, int ok, const char *why)
{
    if (ok)
        printf("# %s: hsmtls handshake ok\n", step);
    else
        printf("# %s: hsmtls handshake FAILED%s: %s\n", step, coexist_tolerate_failures ? " (tolerated)" : "", why);
    fflush(stdout);
}

int coexist_handshake(const char *step, hsmtls_config *server, hsmtls_config *client)
{
    long s0 = signatures("server"), c0 = signatures("client");
    /* Not check_pair: a config whose key did not load gives no connection, and the
     * program goes on to report the next steps. */
    hsmtls_conn *cli = hsmtls_conn_new(client), *srv = cli ? hsmtls_conn_new(server) : NULL;
    int ok = 0;
    char why[2600] = "";
    if (cli && srv) {
        CHECK(hsmtls_conn_use_memory(cli) == 0 && hsmtls_conn_use_memory(srv) == 0);
        CHECK(hsmtls_conn_set_hostname(cli, "localhost") == 0);
        int sr, cr = check_handshake(cli, srv, &sr);
        COEXIST_EXPECT_MSG(cr == 0, hsmtls_conn_error_message(cli));
        COEXIST_EXPECT_MSG(sr == 0, hsmtls_conn_error_message(srv));
        if (cr != 0 || sr != 0) {
            const char *cm = hsmtls_conn_error_message(cli), *sm = hsmtls_conn_error_message(srv);
            snprintf(why, sizeof why, "server (status %d): %s; client (status %d): %s", sr,
                     sr == 0 ? "done" : sm && *sm ? sm : "no message", cr,
                     cr == 0 ? "done" : cm && *cm ? cm : "no message");
        } else
            ok = 1;
        if (ok) {
            CHECK_MSG(strcmp(hsmtls_conn_version(cli), "TLSv1.3") == 0, hsmtls_conn_version(cli));
            CHECK(hsmtls_conn_peer_subject(srv) != NULL); /* the client authenticated */
        }
    } else {
        snprintf(why, sizeof why, "no connection: %s", hsmtls_error_message());
        COEXIST_EXPECT_MSG(cli && srv, why);
    }
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    if (ok) {
        long ds = signatures("server") - s0, dc = signatures("client") - c0;
        CHECK_MSG(ds == 1, "one CertificateVerify signed on the server token");
        CHECK_MSG(dc == 1, "one CertificateVerify signed on the client token");
        ok = ds == 1 && dc == 1;
        if (!ok)
            snprintf(why, sizeof why, "signatures: token \"server\" %ld, token \"client\" %ld (want 1 and 1)", ds,
                     dc);
    }
    report(step, ok, why);
    return ok;
}

int coexist_hsmtls_round(const char *step, hsmtls_config *server, hsmtls_config *client)
{
    char name[200];
    snprintf(name, sizeof name, "%s, kept configs", step);
    int ok = coexist_handshake(name, server, client);
    hsmtls_config *s = NULL, *c = NULL;
    const char *why = coexist_configs(&s, &c);
    snprintf(name, sizeof name, "%s, new configs", step);
    if (why)
        report(name, 0, why);
    else
        ok &= coexist_handshake(name, s, c);
    hsmtls_config_free(s);
    hsmtls_config_free(c);
    return ok && !why;
}
