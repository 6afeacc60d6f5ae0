/* URI key files: the "PKCS#11 PROVIDER URI" PEM format (hsmtls/p11_keyfile.h, the one
 * OpenSSL's pkcs11-provider uses), read by decoders and written by an encoder.
 *
 * Reading. Programs that take only a key file (nginx, Python's ssl, s_server -key FILE)
 * decode it with OSSL_DECODER. Two steps, as OpenSSL does for PEM keys:
 *   PEM decoder ("DER", input=pem): for our label, resolves the URI (so that a
 *     failure is reported: libcrypto's file store drops what decoders further down
 *     say) and passes the DER body on, typed with the key's type; any other label (or
 *     no PEM at all) is not ours and is left quietly to other decoders.
 *   DER decoders (one per key type, input=der): for our DER structure, look the URI
 *     up exactly as the store does (hsmtls_store_load_key; the core answers the
 *     second lookup from its cache) and pass the key on by reference, so our key
 *     management loads it and the private key stays on the token. The default
 *     provider's PEM decoder may hand our DER body to these too (when it runs first),
 *     so reading works whichever PEM decoder runs first.
 * A file that is ours but broken (bad DER, bad URI) fails with a message saying so;
 * a key that is not there fails with the store's message.
 *
 * Writing. A token private key asked for as PEM PrivateKeyInfo (`openssl pkey -in
 * pkcs11:...`, `openssl genpkey ... -out FILE`, PEM_write_bio_PrivateKey) is written
 * as the URI file: a reference to the key, from the object's own URI, never a PIN nor
 * key material. Every other private encoding (DER, traditional, text) still goes to
 * the default provider's encoders, whose export of the private half fails. */
#define _GNU_SOURCE /* memmem */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/store.h>

#include "hsmtls/p11_keyfile.h"

/* Our DER body is a few hundred bytes (the writer allows a 48000-byte URI); a key file
 * is at most HSMTLS_P11_KEYFILE_MAX_PEM (64 KiB) of PEM text, refused at once beyond:
 * reading a larger one would only cost time (OpenSSL's own decoders take minutes over a
 * few megabytes). PEM input may carry other blocks after ours. */
#define MAX_DER (65536 + 16)
#define MAX_PEM HSMTLS_P11_KEYFILE_MAX_PEM

typedef struct dec_ctx {
    hsmtls_provctx *pc;
    const char *type; /* the DER decoders' key type */
} dec_ctx;

/* Reads the whole input, at most `max` bytes: 1 and the bytes, 0 when it is larger
 * (then it is not a file of ours) or unreadable. */
static int read_all(hsmtls_provctx *pc, OSSL_CORE_BIO *in, size_t max, unsigned char **out,
                    size_t *out_len)
{
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf || !pc->core_bio_read_ex)
        goto fail;
    for (;;) {
        if (len == cap) {
            if (cap >= max)
                goto fail;
            cap = cap * 2 > max ? max : cap * 2;
            unsigned char *bigger = realloc(buf, cap);
            if (!bigger)
                goto fail;
            buf = bigger;
        }
        size_t n = 0;
        if (!pc->core_bio_read_ex(in, buf + len, cap - len, &n) || n == 0)
            break;
        len += n;
    }
    *out = buf;
    *out_len = len;
    return 1;
fail:
    free(buf);
    return 0;
}

/* Reads the rest of a refused input in large pieces (linear), so that OpenSSL's file
 * store, which decodes one object after another until the input ends, does not go on
 * decoding the middle of our block line by line (minutes for a few megabytes). At most
 * 64 MiB: a larger input is OpenSSL's to give up on. */
static void skip_rest(hsmtls_provctx *pc, OSSL_CORE_BIO *in)
{
    enum { PIECE = 65536, MOST = 64 * 1024 * 1024 };
    unsigned char *piece = pc->core_bio_read_ex ? malloc(PIECE) : NULL;
    size_t n = 0;
    for (size_t total = 0; piece && total < MOST && pc->core_bio_read_ex(in, piece, PIECE, &n) && n > 0;)
        total += n;
    free(piece);
}

