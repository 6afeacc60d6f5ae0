/* What the provider's parts share: the provider context, the key object that the
 * store, key management and signature code pass between them, and error reporting
 * through the core (so `openssl` prints the PKCS#11 core's message). */
#ifndef HSMTLS_PROVIDER_H
#define HSMTLS_PROVIDER_H

#include <stdarg.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include "hsmtls/p11_object.h"
#include "hsmtls/p11_token.h"

/* The name every algorithm is registered under ("provider=hsmtls"); software work is
 * done in a library context of our own, so it never lands back here. */
#define HSMTLS_PROV_NAME "hsmtls"
#define HSMTLS_PROV_PROPS "provider=" HSMTLS_PROV_NAME

/* Our signatures' own names, besides the usual ones (see keymgmt.c's OPNAME). */
#define HSMTLS_SIG_RSA "HSMTLS-RSA"
#define HSMTLS_SIG_ECDSA "HSMTLS-ECDSA"
#define HSMTLS_SIG_ED25519 "HSMTLS-ED25519"
#define HSMTLS_SIG_ED448 "HSMTLS-ED448"

/* Digests fetched once, when the provider starts (digests.c): each TLS handshake names
 * one in each of its two signature initialisations, and a fetch by name takes locks and
 * hash lookups every time. Each entry keeps the digest's names (aliases, OID). */
#define HSMTLS_DIGEST_CACHE 5
#define HSMTLS_DIGEST_NAMES 8
typedef struct hsmtls_digest_entry {
    EVP_MD *md;
    char *names[HSMTLS_DIGEST_NAMES];
} hsmtls_digest_entry;

typedef struct hsmtls_provctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_FUNC_core_new_error_fn *core_new_error;
    OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
    OSSL_FUNC_core_vset_error_fn *core_vset_error;
    /* The core's BIO calls: decoders read key files, encoders write them. */
    OSSL_FUNC_BIO_read_ex_fn *core_bio_read_ex;
    OSSL_FUNC_BIO_write_ex_fn *core_bio_write_ex;
    OSSL_FUNC_BIO_gets_fn *core_bio_gets;
    /* A private library context with only the default provider: public-key
     * arithmetic, digests and signature verification happen there. */
    OSSL_LIB_CTX *sw;
    OSSL_PROVIDER *sw_default;
    hsmtls_digest_entry digests[HSMTLS_DIGEST_CACHE]; /* read-only after init */
    /* From openssl.cnf's provider section; the URI's own attributes win. */
    char *module_path;
    char *pin;
    char *pin_source;
    enum hsmtls_p11_login_mode login;  /* pkcs11-login */
    unsigned operations;               /* pkcs11-operations: HSMTLS_OPS_* bits */
    /* A bad setting. The provider stays loaded but offers only its store, which
     * reports this on every open: OpenSSL drops errors raised at provider init, and
     * a missing provider would only say "unregistered scheme". */
    char config_error[256];
} hsmtls_provctx;

/* What pkcs11-operations may offer; key management is always there. */
enum {
    HSMTLS_OPS_STORE = 1 << 0,    /* "store": pkcs11: URIs through OSSL_STORE */
    HSMTLS_OPS_SIGN = 1 << 1,     /* "sign" */
    HSMTLS_OPS_DECRYPT = 1 << 2,  /* "decrypt": RSA decryption, TLS 1.2 RSA key exchange */
    HSMTLS_OPS_DERIVE = 1 << 3,   /* "derive": ECDH */
    HSMTLS_OPS_KEYFILE = 1 << 4,  /* "keyfile": URI key files read and written */
    HSMTLS_OPS_ALL = (1 << 5) - 1,
};

/* Reason codes (the provider's reason strings in provider.c). */
enum {
    HSMTLS_R_PKCS11 = 1,          /* the PKCS#11 core failed; the message says why */
    HSMTLS_R_PRIVATE_KEY_EXPORT,  /* a token's private key cannot leave it */
    HSMTLS_R_UNSUPPORTED,         /* a mode, digest or key type we do not do */
    HSMTLS_R_BAD_ARGUMENT,
    HSMTLS_R_INTERNAL,
};

