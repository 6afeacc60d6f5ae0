/* hsmtls_key: a private key (Qt's QSslKey) from a file, memory or a pkcs11: URI. A token
 * key is an opaque handle: its private half never leaves the token, and signing
 * happens there. Reference-counted and immutable. */
#ifndef HSMTLS_KEY_H
#define HSMTLS_KEY_H

#include <stddef.h>

#include "hsmtls/cert.h"
#include "hsmtls/config.h"
#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_key hsmtls_key;

/* The first private key a path, file: URI or pkcs11: URI holds; cb (may be NULL) is
 * asked for a passphrase or PIN as hsmtls_config_set_pin_cb describes. pkcs11: URIs
 * load the hsmtls provider from its default place (see config.h). */
hsmtls_key *hsmtls_key_load(const char *ref, hsmtls_pin_cb cb, void *arg);
hsmtls_key *hsmtls_key_load_mem(const void *data, size_t len, hsmtls_pin_cb cb, void *arg);
int hsmtls_key_up_ref(hsmtls_key *key);
void hsmtls_key_free(hsmtls_key *key);

/* "RSA", "EC", "ED25519", "ED448", "RSA-PSS". */
const char *hsmtls_key_type(const hsmtls_key *key);
int hsmtls_key_bits(const hsmtls_key *key);
enum hsmtls_location hsmtls_key_location(const hsmtls_key *key);
/* The reference it was loaded from, without any PIN; NULL for memory. */
const char *hsmtls_key_ref(const hsmtls_key *key);
/* 1 when key is the private half of the certificate's public key. */
int hsmtls_key_matches(const hsmtls_key *key, const hsmtls_cert *cert);
/* The public half as PEM (SubjectPublicKeyInfo), snprintf-style like hsmtls_cert_pem. */
int hsmtls_key_public_pem(const hsmtls_key *key, char *buf, size_t size);

/* Use this key / certificate object in a config (the same match check as the
 * reference setters). */
int hsmtls_config_use_key(hsmtls_config *cfg, const hsmtls_key *key);
int hsmtls_config_use_cert(hsmtls_config *cfg, const hsmtls_cert *cert);

#ifdef __cplusplus
}
#endif
#endif