/* The first PEM block of the input if it is ours, read line by line: every PEM file
 * the process decodes passes through here (certificate bundles too), so someone else's
 * block is given up at its BEGIN line. 1 and the block's text, 0 when it is not ours,
 * -1 when it is ours and longer than MAX_PEM (read no further: linear, bounded). */
static int read_first_block(hsmtls_provctx *pc, OSSL_CORE_BIO *in, unsigned char **out,
                            size_t *out_len)
{
    static const char begin[] = "-----BEGIN " HSMTLS_P11_KEYFILE_PEM_LABEL "-----";
    char line[256];
    if (!pc->core_bio_gets) {
        /* A core without BIO_gets (OpenSSL 3.0 has it): the whole input, read up to the
         * bound, if it has our BEGIN line at all. */
        if (!read_all(pc, in, MAX_PEM, out, out_len))
            return 0;
        if (*out_len >= sizeof begin - 1 && memmem(*out, *out_len, begin, sizeof begin - 1))
            return 1;
        free(*out);
        return 0;
    }
    /* Text before the block is allowed, as PEM_read_bio allows it. */
    for (;;) {
        int n = pc->core_bio_gets(in, line, sizeof line);
        if (n <= 0)
            return 0;
        if (strncmp(line, "-----BEGIN ", 11) == 0)
            break;
    }
    if (strncmp(line, begin, sizeof begin - 1) != 0)
        return 0;
    size_t cap = 1024, len = 0;
    unsigned char *buf = malloc(cap);
    for (int end = 0; buf && !end;) {
        size_t n = strlen(line);
        if (len + n > MAX_PEM) {
            free(buf);
            skip_rest(pc, in);
            return -1; /* ours, and too large: said by the caller */
        }
        if (len + n + 1 > cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                break;
            buf = bigger;
            cap *= 2;
            continue; /* the same line again, with room for it */
        }
        memcpy(buf + len, line, n);
        len += n;
        end = strncmp(line, "-----END ", 9) == 0;
        if (!end && pc->core_bio_gets(in, line, sizeof line) <= 0)
            break; /* no END line: PEM_read_bio says it is not PEM */
    }
    if (!buf)
        return 0;
    *out = buf;
    *out_len = len;
    return 1;
}

/* Whether DER bytes claim to be our structure: SEQUENCE { VisibleString "PKCS#11
 * Provider URI...", ... }. Only then is a decoding failure ours to report. */
static int looks_like_keyfile(const unsigned char *der, size_t len)
{
    static const char desc[] = "PKCS#11 Provider URI";
    size_t hdr;
    if (len < 4 || der[0] != 0x30)
        return 0;
    if (der[1] < 0x80)
        hdr = 2;
    else if (der[1] == 0x81)
        hdr = 3;
    else if (der[1] == 0x82)
        hdr = 4;
    else
        return 0;
    const size_t dlen = sizeof desc - 1;
    return len >= hdr + 2 + dlen && der[hdr] == 0x1a && der[hdr + 1] >= dlen &&
           der[hdr + 1] < 0x80 && memcmp(der + hdr + 2, desc, dlen) == 0;
}

static void *dec_newctx(hsmtls_provctx *pc, const char *type)
{
    dec_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_INTERNAL, "out of memory");
        return NULL;
    }
    c->pc = pc;
    c->type = type;
    return c;
}

static void dec_freectx(void *ctx)
{
    free(ctx);
}

/* ---- PEM to DER ------------------------------------------------------------------- */

static void *pem_newctx(void *provctx)
{
    return dec_newctx(provctx, NULL);
}

/* What the decoders look for: a private key unless only the public half is wanted;
 * the URI's type= wins either way. */
