/* Where a PIN comes from: the URI (pin-value, pin-source), the program's
 * configuration (PIN, pin-source), then the caller's callback. */
#include "p11_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void hsmtls_p11_pin_free(char *pin)
{
    if (pin) {
        OPENSSL_cleanse(pin, strlen(pin));
        free(pin);
    }
}

/* pin-source is a file: URI or a path (RFC 7512 leaves the scheme open; file is the
 * one every implementation reads). The first line is the PIN. */
static char *read_pin_source(const char *source, const char *token_label)
{
    const char *path = source;
    if (strncmp(path, "file://", 7) == 0)
        path += 7;
    else if (strncmp(path, "file:", 5) == 0)
        path += 5;
    FILE *f = fopen(path, "r");
    if (!f) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "cannot read pin-source %s for token \"%s\": %s",
                             source, token_label, strerror(errno));
        return NULL;
    }
    char buf[256];
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!line) {
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "pin-source %s for token \"%s\" is empty",
                             source, token_label);
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    char *pin = strdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    return pin;
}

char *hsmtls_p11_pin_obtain(hsmtls_p11_token *t, const hsmtls_p11_uri *uri,
                            const hsmtls_p11_lookup *opt, int *none)
{
    *none = 0;
    if (uri && hsmtls_p11_uri_pin_value(uri))
        return strdup(hsmtls_p11_uri_pin_value(uri));
    if (uri && hsmtls_p11_uri_pin_source(uri))
        return read_pin_source(hsmtls_p11_uri_pin_source(uri), t->label);
    if (opt && opt->pin)
        return strdup(opt->pin);
    if (opt && opt->pin_source)
        return read_pin_source(opt->pin_source, t->label);
    if (opt && opt->pin_cb) {
        char buf[256];
        hsmtls_p11_pin_request req = {
            .uri = uri ? hsmtls_p11_uri_masked(uri) : NULL,
            .token_label = t->label,
            .retry = t->rejected_pin != NULL,
        };
        int len = opt->pin_cb(&req, buf, sizeof buf, opt->pin_cb_arg);
        if (len < 0 || (size_t)len >= sizeof buf) {
            OPENSSL_cleanse(buf, sizeof buf);
            hsmtls_p11_error_set(CKR_FUNCTION_CANCELED, "no PIN given for token \"%s\"", t->label);
            return NULL;
        }
        buf[len] = '\0';
        char *pin = strdup(buf);
        OPENSSL_cleanse(buf, sizeof buf);
        return pin;
    }
    *none = 1;
    return NULL;
}
