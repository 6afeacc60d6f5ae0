/* Signature counts from, and the key cache setting of, the process's one PKCS#11 core,
 * which the hsmtls provider links: the provider hands over a struct
 * hsmtls_provider_counters (provider/include/hsmtls_provider.h, the contract both sides
 * include) whose functions do the work. */
#include "lib_internal.h"
#include "hsmtls/token.h"
#include "hsmtls_provider.h"

#include <limits.h>
#include <pthread.h>

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
        !c.token_signatures || !c.key_cache_set)
        return 1;
    l->counters = c;
    l->found = 1;
    return 0;
}

/* The provider's struct, when it is loaded: 1, 0 when not, -1 without a context. */
static int find(struct hsmtls_provider_counters *c)
{
    OSSL_LIB_CTX *ctx = hsmtls__libctx(NULL);
    if (!ctx)
        return -1;
    struct lookup l = { .found = 0 };
    OSSL_PROVIDER_do_all(ctx, ask, &l);
    *c = l.counters;
    return l.found;
}

long hsmtls_token_signatures(const char *token_label)
{
    struct hsmtls_provider_counters c;
    int found = find(&c);
    if (found <= 0)
        return found < 0 ? HSMTLS_ERROR : 0; /* not loaded: nothing signed through us */
    uint64_t n = c.token_signatures(token_label);
    return n > LONG_MAX ? LONG_MAX : (long)n;
}

/* The application's choice, kept for a provider loaded later (-1: none made). */
static pthread_mutex_t setting_lock = PTHREAD_MUTEX_INITIALIZER;
static int key_cache_wanted = -1;

int hsmtls_token_set_key_cache(int enabled)
{
    pthread_mutex_lock(&setting_lock);
    key_cache_wanted = enabled ? 1 : 0;
    pthread_mutex_unlock(&setting_lock);
    return hsmtls__token_apply_settings() < 0 ? HSMTLS_ERROR : HSMTLS_OK;
}

int hsmtls__token_apply_settings(void)
{
    pthread_mutex_lock(&setting_lock);
    int wanted = key_cache_wanted;
    pthread_mutex_unlock(&setting_lock);
    if (wanted < 0)
        return 0;
    struct hsmtls_provider_counters c;
    int found = find(&c);
    if (found > 0)
        c.key_cache_set(wanted);
    return found < 0 ? -1 : 0;
}
