/* The URI key file: a few DER bytes around a URI, wrapped in PEM by OpenSSL. */
#include "hsmtls/p11_keyfile.h"
#include "hsmtls/p11_uri.h"
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

/* A key file is a name for a key, readable by any program that loads it: it may not
 * choose the library that program loads (module-path, module-name: any .so's
 * constructor would run) nor its PIN (pin-value, or pin-source: any readable file's first
 * line would be sent to the token). Those come from the program's own configuration or
 * a URI the program itself was given. 0, or -1 with the attribute named (the URI must
 * parse, too). */
static int keyfile_uri_allowed(const char *text)
{
    hsmtls_p11_uri *u = hsmtls_p11_uri_parse(text);
    if (!u)
        return -1;
    const char *which = hsmtls_p11_uri_module_path(u)   ? "module-path"
                        : hsmtls_p11_uri_module_name(u) ? "module-name"
                        : hsmtls_p11_uri_pin_source(u)  ? "pin-source"
                        : hsmtls_p11_uri_pin_value(u)   ? "pin-value"
                                                        : NULL;
    int module = which && strncmp(which, "module", 6) == 0;
    hsmtls_p11_uri_free(u);
    if (!which)
        return 0;
    return hsmtls_p11_error_set(CKR_ACTION_PROHIBITED,
        "a key file may not name \"%s\": %s comes from the program's own configuration "
        "(%s), never from a key file", which, module ? "the PKCS#11 module" : "the PIN",
        module ? "openssl.cnf's pkcs11-module-path, HSMTLS_PKCS11_MODULE, p11-kit's registry"
               : "openssl.cnf's pkcs11-pin-source or pkcs11-pin, a PIN prompt or callback");
}

/* DER tag, length (short or long form) and value. */
static size_t put_tlv(unsigned char *out, unsigned char tag, const void *value, size_t len)
{
    size_t n = 0;
    out[n++] = tag;
    if (len < 0x80) {
        out[n++] = (unsigned char)len;
    } else if (len < 0x100) {
        out[n++] = 0x81;
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = 0x82;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    }
    if (value)
        memcpy(out + n, value, len);
    return n + (value ? len : 0);
}

/* Reads one TLV of the expected tag; returns the header length, 0 when malformed. */
static size_t get_tlv(const unsigned char *in, size_t avail, unsigned char tag, size_t *len)
{
    if (avail < 2 || in[0] != tag)
        return 0;
    size_t hdr = 2;
    if (in[1] < 0x80)
        *len = in[1];
    else if (in[1] == 0x81 && avail >= 3)
        *len = in[2], hdr = 3;
    else if (in[1] == 0x82 && avail >= 4)
        *len = ((size_t)in[2] << 8) | in[3], hdr = 4;
    else
        return 0;
    return hdr + *len <= avail ? hdr : 0;
}

char *hsmtls_p11_keyfile_pem(const char *uri)
{
    size_t ulen = strlen(uri), dlen = strlen(HSMTLS_P11_KEYFILE_DESC);
    if (ulen > HSMTLS_P11_KEYFILE_MAX_URI) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "URI too long for a key file (%zu bytes, at most %d)",
                             ulen, HSMTLS_P11_KEYFILE_MAX_URI);
        return NULL;
    }
    if (keyfile_uri_allowed(uri) < 0)
        return NULL;
    unsigned char body[65536], der[65536 + 8];
    size_t blen = put_tlv(body, 0x1a, HSMTLS_P11_KEYFILE_DESC, dlen);
    blen += put_tlv(body + blen, 0x0c, uri, ulen);
    size_t n = put_tlv(der, 0x30, NULL, blen);
    memcpy(der + n, body, blen);
    n += blen;

    BIO *mem = BIO_new(BIO_s_mem());
    char *pem = NULL;
    if (mem && PEM_write_bio(mem, HSMTLS_P11_KEYFILE_PEM_LABEL, "", der, (long)n) > 0) {
        char *data;
        long len = BIO_get_mem_data(mem, &data);
        pem = malloc((size_t)len + 1);
        if (pem) {
            memcpy(pem, data, (size_t)len);
            pem[len] = '\0';
        }
    }
    BIO_free(mem);
    if (!pem)
        hsmtls_p11_error_set(CKR_HOST_MEMORY, "cannot write the key file's PEM");
    return pem;
}

char *hsmtls_p11_keyfile_uri_from_der(const unsigned char *der, size_t len)
{
    size_t seq_len, desc_len, uri_len;
    size_t h = get_tlv(der, len, 0x30, &seq_len);
    const unsigned char *p = der + h;
    size_t hd = h ? get_tlv(p, seq_len, 0x1a, &desc_len) : 0;
    size_t hu = hd ? get_tlv(p + hd + desc_len, seq_len - hd - desc_len, 0x0c, &uri_len) : 0;
    if (!hu || strncmp((const char *)p + hd, "PKCS#11 Provider URI", 20) != 0) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "not a PKCS#11 URI key file (expected the %s structure)",
                             HSMTLS_P11_KEYFILE_DESC);
        return NULL;
    }
    const unsigned char *u = p + hd + desc_len + hu;
    if (uri_len < 7 || memchr(u, '\0', uri_len) || strncmp((const char *)u, "pkcs11:", 7) != 0) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "the key file's URI is not a pkcs11: URI");
        return NULL;
    }
    char *uri = malloc(uri_len + 1);
    if (!uri) {
        hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
        return NULL;
    }
    memcpy(uri, u, uri_len);
    uri[uri_len] = '\0';
    if (keyfile_uri_allowed(uri) < 0) {
        free(uri);
        return NULL;
    }
    return uri;
}
