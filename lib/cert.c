/* hsmtls_cert: an immutable, reference-counted X509 with its names worked out once, so
 * the getters need no locks and no allocation. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct hsmtls_cert {
    atomic_int refs;
    X509 *x509;
    char *subject, *issuer, *serial;
    time_t not_before, not_after;
};

char *hsmtls__name_line(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if ((s = malloc((size_t)n + 1))) {
            memcpy(s, data, (size_t)n);
            s[n] = '\0';
        }
    }
    BIO_free(b);
    return s;
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return (time_t)-1;
    return timegm(&tm);
}

hsmtls_cert *hsmtls__cert_wrap(X509 *x)
{
    hsmtls_cert *c = calloc(1, sizeof *c);
    if (!c || !X509_up_ref(x)) {
        free(c);
        hsmtls__err_set(NULL, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->x509 = x;
    c->subject = hsmtls__name_line(X509_get_subject_name(x));
    c->issuer = hsmtls__name_line(X509_get_issuer_name(x));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn) {
        char *hex = BN_bn2hex(bn);
        c->serial = hex ? strdup(hex) : NULL;
        OPENSSL_free(hex);
        BN_free(bn);
    }
    c->not_before = asn1_time(X509_get0_notBefore(x));
    c->not_after = asn1_time(X509_get0_notAfter(x));
    if (!c->subject || !c->issuer || !c->serial) {
        hsmtls_cert_free(c);
        hsmtls__err_set(NULL, "out of memory");
        return NULL;
    }
    return c;
}

X509 *hsmtls__cert_x509(const hsmtls_cert *cert) { return cert->x509; }

static hsmtls_cert *first_of(STACK_OF(X509) *certs)
{
    if (!certs)
        return NULL;
    hsmtls_cert *c = hsmtls__cert_wrap(sk_X509_value(certs, 0));
    sk_X509_pop_free(certs, X509_free);
    return c;
}

hsmtls_cert *hsmtls_cert_load(const char *ref)
{
    if (!ref) {
        hsmtls__err_set(NULL, "hsmtls_cert_load: no reference");
        return NULL;
    }
    return first_of(hsmtls__load_certs(ref, NULL, 0, NULL, NULL, NULL));
}

hsmtls_cert *hsmtls_cert_load_mem(const void *data, size_t len)
{
    if (!data || !len) {
        hsmtls__err_set(NULL, "hsmtls_cert_load_mem: no data");
        return NULL;
    }
    return first_of(hsmtls__load_certs(NULL, data, len, NULL, NULL, NULL));
}

int hsmtls_cert_up_ref(hsmtls_cert *cert)
{
    if (!cert)
        return HSMTLS_ERROR;
    atomic_fetch_add(&cert->refs, 1);
    return HSMTLS_OK;
}

void hsmtls_cert_free(hsmtls_cert *cert)
{
    if (!cert || atomic_fetch_sub(&cert->refs, 1) != 1)
        return;
    X509_free(cert->x509);
    free(cert->subject);
    free(cert->issuer);
    free(cert->serial);
    free(cert);
}

const char *hsmtls_cert_subject(const hsmtls_cert *cert) { return cert->subject; }
const char *hsmtls_cert_issuer(const hsmtls_cert *cert) { return cert->issuer; }
const char *hsmtls_cert_serial(const hsmtls_cert *cert) { return cert->serial; }
time_t hsmtls_cert_not_before(const hsmtls_cert *cert) { return cert->not_before; }
time_t hsmtls_cert_not_after(const hsmtls_cert *cert) { return cert->not_after; }

int hsmtls_cert_is_self_signed(const hsmtls_cert *cert)
{
    /* X509_check_issued compares names and key identifiers; no signature check */
    return X509_check_issued(cert->x509, cert->x509) == X509_V_OK;
}

int hsmtls_cert_equal(const hsmtls_cert *a, const hsmtls_cert *b)
{
    return a && b && X509_cmp(a->x509, b->x509) == 0;
}

int hsmtls_cert_sha256(const hsmtls_cert *cert, unsigned char out[32])
{
    unsigned int n = 0;
    if (!X509_digest(cert->x509, EVP_sha256(), out, &n) || n != 32)
        return hsmtls__err_ssl(NULL, "SHA-256 of a certificate failed");
    return HSMTLS_OK;
}

int hsmtls__bio_take_string(BIO *b, char *buf, size_t size)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (buf && (size_t)n < size) {
        memcpy(buf, data, (size_t)n);
        buf[n] = '\0';
    }
    BIO_free(b);
    return (int)n;
}

int hsmtls_cert_pem(const hsmtls_cert *cert, char *buf, size_t size)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, cert->x509)) {
        BIO_free(b);
        return hsmtls__err_ssl(NULL, "cannot write a certificate as PEM");
    }
    return hsmtls__bio_take_string(b, buf, size);
}

int hsmtls_cert_der(const hsmtls_cert *cert, unsigned char *buf, size_t size)
{
    int n = i2d_X509(cert->x509, NULL);
    if (n <= 0)
        return hsmtls__err_ssl(NULL, "cannot write a certificate as DER");
    if (buf && (size_t)n <= size) {
        unsigned char *p = buf;
        i2d_X509(cert->x509, &p);
    }
    return n;
}
