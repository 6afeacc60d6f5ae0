/* Built by tests/test_install.py against an installed libhsmtls (pkg-config, and
 * find_package(hsmtls) through CMakeLists.txt here): a server whose key is on the
 * sandbox's server token and a client that trusts the sandbox CA complete a TLS
 * handshake in memory and exchange a line. Then it prints the signatures the server
 * token made (counted by the provider's core) and the libhsmtls and hsmtls.so files
 * mapped into the process, so the test can tell which library and provider ran.
 * usage: handshake SANDBOX_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hsmtls/config.h>
#include <hsmtls/conn.h>
#include <hsmtls/error.h>
#include <hsmtls/token.h>

static const char *sandbox;

static const char *in_sandbox(const char *name)
{
    static char paths[4][1024];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", sandbox, name);
    return p;
}

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "handshake: %s: %s\n", what, why ? why : "(no message)");
    exit(1);
}

/* Moves what one side wrote to the other; returns the bytes moved. */
static int move(hsmtls_conn *from, hsmtls_conn *to)
{
    char buf[4096];
    int total = 0, n;
    while ((n = hsmtls_conn_take(from, buf, sizeof buf)) > 0) {
        if (hsmtls_conn_feed(to, buf, (size_t)n) != n)
            fail("feed", hsmtls_conn_error_message(to));
        total += n;
    }
    return total;
}

static void pump_handshake(hsmtls_conn *cli, hsmtls_conn *srv)
{
    int rc = 1, rs = 1;
    for (int round = 0; round < 50 && (rc != 0 || rs != 0); round++) {
        if (rc != 0)
            rc = hsmtls_conn_handshake(cli);
        move(cli, srv);
        if (rs != 0)
            rs = hsmtls_conn_handshake(srv);
        move(srv, cli);
        if (rc == HSMTLS_ERROR)
            fail("client handshake", hsmtls_conn_error_message(cli));
        if (rs == HSMTLS_ERROR)
            fail("server handshake", hsmtls_conn_error_message(srv));
    }
    if (rc != 0 || rs != 0)
        fail("handshake", "did not finish in 50 rounds");
}

static void print_mapped_hsmtls(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096], last[4096] = "";
    if (!maps)
        fail("/proc/self/maps", "cannot open");
    while (fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (!path || (!strstr(path, "/hsmtls.so") && !strstr(path, "/libhsmtls.so")))
            continue;
        path[strcspn(path, "\n")] = '\0';
        if (strcmp(path, last) != 0)
            printf("mapped: %s\n", path);
        snprintf(last, sizeof last, "%s", path);
    }
    fclose(maps);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: handshake SANDBOX_DIR\n");
        return 2;
    }
    sandbox = argv[1];
    hsmtls_config *sc = hsmtls_config_new(HSMTLS_SERVER);
    hsmtls_config *cc = hsmtls_config_new(HSMTLS_CLIENT);
    if (!sc || !cc)
        fail("config", hsmtls_error_message());
    if (hsmtls_config_set_pin_source(sc, in_sandbox("pin.txt")) != 0
        || hsmtls_config_set_cert_key(sc, in_sandbox("certs/ec-p256.pem"),
                                      "pkcs11:token=server;object=ec-p256") != 0)
        fail("server config", hsmtls_config_error(sc));
    if (hsmtls_config_add_ca(cc, in_sandbox("ca.pem")) != 0)
        fail("client config", hsmtls_config_error(cc));
    printf("provider: %s\n", hsmtls_config_provider_path(sc));

    hsmtls_conn *cli = hsmtls_conn_new(cc), *srv = hsmtls_conn_new(sc);
    if (!cli || !srv)
        fail("conn", hsmtls_error_message());
    if (hsmtls_conn_use_memory(cli) != 0 || hsmtls_conn_use_memory(srv) != 0
        || hsmtls_conn_set_hostname(cli, "localhost") != 0)
        fail("conn setup", hsmtls_error_message());
    pump_handshake(cli, srv);
    if (!hsmtls_conn_peer_verified(cli))
        fail("client", "the server's certificate was not verified");

    static const char msg[] = "hello from the token key\n";
    char buf[64];
    if (hsmtls_conn_write(cli, msg, sizeof msg - 1) != (int)sizeof msg - 1)
        fail("write", hsmtls_conn_error_message(cli));
    move(cli, srv);
    int n = hsmtls_conn_read(srv, buf, sizeof buf - 1);
    if (n != (int)sizeof msg - 1 || memcmp(buf, msg, (size_t)n) != 0)
        fail("read", hsmtls_conn_error_message(srv));

    printf("version: %s\ncipher: %s\npeer: %s\n", hsmtls_conn_version(cli),
           hsmtls_conn_cipher(cli), hsmtls_conn_peer_subject(cli));
    long signatures = hsmtls_token_signatures("server");
    if (signatures < 0)
        fail("token signatures", hsmtls_error_message());
    printf("server token signatures: %ld\n", signatures);
    print_mapped_hsmtls();
    hsmtls_conn_free(cli);
    hsmtls_conn_free(srv);
    hsmtls_config_free(cc);
    hsmtls_config_free(sc);
    return 0;
}
