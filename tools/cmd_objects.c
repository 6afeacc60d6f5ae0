/* hsmtls objects URI: each key and certificate with its type, size and full URI. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBJECTS_USAGE "hsmtls objects [--module PATH] [--login] [--pin-source FILE] pkcs11:URI"

static const char *class_word(CK_OBJECT_CLASS c)
{
    return c == CKO_PRIVATE_KEY ? "private-key" : c == CKO_PUBLIC_KEY ? "public-key" : "certificate";
}

static const char *key_word(const hsmtls_p11_object *o)
{
    if (hsmtls_p11_object_curve(o))
        return hsmtls_p11_object_curve(o);
    return hsmtls_p11_object_key_type(o) == CKK_RSA ? "RSA" : "?";
}

static int class_rank(CK_OBJECT_CLASS c)
{
    return c == CKO_PRIVATE_KEY ? 0 : c == CKO_PUBLIC_KEY ? 1 : 2;
}

/* By label, then private key, public key, certificate: a key pair and its
 * certificate stand together. */
static int by_label(const void *a, const void *b)
{
    const hsmtls_p11_object *x = *(hsmtls_p11_object *const *)a, *y = *(hsmtls_p11_object *const *)b;
    int c = strcmp(hsmtls_p11_object_label(x), hsmtls_p11_object_label(y));
    return c ? c : class_rank(hsmtls_p11_object_class(x)) - class_rank(hsmtls_p11_object_class(y));
}

int cmd_objects(int argc, char **argv)
{
    struct cli_options opt = { 0 };
    int i = cli_parse_common(argc, argv, &opt, OBJECTS_USAGE);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 1) {
        fprintf(stderr, "hsmtls objects: needs one pkcs11: URI\nusage: %s\n", OBJECTS_USAGE);
        return CLI_USAGE;
    }
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(argv[i]);
    if (!uri)
        return cli_fail("objects");
    hsmtls_p11_lookup lookup = cli_lookup(&opt);
    hsmtls_p11_object **objs;
    size_t n;
    if (hsmtls_p11_objects_list(uri, &lookup, HSMTLS_P11_ANY_CLASS, &objs, &n) < 0) {
        hsmtls_p11_uri_free(uri);
        return cli_fail("objects");
    }
    if (n > 1)
        qsort(objs, n, sizeof *objs, by_label);
    for (size_t k = 0; k < n; k++) {
        hsmtls_p11_object *o = objs[k];
        size_t id_len;
        const unsigned char *id = hsmtls_p11_object_id(o, &id_len);
        char *ouri = hsmtls_p11_object_uri(o);
        char size[32] = "";
        if (hsmtls_p11_object_key_type(o) == CKK_RSA)
            snprintf(size, sizeof size, "%u", hsmtls_p11_object_bits(o));
        printf("%-12s %-7s %-5s label=%s id=%s%s\n  %s\n", class_word(hsmtls_p11_object_class(o)),
               key_word(o), size, hsmtls_p11_object_label(o), id ? cli_hex(id, id_len) : "-",
               hsmtls_p11_object_always_authenticate(o) ? " always-authenticate" : "",
               ouri ? ouri : "?");
        free(ouri);
    }
    int pin_given = opt.login || opt.pin_source || hsmtls_p11_uri_pin_value(uri) ||
                    hsmtls_p11_uri_pin_source(uri);
    int any_private = 0;
    for (size_t k = 0; k < n; k++)
        any_private |= hsmtls_p11_object_class(objs[k]) == CKO_PRIVATE_KEY;
    if (n == 0)
        fprintf(stderr, "hsmtls objects: nothing matches %s\n", hsmtls_p11_uri_masked(uri));
    if (!pin_given && !any_private)
        fprintf(stderr, "hsmtls objects: private keys are listed only after login: add "
                        "?pin-value= or ?pin-source= to the URI, --pin-source FILE or --login\n");
    free(objs);
    hsmtls_p11_uri_free(uri);
    return n == 0 ? CLI_FAILED : CLI_OK;
}
