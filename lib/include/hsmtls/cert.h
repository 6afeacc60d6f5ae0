/* hsmtls_cert: one X.509 certificate (Qt's QSslCertificate), from a file, memory, a
 * pkcs11: URI, or a connection's peer chain. Reference-counted and immutable, so one
 * may be shared between threads. Buffers are the caller's: the _pem/_der calls work
 * like snprintf, returning the size needed. */
#ifndef HSMTLS_CERT_H
#define HSMTLS_CERT_H

#include <stddef.h>
#include <time.h>

#include "hsmtls/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_cert hsmtls_cert;

/* The first certificate a path, file: URI or pkcs11: URI holds (NULL + message when
 * none); pkcs11: URIs need the hsmtls provider (see hsmtls_config_set_provider_path). */
hsmtls_cert *hsmtls_cert_load(const char *ref);
/* The first certificate in PEM or DER bytes. */
hsmtls_cert *hsmtls_cert_load_mem(const void *data, size_t len);
int hsmtls_cert_up_ref(hsmtls_cert *cert);
void hsmtls_cert_free(hsmtls_cert *cert);

/* RFC 2253 names ("CN=localhost,O=Example"), valid while the certificate lives. */
const char *hsmtls_cert_subject(const hsmtls_cert *cert);
const char *hsmtls_cert_issuer(const hsmtls_cert *cert);
/* The serial number in hex ("1A2B..."). */
const char *hsmtls_cert_serial(const hsmtls_cert *cert);
time_t hsmtls_cert_not_before(const hsmtls_cert *cert);
time_t hsmtls_cert_not_after(const hsmtls_cert *cert);
int hsmtls_cert_is_self_signed(const hsmtls_cert *cert);
/* 1 when both are the same certificate (same DER bytes). */
int hsmtls_cert_equal(const hsmtls_cert *a, const hsmtls_cert *b);
/* SHA-256 of the DER bytes into out[32]. */
int hsmtls_cert_sha256(const hsmtls_cert *cert, unsigned char out[32]);
/* The certificate as PEM text (NUL-terminated) or DER bytes; returns the length
 * (without the NUL), which may exceed size (nothing is written then), or a status. */
int hsmtls_cert_pem(const hsmtls_cert *cert, char *buf, size_t size);
int hsmtls_cert_der(const hsmtls_cert *cert, unsigned char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
