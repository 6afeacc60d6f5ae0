/* hsmtls_key: an EVP_PKEY from the one loader, with where it came from. For a token key
 * the EVP_PKEY belongs to the hsmtls provider and holds only a handle. */
#include "lib_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "hsmtls/key.h"

struct hsmtls_key {
    atomic_int refs;
    EVP_PKEY *pkey;
    char *ref;
    enum hsmtls_location loc;
};

static hsmtls_key *wrap(EVP_PKEY *pkey, const char *ref)
{
    hsmtls_key *k = pkey ? calloc(1, sizeof *k) : NULL;
    if (!k) {
        if (pkey)
            hsmtls__err_set(NULL, "out of memory");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    atomic_init(&k->refs, 1);
    k->pkey = pkey;
    k->ref = hsmtls__redact(ref);
    k->loc = !ref ? HSMTLS_LOC_MEMORY : hsmtls__is_token_ref(ref) ? HSMTLS_LOC_TOKEN : HSMTLS_LOC_FILE;
    return k;
}

hsmtls_key *hsmtls_key_load(const char *ref, hsmtls_pin_cb cb, void *arg)
{
    if (!ref) {
        hsmtls__err_set(NULL, "hsmtls_key_load: no reference");
        return NULL;
    }
    struct hsmtls_pin pin = { .cb = cb, .arg = arg };
    return wrap(hsmtls__load_key(ref, NULL, 0, &pin, NULL, NULL), ref);
}

hsmtls_key *hsmtls_key_load_mem(const void *data, size_t len, hsmtls_pin_cb cb, void *arg)
{
    if (!data || !len) {
        hsmtls__err_set(NULL, "hsmtls_key_load_mem: no data");
        return NULL;
    }
    struct hsmtls_pin pin = { .cb = cb, .arg = arg };
    return wrap(hsmtls__load_key(NULL, data, len, &pin, NULL, NULL), NULL);
}

int hsmtls_key_up_ref(hsmtls_key *key)
{
    if (!key)
        return HSMTLS_ERROR;
    atomic_fetch_add(&key->refs, 1);
    return HSMTLS_OK;
}

void hsmtls_key_free(hsmtls_key *key)
{
    if (!key || atomic_fetch_sub(&key->refs, 1) != 1)
        return;
    EVP_PKEY_free(key->pkey);
    free(key->ref);
    free(key);
}

const char *hsmtls_key_type(const hsmtls_key *key)
{
    const char *t = EVP_PKEY_get0_type_name(key->pkey);
    return t ? t : "unknown";
}

int hsmtls_key_bits(const hsmtls_key *key) { return EVP_PKEY_get_bits(key->pkey); }
enum hsmtls_location hsmtls_key_location(const hsmtls_key *key) { return key->loc; }
const char *hsmtls_key_ref(const hsmtls_key *key) { return key->ref; }
EVP_PKEY *hsmtls__key_pkey(const hsmtls_key *key) { return key->pkey; }

int hsmtls_key_matches(const hsmtls_key *key, const hsmtls_cert *cert)
{
    int ok = key && cert && X509_check_private_key(hsmtls__cert_x509(cert), key->pkey) == 1;
    ERR_clear_error();
    return ok;
}

int hsmtls_key_public_pem(const hsmtls_key *key, char *buf, size_t size)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_PUBKEY(b, key->pkey)) {
        BIO_free(b);
        return hsmtls__err_ssl(NULL, "cannot write the public key as PEM");
    }
    return hsmtls__bio_take_string(b, buf, size);
}