static int expected(int selection)
{
    return (selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
               ? OSSL_STORE_INFO_PKEY : 0;
}

/* The URI in a DER body that looks_like_keyfile(); NULL with an error. */
static char *uri_of(hsmtls_provctx *pc, const unsigned char *der, size_t len)
{
    char *uri = hsmtls_p11_keyfile_uri_from_der(der, len);
    if (!uri)
        HSMTLS_PROV_ERR(pc, HSMTLS_R_BAD_ARGUMENT, "%s PKCS#11 URI key file: %s",
                        hsmtls_p11_error_rv() == CKR_ACTION_PROHIBITED ? "refused" : "malformed",
                        hsmtls_p11_error_message());
    return uri;
}

/* The key type of what the store passes on (a static name). */
static int note_type(const OSSL_PARAM params[], void *arg)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_OBJECT_PARAM_DATA_TYPE);
    return p && OSSL_PARAM_get_utf8_string_ptr(p, (const char **)arg);
}

static int pem_decode(void *ctx, OSSL_CORE_BIO *in, int selection, OSSL_CALLBACK *data_cb,
                      void *data_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    dec_ctx *c = ctx;
    unsigned char *text = NULL, *der = NULL;
    size_t text_len;
    char *name = NULL, *header = NULL, *uri = NULL;
    long der_len = 0;
    int ret = 1; /* not ours: empty-handed, which is not an error */
    int block = read_first_block(c->pc, in, &text, &text_len);
    if (block < 0) {
        /* An error, not empty hands: OpenSSL's decoding stops here instead of trying
         * every other decoder over the rest of the file. */
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT,
                        "PKCS#11 URI key file too large: more than %d bytes (a key file names a "
                        "key in a few hundred)", MAX_PEM);
        return 0;
    }
    if (!block)
        return 1;
    ERR_set_mark();
    BIO *mem = BIO_new_mem_buf(text, (int)text_len);
    int read = mem && PEM_read_bio(mem, &name, &header, &der, &der_len) > 0;
    BIO_free(mem);
    ERR_pop_to_mark();
    /* The first PEM block decides, as for any PEM key file. */
    if (!read || strcmp(name, HSMTLS_P11_KEYFILE_PEM_LABEL) != 0)
        goto done;
    ret = 0;
    if (!looks_like_keyfile(der, (size_t)der_len)) {
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_BAD_ARGUMENT,
                        "malformed PKCS#11 URI key file: the \"%s\" PEM block does not hold the "
                        "\"%s\" structure", HSMTLS_P11_KEYFILE_PEM_LABEL, HSMTLS_P11_KEYFILE_DESC);
        goto done;
    }
    if (!(uri = uri_of(c->pc, der, (size_t)der_len)))
        goto done;
    /* Resolve it here, where a failure is reported as it is (libcrypto's store drops
     * what the DER decoders say), and learn the key type so that only that type's DER
     * decoder runs next. The second lookup is answered from the core's cache. */
    const char *type = NULL;
    if (!hsmtls_store_load_key(c->pc, uri, expected(selection), NULL, note_type, &type, pw_cb,
                               pw_cbarg))
        goto done;
    if (!type) {
        hsmtls_p11_uri *parsed = hsmtls_p11_uri_parse(uri);
        HSMTLS_PROV_ERR(c->pc, HSMTLS_R_UNSUPPORTED,
                        "the PKCS#11 URI key file names no RSA, EC, Ed25519 or Ed448 key: \"%s\"",
                        parsed ? hsmtls_p11_uri_masked(parsed) : "?");
        hsmtls_p11_uri_free(parsed);
        goto done;
    }
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)type, strlen(type)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, der, (size_t)der_len),
        OSSL_PARAM_END,
    };
    ret = data_cb(params, data_cbarg);
done:
    free(uri);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    free(text);
    return ret;
}

const OSSL_DISPATCH hsmtls_keyfile_pem_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))pem_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_decode },
    { 0, NULL },
};