void hsmtls_prov_error(const hsmtls_provctx *pc, int reason, const char *file, int line,
                       const char *func, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same with a message already made: no formatting, for errors raised often (a
 * refused export that libcrypto asks for, and drops, on every signature init). */
void hsmtls_prov_error_text(const hsmtls_provctx *pc, int reason, const char *file, int line,
                            const char *func, const char *text);
#define HSMTLS_PROV_ERR(pc, reason, ...) \
    hsmtls_prov_error((pc), (reason), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, __VA_ARGS__)
/* The PKCS#11 core's last message, prefixed with what we were doing. */
#define HSMTLS_PROV_P11_ERR(pc, what) \
    HSMTLS_PROV_ERR((pc), HSMTLS_R_PKCS11, "%s: %s", (what), hsmtls_p11_error_message())

/* A key as the provider holds it. A token key (priv and/or pub set) or a public key
 * imported from software (only `soft`): libcrypto imports a certificate's key here to
 * compare it with ours. `soft` is the public half in pc->sw, always set once the key
 * is complete; token objects are the core's and never freed. */
typedef struct hsmtls_key {
    hsmtls_provctx *pc;
    const char *type;             /* "RSA", "EC", "ED25519", "ED448" */
    hsmtls_p11_object *priv;
    hsmtls_p11_object *pub;
    EVP_PKEY *soft;
    /* Why the private half cannot be exported, made on the first refusal (set once,
     * atomically; freed with the key). */
    char *export_refusal;
    /* EC: the group's name as the default provider gives it, kept when the key is made
     * (libssl asks for it twice per handshake); empty when unknown. */
    char group[64];
} hsmtls_key;

/* The reference the store hands libcrypto for a key, and keymgmt load() takes back.
 * It lives in the store's context only while the object callback runs. */
#define HSMTLS_KEY_REF_MAGIC 0x68736d6bu /* "hsmk" */
typedef struct hsmtls_key_ref {
    unsigned magic;
    hsmtls_provctx *pc;
    hsmtls_p11_object *object;
} hsmtls_key_ref;

/* The first key of type `key_type` ("RSA", "EC", ...; NULL: any) that `uri` names, looked up
 * exactly as the store's load() does (same classes, PIN order and errors), handed to
 * object_cb by reference. `expect` is an OSSL_STORE_INFO_* (0: as the URI says).
 * Returns 1 when a key was passed on or the URI names no key of that type (quietly:
 * another key type's decoder may take it), 0 with an error when the lookup failed. */
int hsmtls_store_load_key(hsmtls_provctx *pc, const char *uri, int expect, const char *key_type,
                          OSSL_CALLBACK *object_cb, void *object_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg);

/* "RSA", "EC", "ED25519", "ED448" for a token object's key type (certificates: their
 * key's), NULL for a type we do not handle. */
const char *hsmtls_key_type_name(const hsmtls_p11_object *o);

/* The core's lookup options with the provider's configuration filled in. */
hsmtls_p11_lookup hsmtls_prov_lookup(const hsmtls_provctx *pc);

/* The PKCS#11 hash mechanism and MGF1 type for a digest (digests.c); 0 when PKCS#11
 * has none for it. Either out-pointer may be NULL. */
int hsmtls_pkcs11_hash(const EVP_MD *md, CK_MECHANISM_TYPE *hash, CK_RSA_PKCS_MGF_TYPE *mgf);

/* The digest cache (digests.c): filled at provider start (a digest that fails to fetch
 * is simply not cached), emptied at teardown. */
void hsmtls_digests_load(hsmtls_provctx *pc);
void hsmtls_digests_free(hsmtls_provctx *pc);
/* A digest in pc->sw by name, as EVP_MD_fetch(pc->sw, name, props) gives it (a
 * reference the caller frees): from the cache when `props` is empty and the name is one
 * of a cached digest's names, else fetched. */
EVP_MD *hsmtls_digest_fetch(hsmtls_provctx *pc, const char *name, const char *props);

/* Dispatch tables, by concern. */
extern const OSSL_DISPATCH hsmtls_store_functions[];
extern const OSSL_DISPATCH hsmtls_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH hsmtls_ec_keymgmt_functions[];
extern const OSSL_DISPATCH hsmtls_ed25519_keymgmt_functions[];
extern const OSSL_DISPATCH hsmtls_ed448_keymgmt_functions[];
extern const OSSL_DISPATCH hsmtls_rsa_signature_functions[];
extern const OSSL_DISPATCH hsmtls_ecdsa_signature_functions[];
extern const OSSL_DISPATCH hsmtls_eddsa_signature_functions[];
extern const OSSL_DISPATCH hsmtls_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH hsmtls_ecdh_keyexch_functions[];
extern const OSSL_DISPATCH hsmtls_keyfile_pem_decoder_functions[];
extern const OSSL_DISPATCH hsmtls_rsa_keyfile_decoder_functions[];
extern const OSSL_DISPATCH hsmtls_ec_keyfile_decoder_functions[];
extern const OSSL_DISPATCH hsmtls_ed25519_keyfile_decoder_functions[];
extern const OSSL_DISPATCH hsmtls_ed448_keyfile_decoder_functions[];
extern const OSSL_DISPATCH hsmtls_keyfile_encoder_functions[];

#endif
