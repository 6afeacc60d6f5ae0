/* OpenSSL digests as PKCS#11 names them in mechanism parameters: the hash of RSA-PSS
 * and RSA-OAEP and the MGF1 variant that goes with it. Shared by the signature and
 * asymmetric cipher code. Also the provider's cache of fetched digests (provider.h). */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/obj_mac.h>

static const struct {
    const char *md;
    int nid;
    CK_MECHANISM_TYPE hash;
    CK_RSA_PKCS_MGF_TYPE mgf;
} hashes[] = {
    { "SHA1", NID_sha1, CKM_SHA_1, CKG_MGF1_SHA1 },
    { "SHA2-224", NID_sha224, CKM_SHA224, CKG_MGF1_SHA224 },
    { "SHA2-256", NID_sha256, CKM_SHA256, CKG_MGF1_SHA256 },
    { "SHA2-384", NID_sha384, CKM_SHA384, CKG_MGF1_SHA384 },
    { "SHA2-512", NID_sha512, CKM_SHA512, CKG_MGF1_SHA512 },
};

int hsmtls_pkcs11_hash(const EVP_MD *md, CK_MECHANISM_TYPE *hash, CK_RSA_PKCS_MGF_TYPE *mgf)
{
    if (!md)
        return 0;
    /* The digest's NID is a field of the EVP_MD; EVP_MD_is_a() looks names up. */
    int nid = EVP_MD_get_type(md);
    size_t i, n = sizeof hashes / sizeof hashes[0];
    for (i = 0; i < n && !(nid != NID_undef && nid == hashes[i].nid); i++)
        ;
    for (size_t j = 0; i == n && j < n; j++)
        if (EVP_MD_is_a(md, hashes[j].md))
            i = j;
    if (i == n)
        return 0;
    if (hash)
        *hash = hashes[i].hash;
    if (mgf)
        *mgf = hashes[i].mgf;
    return 1;
}

/* ---- the digest cache ------------------------------------------------------------ */

static void keep_name(const char *name, void *arg)
{
    hsmtls_digest_entry *e = arg;
    for (size_t i = 0; i < HSMTLS_DIGEST_NAMES; i++)
        if (!e->names[i]) {
            e->names[i] = strdup(name);
            return;
        }
}

void hsmtls_digests_load(hsmtls_provctx *pc)
{
    for (size_t i = 0; i < HSMTLS_DIGEST_CACHE && i < sizeof hashes / sizeof hashes[0]; i++) {
        hsmtls_digest_entry *e = &pc->digests[i];
        if (!(e->md = EVP_MD_fetch(pc->sw, hashes[i].md, NULL)))
            continue;
        if (!EVP_MD_names_do_all(e->md, keep_name, e)) {
            EVP_MD_free(e->md);
            e->md = NULL;
        }
    }
}

void hsmtls_digests_free(hsmtls_provctx *pc)
{
    for (size_t i = 0; i < HSMTLS_DIGEST_CACHE; i++) {
        hsmtls_digest_entry *e = &pc->digests[i];
        EVP_MD_free(e->md);
        e->md = NULL;
        for (size_t j = 0; j < HSMTLS_DIGEST_NAMES; j++) {
            free(e->names[j]);
            e->names[j] = NULL;
        }
    }
}

EVP_MD *hsmtls_digest_fetch(hsmtls_provctx *pc, const char *name, const char *props)
{
    if (name && (!props || !*props))
        for (size_t i = 0; i < HSMTLS_DIGEST_CACHE; i++) {
            const hsmtls_digest_entry *e = &pc->digests[i];
            for (size_t j = 0; e->md && j < HSMTLS_DIGEST_NAMES && e->names[j]; j++)
                if (strcasecmp(name, e->names[j]) == 0)
                    return EVP_MD_up_ref(e->md) ? e->md : NULL;
        }
    return EVP_MD_fetch(pc->sw, name, props);
}
