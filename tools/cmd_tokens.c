/* hsmtls tokens [URI]: modules, slots, tokens and their flags. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS_USAGE "hsmtls tokens [--module PATH] [pkcs11:URI]"

static void print_padded(const char *name, const unsigned char *field, size_t len)
{
    while (len > 0 && (field[len - 1] == ' ' || field[len - 1] == '\0'))
        len--;
    printf(" %s=\"%.*s\"", name, (int)len, (const char *)field);
}

static void print_flags(CK_FLAGS f)
{
    static const struct { CK_FLAGS bit; const char *name; } names[] = {
        { CKF_TOKEN_INITIALIZED, "initialized" }, { CKF_LOGIN_REQUIRED, "login-required" },
        { CKF_USER_PIN_INITIALIZED, "user-pin-set" }, { CKF_PROTECTED_AUTHENTICATION_PATH, "pin-pad" },
        { CKF_WRITE_PROTECTED, "read-only" }, { CKF_RNG, "rng" },
        { CKF_USER_PIN_COUNT_LOW, "pin-count-low" }, { CKF_USER_PIN_FINAL_TRY, "pin-final-try" },
        { CKF_USER_PIN_LOCKED, "pin-locked" },
    };
    const char *sep = "";
    printf("    flags: ");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (f & names[i].bit) {
            printf("%s%s", sep, names[i].name);
            sep = ", ";
        }
    printf("\n");
}

int cmd_tokens(int argc, char **argv)
{
    struct cli_options opt = { 0 };
    int i = cli_parse_common(argc, argv, &opt, TOKENS_USAGE);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i > 1) {
        fprintf(stderr, "hsmtls tokens: takes at most one URI\nusage: %s\n", TOKENS_USAGE);
        return CLI_USAGE;
    }
    hsmtls_p11_uri *uri = NULL;
    if (i < argc && !(uri = hsmtls_p11_uri_parse(argv[i])))
        return cli_fail("tokens");
    hsmtls_p11_lookup lookup = cli_lookup(&opt);
    hsmtls_p11_token **tokens;
    size_t n;
    if (hsmtls_p11_tokens_list(uri, &lookup, &tokens, &n) < 0) {
        hsmtls_p11_uri_free(uri);
        return cli_fail("tokens");
    }
    const hsmtls_p11_module *last = NULL;
    for (size_t k = 0; k < n; k++) {
        hsmtls_p11_module *m = hsmtls_p11_token_module(tokens[k]);
        if (m != last) {
            const CK_INFO *mi = hsmtls_p11_module_info(m);
            printf("module %s (%s):", hsmtls_p11_module_name(m), hsmtls_p11_module_path(m));
            print_padded("library", mi->libraryDescription, sizeof mi->libraryDescription);
            printf(" version=%u.%u\n", mi->libraryVersion.major, mi->libraryVersion.minor);
            last = m;
        }
        const CK_TOKEN_INFO *ti = hsmtls_p11_token_info(tokens[k]);
        if (!(ti->flags & CKF_TOKEN_INITIALIZED)) {
            printf("  slot %lu: uninitialized token\n", (unsigned long)hsmtls_p11_token_slot(tokens[k]));
            continue;
        }
        printf("  slot %lu: token \"%s\"", (unsigned long)hsmtls_p11_token_slot(tokens[k]),
               hsmtls_p11_token_label(tokens[k]));
        print_padded("manufacturer", ti->manufacturerID, sizeof ti->manufacturerID);
        print_padded("model", ti->model, sizeof ti->model);
        print_padded("serial", ti->serialNumber, sizeof ti->serialNumber);
        printf("\n");
        print_flags(ti->flags);
        char *turi = hsmtls_p11_uri_format_token(ti);
        printf("    uri: %s\n", turi ? turi : "?");
        free(turi);
    }
    if (n == 0)
        printf("no token found%s%s\n", uri ? " matching " : "", uri ? hsmtls_p11_uri_masked(uri) : "");
    free(tokens);
    hsmtls_p11_uri_free(uri);
    return n == 0 && uri ? CLI_FAILED : CLI_OK;
}
