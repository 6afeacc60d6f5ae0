/* Where a PIN comes from: the URI (pin-value, pin-source), the program's
 * configuration (PIN, pin-source), then the caller's callback. */
#include "p11_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "hsmtls/p11_uri.h"

void hsmtls_p11_pin_free(char *pin)
{
    if (pin) {
        OPENSSL_cleanse(pin, strlen(pin));
        free(pin);
    }
}

/* A message about a pin-source quotes its name as every message quotes input. */
static void source_error(const char *source, const char *token_label, int cannot, const char *why)
{
    char *shown = hsmtls_p11_mask_text(source);
    char *label = hsmtls_p11_mask_text(token_label);
    if (cannot)
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "cannot read pin-source %s for token \"%s\": %s",
                             shown ? shown : "(out of memory)", label ? label : "?", why);
    else
        hsmtls_p11_error_set(CKR_ARGUMENTS_BAD, "pin-source %s for token \"%s\" %s",
                             shown ? shown : "(out of memory)", label ? label : "?", why);
    free(shown);
    free(label);
}

/* pin-source is a file: URI or a path (RFC 7512 leaves the scheme open; file is the
 * one every implementation reads). The first line is the PIN: read with a bound (a
 * pin-source may be a device that never ends), and refused rather than sent when it
 * could only be wrong: empty, holding a NUL byte (the zero device, a sparse file), or
 * longer than PKCS#11 PINs are. Each refusal is a C_Login not made, so a card keeps its
 * tries. */
#define PIN_MAX 255
static char *read_pin_source(const char *source, const char *token_label)
{
    const char *path = source;
    if (strncmp(path, "file://", 7) == 0)
        path += 7;
    else if (strncmp(path, "file:", 5) == 0)
        path += 5;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        source_error(source, token_label, 1, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        source_error(source, token_label, 0, "is a directory");
        return NULL;
    }
    char buf[PIN_MAX + 2];
    size_t n = 0;
    while (n < sizeof buf && !memchr(buf, '\n', n)) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            source_error(source, token_label, 1, strerror(err));
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    size_t len = 0;
    while (len < n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    const char *why = NULL;
    if (n == 0)
        why = "is empty";
    else if (memchr(buf, '\0', len))
        why = "holds a NUL byte in its first line (a device or a sparse file?): not sent to the token";
    else if (len == 0)
        why = "has an empty first line: an empty PIN is not sent to the token";
    else if (len > PIN_MAX)
        why = "has a first line longer than " "255" " bytes: not sent to the token";
    if (why) {
        OPENSSL_cleanse(buf, sizeof buf);
        source_error(source, token_label, 0, why);
        return NULL;
    }
    char *pin = strndup(buf, len);
    OPENSSL_cleanse(buf, sizeof buf);
    if (!pin)
        hsmtls_p11_error_set(CKR_HOST_MEMORY, "out of memory");
    return pin;
}

/* Never an empty PIN: one C_Login with it would spend one of the token's tries. */
static char *not_empty(char *pin, const char *from, const hsmtls_p11_token *t)
{
    if (pin && !*pin) {
        free(pin);
        char *label = hsmtls_p11_mask_text(t->label);
        hsmtls_p11_error_set(CKR_PIN_LEN_RANGE, "empty PIN from %s for token \"%s\": not sent to the token",
                             from, label ? label : "?");
        free(label);
        return NULL;
    }
    return pin;
}

char *hsmtls_p11_pin_obtain(hsmtls_p11_token *t, const hsmtls_p11_uri *uri,
                            const hsmtls_p11_lookup *opt, int *none)
{
    *none = 0;
    if (uri && hsmtls_p11_uri_pin_value(uri))
        return not_empty(strdup(hsmtls_p11_uri_pin_value(uri)), "the URI's pin-value", t);
    if (uri && hsmtls_p11_uri_pin_source(uri))
        return read_pin_source(hsmtls_p11_uri_pin_source(uri), t->label);
    if (opt && opt->pin)
        return not_empty(strdup(opt->pin), "the configured PIN", t);
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
        return not_empty(pin, "the PIN callback", t);
    }
    *none = 1;
    return NULL;
}
