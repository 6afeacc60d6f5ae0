/* Signature counts from the process's one PKCS#11 core, which the hsmtls provider links:
 * the provider hands over a struct hsmtls_provider_counters (provider/include/
 * hsmtls_provider.h, the contract both sides include) whose function returns the count
 * as a number. */
#include "lib_internal.h"
#include "hsmtls/token.h"
#include "hsmtls_provider.h"

#include <limits.h>

#include <openssl/params.h>
#include <openssl/provider.h>

struct lookup {
    struct hsmtls_provider_counters counters;
    int found;
};

/* Asks a provider for the counters: other providers do not know the parameter and leave
 * it unmodified, so the one that answers is ours, whatever path it was loaded from. */
static int ask(OSSL_PROVIDER *prov, void *arg)
{
    struct lookup *l = arg;
    struct hsmtls_provider_counters c = { 0 };
    OSSL_PARAM get[] = {
        OSSL_PARAM_octet_string(HSMTLS_PROVIDER_PARAM_COUNTERS, &c, sizeof c),
        OSSL_PARAM_END
    };
    if (!OSSL_PROVIDER_get_params(prov, get) || !OSSL_PARAM_modified(get) ||
        get[0].return_size != sizeof c || c.version != HSMTLS_PROVIDER_COUNTERS_VERSION ||
        !c.token_signatures)
        return 1;
    l->counters = c;
    l->found = 1;
    return 0;
}

long hsmtls_token_signatures(const char *token_label)
{
    OSSL_LIB_CTX *ctx = hsmtls__libctx(NULL);
    if (!ctx)
        return HSMTLS_ERROR;
    struct lookup l = { .found = 0 };
    OSSL_PROVIDER_do_all(ctx, ask, &l);
    if (!l.found)
        return 0; /* not loaded: nothing has signed on a token through this library */
    uint64_t n = l.counters.token_signatures(token_label);
    return n > LONG_MAX ? LONG_MAX : (long)n;
}
