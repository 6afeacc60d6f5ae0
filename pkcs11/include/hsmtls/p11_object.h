/* Objects on tokens (keys and certificates) and the operations on keys. An object is
 * found once, its public attributes read once, and it is kept for the process: the
 * handle is reused, looked up again only when the token says it is stale. */
#ifndef HSMTLS_P11_OBJECT_H
#define HSMTLS_P11_OBJECT_H

#include <stddef.h>
#include <p11-kit/pkcs11.h>
#include <openssl/evp.h>
#include "hsmtls/p11_error.h"
#include "hsmtls/p11_token.h"
#include "hsmtls/p11_uri.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_p11_object hsmtls_p11_object;

#define HSMTLS_P11_ANY_CLASS ((CK_OBJECT_CLASS)-1)

/* Every key (RSA, EC, EdDSA) and X.509 certificate the URI matches, on every token it
 * matches; objects of other types are skipped. `cls` narrows further
 * (HSMTLS_P11_ANY_CLASS: as the URI's type= says). Logs in as opt->login says.
 * `*out` is malloc'd (free() it); objects are the core's. 0 objects is not an error. */
int hsmtls_p11_objects_list(const hsmtls_p11_uri *uri, const hsmtls_p11_lookup *opt,
                            CK_OBJECT_CLASS cls, hsmtls_p11_object ***out, size_t *n);

/* The first matching object of class `cls`; none is an error that quotes the URI and
 * names the objects that do exist on the token. */
hsmtls_p11_object *hsmtls_p11_object_find(const hsmtls_p11_uri *uri,
                                          const hsmtls_p11_lookup *opt, CK_OBJECT_CLASS cls);


hsmtls_p11_token *hsmtls_p11_object_token(const hsmtls_p11_object *o);
CK_OBJECT_CLASS hsmtls_p11_object_class(const hsmtls_p11_object *o);
CK_KEY_TYPE hsmtls_p11_object_key_type(const hsmtls_p11_object *o);   /* certs: of their key */
const char *hsmtls_p11_object_label(const hsmtls_p11_object *o);      /* "" when none */
const unsigned char *hsmtls_p11_object_id(const hsmtls_p11_object *o, size_t *len);
unsigned hsmtls_p11_object_bits(const hsmtls_p11_object *o);
/* "P-256", "P-384", "P-521", "ED25519", "ED448"; NULL for RSA and certificates. */
const char *hsmtls_p11_object_curve(const hsmtls_p11_object *o);
int hsmtls_p11_object_always_authenticate(const hsmtls_p11_object *o);
const unsigned char *hsmtls_p11_object_cert_der(const hsmtls_p11_object *o, size_t *len);
/* The object's URI, malloc'd; pasted back it finds this object. */
char *hsmtls_p11_object_uri(const hsmtls_p11_object *o);

/* The curve a CKA_EC_PARAMS value names, whether an OID or a PrintableString name
 * ("edwards25519"): "P-256", "P-384", "P-521", "ED25519", "ED448", with its size in
 * *bits; NULL for a curve the core does not support. */
const char *hsmtls_p11_curve_from_params(const unsigned char *params, size_t len, unsigned *bits);

/* The public half as a software key in `libctx` (NULL: default), for verifying and for
 * giving OpenSSL the public parameters. NULL with a message when it is not known. */
EVP_PKEY *hsmtls_p11_object_public_key(hsmtls_p11_object *o, OSSL_LIB_CTX *libctx,
                                       const char *propq);

/* Largest signature the key makes, in bytes. */
size_t hsmtls_p11_object_signature_size(const hsmtls_p11_object *o);

/* Operations. Each runs on a pooled session; a lost session is replaced and a stale
 * handle looked up again, once. A warm key signs with exactly C_SignInit and C_Sign
 * (and C_Login(CKU_CONTEXT_SPECIFIC) between them for CKA_ALWAYS_AUTHENTICATE keys).
 * `*out_len` holds the buffer size on entry and the result length on return. */
int hsmtls_p11_sign(hsmtls_p11_object *key, const CK_MECHANISM *mech,
                    const unsigned char *in, size_t in_len,
                    unsigned char *out, size_t *out_len);
int hsmtls_p11_decrypt(hsmtls_p11_object *key, const CK_MECHANISM *mech,
                       const unsigned char *in, size_t in_len,
                       unsigned char *out, size_t *out_len);
/* ECDH (CKM_ECDH1_DERIVE, no KDF): the shared secret's x coordinate. */
int hsmtls_p11_derive(hsmtls_p11_object *key, const unsigned char *peer_point,
                      size_t peer_len, unsigned char *out, size_t *out_len);

/* Keys cached inside the token. Before its first operation, a token's private key is
 * copied into a session object (C_CopyObject with CKA_TOKEN false) held by a session the
 * core keeps open for the token, and operations use the copy: SoftHSM2 re-reads a token
 * object's file on every operation, not a session object's. The copy never leaves the
 * token. It is made once per key while the module stays up (again after a restart, a
 * fork, or when the token drops it), only for keys whose CKA_COPYABLE is not false, and
 * kept only when it has the key's CKA_SENSITIVE and CKA_EXTRACTABLE; otherwise the key
 * itself is used. On by default; off with this setting or HSMTLS_KEY_CACHE=0 in the
 * environment (process-wide, like the rest of the core's state). The trade-off: the copy
 * holds one more object in the token's memory for as long as the process runs. */
void hsmtls_p11_key_cache_set(int enabled);
int hsmtls_p11_key_cache_enabled(void);
/* 1 while operations on `key` use a copy inside the token, 0 when they use the key. */
int hsmtls_p11_object_cached(const hsmtls_p11_object *key);
/* Copies of `key` made in this process (C_CopyObject calls that succeeded and were kept). */
unsigned long hsmtls_p11_object_copies(const hsmtls_p11_object *key);

/* Key pair generation on a token. The private key is made sensitive, never
 * extractable, and allowed to sign (and decrypt for RSA, derive for EC); the public key
 * is kept on the token beside it with the same label and id. */
typedef struct hsmtls_p11_keygen {
    CK_KEY_TYPE key_type;       /* CKK_RSA, CKK_EC or CKK_EC_EDWARDS */
    unsigned bits;              /* RSA modulus size (default 2048) */
    const char *curve;          /* "P-256", "P-384", "P-521", "ED25519", "ED448" */
    const char *label;          /* required */
    const unsigned char *id;    /* optional; without one the label alone names the pair */
    size_t id_len;
} hsmtls_p11_keygen;

/* Generates on the token `uri` names (logging in as `opt` says) and returns the new
 * private key; an existing object with the same label and id is an error, never
 * overwritten. */
hsmtls_p11_object *hsmtls_p11_generate_key_pair(const hsmtls_p11_uri *uri,
                                                const hsmtls_p11_lookup *opt,
                                                const hsmtls_p11_keygen *spec);

#ifdef __cplusplus
}
#endif
#endif
