/* Signature counts from the hsmtls provider's PKCS#11 core. The provider links its own
 * copy of the core, so the counts live there: they are read through the provider's
 * "hsmtls-token-signatures" parameter, a line "SIGNATURES<TAB>SERIAL<TAB>LABEL" per
 * token (provider/provider.c). */
#include "lib_internal.h"
#include "hsmtls/token.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#define PARAM_TOKEN_SIGNATURES "hsmtls-token-signatures"

struct lookup {
    char *text;         /* the provider's answer, malloc'd */
    int found, failed;
};

/* Asks a provider for the parameter: the default provider does not know it and leaves
 * it unmodified, so the one that answers is ours, whatever path it was loaded from. */
static int ask(OSSL_PROVIDER *prov, void *arg)
{
    struct lookup *l = arg;
    OSSL_PARAM probe[] = { OSSL_PARAM_utf8_string(PARAM_TOKEN_SIGNATURES, NULL, 0), OSSL_PARAM_END };
    if (!OSSL_PROVIDER_get_params(prov, probe) || !OSSL_PARAM_modified(probe))
        return 1;
    l->found = 1;
    /* A count may gain a digit between the two calls: a little room, and a few tries. */
    for (int tries = 0; tries < 4; tries++) {
        size_t size = probe[0].return_size + 64;
        char *buf = calloc(1, size);
        if (!buf)
            break;
        OSSL_PARAM get[] = { OSSL_PARAM_utf8_string(PARAM_TOKEN_SIGNATURES, buf, size), OSSL_PARAM_END };
        if (OSSL_PROVIDER_get_params(prov, get)) {
            l->text = buf;
            return 0;
        }
        free(buf);
        probe[0].return_size = get[0].return_size;
    }
    l->failed = 1;
    return 0;
}

long hsmtls_token_signatures(const char *token_label)
{
    char err[HSMTLS_ERRLEN];
    OSSL_LIB_CTX *ctx = hsmtls__libctx(err);
    if (!ctx)
        return HSMTLS_ERROR;
    struct lookup l = { 0 };
    OSSL_PROVIDER_do_all(ctx, ask, &l);
    if (l.failed)
        return hsmtls__fail(NULL, "cannot read the token signature counts from the hsmtls provider");
    if (!l.found)
        return 0; /* not loaded: nothing has signed on a token through this library */
    long total = 0;
    for (char *line = l.text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2 && (!token_label || strcmp(tab2 + 1, token_label) == 0))
            total += strtol(line, NULL, 10);
        line = end ? end + 1 : NULL;
    }
    free(l.text);
    return total;
}