/* ---- DER to a key by reference ------------------------------------------------------ */

static int der_decode(void *ctx, OSSL_CORE_BIO *in, int selection, OSSL_CALLBACK *data_cb,
                      void *data_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    dec_ctx *c = ctx;
    unsigned char *der;
    size_t len;
    if (!read_all(c->pc, in, MAX_DER, &der, &len))
        return 1;
    if (!looks_like_keyfile(der, len)) {
        free(der);
        return 1; /* someone else's DER */
    }
    char *uri = uri_of(c->pc, der, len);
    free(der);
    if (!uri)
        return 0;
    int ok = hsmtls_store_load_key(c->pc, uri, expected(selection), c->type, data_cb,
                                   data_cbarg, pw_cb, pw_cbarg);
    free(uri);
    return ok;
}

/* Only reached when libcrypto pairs our reference with another provider's key
 * management; a token key cannot be rebuilt there. */
static int der_export_object(void *ctx, const void *reference, size_t reference_sz,
                             OSSL_CALLBACK *export_cb, void *export_cbarg)
{
    dec_ctx *c = ctx;
    HSMTLS_PROV_ERR(c->pc, HSMTLS_R_PRIVATE_KEY_EXPORT,
                    "a PKCS#11 %s key from a URI key file is only usable through the hsmtls "
                    "provider's key management", c->type);
    return 0;
}

#define KEYFILE_DECODER(prefix, type)                                                      \
    static void *prefix##_dec_newctx(void *provctx) { return dec_newctx(provctx, type); }  \
    const OSSL_DISPATCH hsmtls_##prefix##_keyfile_decoder_functions[] = {                  \
        { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))prefix##_dec_newctx },                 \
        { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },                        \
        { OSSL_FUNC_DECODER_DECODE, (void (*)(void))der_decode },                          \
        { OSSL_FUNC_DECODER_EXPORT_OBJECT, (void (*)(void))der_export_object },            \
        { 0, NULL },                                                                       \
    };

KEYFILE_DECODER(rsa, "RSA")
KEYFILE_DECODER(ec, "EC")
KEYFILE_DECODER(ed25519, "ED25519")
KEYFILE_DECODER(ed448, "ED448")

/* ---- a token private key to a URI key file ------------------------------------------ */

static void *enc_newctx(void *provctx)
{
    return provctx; /* nothing of its own */
}

static void enc_freectx(void *ctx)
{
}

static int enc_does_selection(void *provctx, int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

static int enc_encode(void *ctx, OSSL_CORE_BIO *out, const void *obj_raw,
                      const OSSL_PARAM obj_abstract[], int selection,
                      OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    hsmtls_provctx *pc = ctx;
    const hsmtls_key *key = obj_raw;
    if (!key || !key->priv) {
        HSMTLS_PROV_ERR(pc, HSMTLS_R_UNSUPPORTED,
                        "only a private key on a PKCS#11 token can be written as a URI key file");
        return 0;
    }
    /* The object's own URI: token and object attributes, never a PIN. */
    char *uri = hsmtls_p11_object_uri(key->priv);
    char *pem = uri ? hsmtls_p11_keyfile_pem(uri) : NULL;
    free(uri);
    if (!pem) {
        HSMTLS_PROV_P11_ERR(pc, "writing a PKCS#11 URI key file");
        return 0;
    }
    size_t len = strlen(pem), written = 0;
    int ok = pc->core_bio_write_ex && pc->core_bio_write_ex(out, pem, len, &written) &&
             written == len;
    free(pem);
    if (!ok)
        HSMTLS_PROV_ERR(pc, HSMTLS_R_INTERNAL, "cannot write the PKCS#11 URI key file");
    return ok;
}

const OSSL_DISPATCH hsmtls_keyfile_encoder_functions[] = {
    { OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx },
    { OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx },
    { OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_does_selection },
    { OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_encode },
    { 0, NULL },
};
