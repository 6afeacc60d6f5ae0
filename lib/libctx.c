/* The library's own OSSL_LIB_CTX: applications need no openssl.cnf edits, and the
 * providers we load do not leak into the application's default context.
 *
 * It is made once per process and lives until exit: tearing a PKCS#11 provider down from
 * an exit path can crash inside SoftHSM's static destructors (FIELD-NOTES), and a context
 * reachable from a static is not a leak. The hsmtls provider is loaded at the first
 * pkcs11: reference, so file-only users never load a PKCS#11 module. */
#include "lib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/provider.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_LIB_CTX *libctx;
static OSSL_PROVIDER *default_prov, *hsmtls_prov;
static char loaded_from[4096];

OSSL_LIB_CTX *hsmtls__libctx(struct hsmtls_err *err)
{
    pthread_mutex_lock(&lock);
    if (!libctx) {
        OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
        OSSL_PROVIDER *def = ctx ? OSSL_PROVIDER_load(ctx, "default") : NULL;
        if (!def) {
            OSSL_LIB_CTX_free(ctx);
            pthread_mutex_unlock(&lock);
            hsmtls__err_ssl(err, "cannot make the library context with OpenSSL's default provider");
            return NULL;
        }
        default_prov = def;
        libctx = ctx;
    }
    pthread_mutex_unlock(&lock);
    return libctx;
}

static int is_file(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int hsmtls__load_provider(const char *path, struct hsmtls_err *err)
{
    if (!hsmtls__libctx(err))
        return HSMTLS_ERROR;
    char file[sizeof loaded_from];
    if (!path || !*path)
        path = hsmtls__provider_default_path();
    /* A directory names the module inside it; OpenSSL takes a name with a '/' as a path. */
    if (is_dir(path))
        snprintf(file, sizeof file, "%s/hsmtls.so", path);
    else
        snprintf(file, sizeof file, "%s", path);

    int rc = HSMTLS_OK;
    pthread_mutex_lock(&lock);
    if (hsmtls_prov) {
        /* One provider per process context; a second path is an application mistake. */
        if (strcmp(file, loaded_from) != 0)
            rc = hsmtls__err_set(err, "the hsmtls provider is already loaded from %s, not %s",
                              hsmtls__short(loaded_from).s, hsmtls__short(file).s);
    } else if (!is_file(file)) {
        rc = hsmtls__err_set(err, "the hsmtls provider is not available (no module at %s; "
                          "set HSMTLS_PROVIDER or hsmtls_config_set_provider_path)", hsmtls__short(file).s);
    } else if (!(hsmtls_prov = OSSL_PROVIDER_load(libctx, file))) {
        rc = hsmtls__err_ssl(err, "the hsmtls provider is not available (loading %s failed)", hsmtls__short(file).s);
    } else {
        snprintf(loaded_from, sizeof loaded_from, "%s", file);
    }
    pthread_mutex_unlock(&lock);
    if (rc == HSMTLS_OK)
        (void)hsmtls__token_apply_settings(); /* the context exists: cannot fail here */
    return rc;
}
