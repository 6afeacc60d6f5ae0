/* hsmtls keyfile URI: a key file that names a token key, for programs that take only
 * a key file (nginx, stunnel, Python's ssl) once the provider is in openssl.cnf. */
#include "cli.h"
#include "hsmtls/p11_keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYFILE_USAGE "hsmtls keyfile [--module PATH] [--login] [--pin-source FILE] [--out FILE] pkcs11:URI"

int cmd_keyfile(int argc, char **argv)
{
    const char *out_path = NULL;
    /* --out is this verb's own; the rest are the common options. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else
            rest[nrest++] = argv[i];
    }
    struct cli_options opt = { 0 };
    int i = cli_parse_common(nrest, rest, &opt, KEYFILE_USAGE);
    int ret = CLI_USAGE;
    hsmtls_p11_uri *uri = NULL;
    char *stored = NULL, *pem = NULL;
    if (i < 0) {
        ret = i == -2 ? CLI_OK : CLI_USAGE;
        goto done;
    }
    if (nrest - i != 1) {
        fprintf(stderr, "hsmtls keyfile: needs one pkcs11: URI\nusage: %s\n", KEYFILE_USAGE);
        goto done;
    }
    ret = CLI_FAILED;
    if (!(uri = hsmtls_p11_uri_parse(rest[i]))) {
        cli_fail("keyfile");
        goto done;
    }
    /* The key must exist. Without a PIN its certificate or public key stands in: a
     * typo in a label is caught either way. */
    hsmtls_p11_lookup lookup = cli_lookup(&opt);
    int have_pin = opt.login || opt.pin_source || hsmtls_p11_uri_pin_value(uri) ||
                   hsmtls_p11_uri_pin_source(uri);
    hsmtls_p11_object *o;
    if (have_pin)
        o = hsmtls_p11_object_find(uri, &lookup, CKO_PRIVATE_KEY);
    else if (!(o = hsmtls_p11_object_find(uri, &lookup, CKO_PUBLIC_KEY)))
        o = hsmtls_p11_object_find(uri, &lookup, CKO_CERTIFICATE);
    if (!o) {
        cli_fail("keyfile");
        goto done;
    }
    /* The file holds the path part only: the query attributes (pin-value, pin-source,
     * module-path, module-name) told this command how to reach the token; the program
     * that reads the file takes them from its own configuration, and refuses a key file
     * that names them (pkcs11/keyfile.c). */
    if (!(stored = strndup(rest[i], strcspn(rest[i], "?"))) || !(pem = hsmtls_p11_keyfile_pem(stored))) {
        cli_fail("keyfile");
        goto done;
    }
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "hsmtls keyfile: %s: %s\n", cli_q(out_path), strerror(errno));
        goto done;
    }
    int ok = fputs(pem, f) >= 0;
    if (out_path)
        ok = fclose(f) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "hsmtls keyfile: cannot write %s\n", out_path ? cli_q(out_path) : "standard output");
        goto done;
    }
    if (hsmtls_p11_uri_pin_value(uri) || hsmtls_p11_uri_pin_source(uri))
        fprintf(stderr, "hsmtls keyfile: the PIN is not written into the file (%s dropped): a key file "
                        "may not give the PIN; give it in the reading program's configuration "
                        "(openssl.cnf's pkcs11-pin-source) or its prompt\n",
                hsmtls_p11_uri_pin_value(uri) ? "pin-value" : "pin-source");
    if (hsmtls_p11_uri_module_path(uri) || hsmtls_p11_uri_module_name(uri))
        fprintf(stderr, "hsmtls keyfile: the module is not written into the file (%s dropped): a key "
                        "file may not choose the PKCS#11 module; the reading program's configuration "
                        "names it (openssl.cnf's pkcs11-module-path, HSMTLS_PKCS11_MODULE, p11-kit)\n",
                hsmtls_p11_uri_module_path(uri) ? "module-path" : "module-name");
    ret = CLI_OK;
done:
    free(pem);
    free(stored);
    hsmtls_p11_uri_free(uri);
    free(rest);
    return ret;
}
