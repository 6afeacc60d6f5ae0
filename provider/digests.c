/* OpenSSL digests as PKCS#11 names them in mechanism parameters: the hash of RSA-PSS
 * and RSA-OAEP and the MGF1 variant that goes with it. Shared by the signature and
 * asymmetric cipher code. */
#include "provider.h"

static const struct {
    const char *md;
    CK_MECHANISM_TYPE hash;
    CK_RSA_PKCS_MGF_TYPE mgf;
} hashes[] = {
    { "SHA1", CKM_SHA_1, CKG_MGF1_SHA1 },
    { "SHA2-224", CKM_SHA224, CKG_MGF1_SHA224 },
    { "SHA2-256", CKM_SHA256, CKG_MGF1_SHA256 },
    { "SHA2-384", CKM_SHA384, CKG_MGF1_SHA384 },
    { "SHA2-512", CKM_SHA512, CKG_MGF1_SHA512 },
};

int hsmtls_pkcs11_hash(const EVP_MD *md, CK_MECHANISM_TYPE *hash, CK_RSA_PKCS_MGF_TYPE *mgf)
{
    for (size_t i = 0; md && i < sizeof hashes / sizeof hashes[0]; i++)
        if (EVP_MD_is_a(md, hashes[i].md)) {
            if (hash)
                *hash = hashes[i].hash;
            if (mgf)
                *mgf = hashes[i].mgf;
            return 1;
        }
    return 0;
}
