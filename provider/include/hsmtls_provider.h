/* The contract between the hsmtls provider and the code that loads it (libhsmtls, the
 * engine): the provider's name, what it answers to OSSL_PROVIDER_get_params, and where
 * it is found. Both sides include this one header, so no name is written twice. Not
 * installed: applications ask libhsmtls (hsmtls/token.h), not the provider. */
#ifndef HSMTLS_PROVIDER_CONTRACT_H
#define HSMTLS_PROVIDER_CONTRACT_H

#include <stdint.h>

/* The name OpenSSL knows the provider by (openssl.cnf sections, "provider=hsmtls"). */
#define HSMTLS_PROVIDER_NAME "hsmtls"

/* Gettable: an octet string holding one struct hsmtls_provider_counters, what libhsmtls
 * reads from and sets in the process's one PKCS#11 core. Other providers do not know
 * the name and leave the parameter unmodified, which is how a caller tells the hsmtls
 * provider apart whatever path it was loaded from. */
#define HSMTLS_PROVIDER_PARAM_COUNTERS "hsmtls-counters"
#define HSMTLS_PROVIDER_COUNTERS_VERSION 2

struct hsmtls_provider_counters {
    uint32_t version;           /* HSMTLS_PROVIDER_COUNTERS_VERSION */
    /* Successful C_Sign calls that returned a signature, made in this process on the
     * tokens labelled `label` (NULL: every token), counted by the process's one PKCS#11
     * core; live, so a caller keeps the struct and asks again. */
    uint64_t (*token_signatures)(const char *label);
    /* The core's key cache inside the token, on or off for the process
     * (hsmtls_p11_key_cache_set). */
    void (*key_cache_set)(int enabled);
};

/* Where the provider is loaded from when the program names none: $HSMTLS_PROVIDER; else
 * the build tree's provider for code that runs from the build tree (tests, build/bin);
 * else the path `cmake --install` puts it at. provider/locate.c, linked into libhsmtls
 * and the engine. */
const char *hsmtls__provider_default_path(void);

#endif
