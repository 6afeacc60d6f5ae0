/* The providers of hsmtls-bench-sign, each in a library context of its own beside
 * OpenSSL's default provider (unqualified fetches such as SHA256 go to the default
 * provider, as in the sandbox's openssl.cnf):
 *   ours  the hsmtls provider, loaded by path with no openssl.cnf: the PKCS#11 module
 *         comes from HSMTLS_PKCS11_MODULE, the PIN from the URI;
 *   peer  another provider module (pkcs11-provider from latchset), configured by an
 *         openssl.cnf that this run writes (OSSL_LIB_CTX_load_config), which the peer's
 *         openssl s_server also reads (bench_tls.c).
 * Keys are loaded by pkcs11: URI through OSSL_STORE in either. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

static char conf_path[4096];

static void conf_remove(void)
{
    if (conf_path[0])
        unlink(conf_path);
}

const char *peer_conf_path(void)
{
    return conf_path;
}

static const char *last_error(void)
{
    unsigned long e = ERR_peek_last_error();
    return e ? ERR_error_string(e, NULL) : "no reason given";
}

OSSL_LIB_CTX *provider_ctx(const char *path)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (!ctx || !OSSL_PROVIDER_load(ctx, "default") ||
        !EVP_set_default_properties(ctx, "?provider=default"))
        die("cannot make a library context with the default provider");
    if (access(path, R_OK) != 0)
        die("no provider module %s (build it, or name one with --provider or HSMTLS_PROVIDER)",
            path);
    if (!OSSL_PROVIDER_load(ctx, path))
        die("cannot load the provider %s: %s", path, last_error());
    return ctx;
}

/* pkcs11-provider's settings (its docs/provider-pkcs11.7): the module, the token's PIN
 * from the sandbox's PIN file, keys cached in the token as session objects (its 1.x
 * default, said explicitly: the same as our core's key cache), and no-deinit: SoftHSM2
 * can crash if the provider closes its sessions from OpenSSL's atexit cleanup after
 * SoftHSM2's own static destructors ran. */
static void peer_conf_write(const char *path, const char *sandbox)
{
    const char *module = getenv("HSMTLS_PKCS11_MODULE");
    const char *t = getenv("TMPDIR");
    snprintf(conf_path, sizeof conf_path, "%s/hsmtls-bench-peer.XXXXXX", t && *t ? t : "/tmp");
    int fd = mkstemp(conf_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        die("cannot write the peer's openssl.cnf in %s: %s", t && *t ? t : "/tmp", strerror(errno));
    atexit(conf_remove);
    fprintf(f,
            "# hsmtls-bench-sign: the peer provider (written for this run)\n"
            "openssl_conf = openssl_init\n\n"
            "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n\n"
            "[algorithm_sect]\ndefault_properties = ?provider=default\n\n"
            "[provider_sect]\ndefault = default_sect\npkcs11 = pkcs11_sect\n\n"
            "[default_sect]\nactivate = 1\n\n"
            "[pkcs11_sect]\nmodule = %s\npkcs11-module-path = %s\n"
            "pkcs11-module-token-pin = file:%s/pin.txt\npkcs11-module-cache-keys = true\n"
            "pkcs11-module-quirks = no-deinit\nactivate = 1\n",
            path, module, sandbox);
    if (fclose(f) != 0)
        die("cannot write %s: %s", conf_path, strerror(errno));
}

OSSL_LIB_CTX *peer_ctx(const char *path, const char *sandbox)
{
    if (access(path, R_OK) != 0)
        die("no peer provider module %s (bench/build-peer-provider.sh builds pkcs11-provider)",
            path);
    peer_conf_write(path, sandbox);
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (!ctx || !OSSL_LIB_CTX_load_config(ctx, conf_path))
        die("cannot load the peer provider %s with %s: %s", path, conf_path, last_error());
    if (!OSSL_PROVIDER_available(ctx, "pkcs11"))
        die("the peer provider %s is not active after loading %s: %s", path, conf_path,
            last_error());
    return ctx;
}

EVP_PKEY *store_load(OSSL_LIB_CTX *ctx, const char *uri, const char *who)
{
    EVP_PKEY *pkey = bench_store_key(ctx, uri);
    if (!pkey) {
        /* The URI without its query: it may hold the PIN. */
        die("%s did not load %.*s: %s", who, (int)strcspn(uri, "?"), uri,
            ERR_peek_last_error() ? last_error() : "no key");
    }
    ERR_clear_error();
    return pkey;
}
