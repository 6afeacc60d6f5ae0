/* PIN sources (pkcs11/pin.c, hsmtls_p11_pin_obtain, internal: the static core with
 * p11_internal.h): the input is the content of a pin-source file, a memfd read through
 * /proc/self/fd, named three ways: a configured pin-source path, a file: URI, and a URI's
 * ?pin-source=. No token: the token is a struct with a label. A PIN it returns holds no
 * line break and is shorter than the read buffer; every way gives the same answer. */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "p11_internal.h"

static hsmtls_p11_token token = { .label = "fuzz" };
static int fd = -1;
static char path[64];

static char *from_lookup(const char *source)
{
    hsmtls_p11_lookup opt = { .pin_source = source };
    int none = -1;
    hsmtls_p11_error_clear();
    char *pin = hsmtls_p11_pin_obtain(&token, NULL, &opt, &none);
    FUZZ_CHECK(none == 0, "a pin-source was given, yet no source");
    FUZZ_CHECK(pin || *hsmtls_p11_error_message(), "no PIN and no message");
    return pin;
}

static char *from_uri(void)
{
    char text[128];
    snprintf(text, sizeof text, "pkcs11:token=fuzz?pin-source=file:%s", path);
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    FUZZ_CHECK(uri != NULL, "%s: %s", text, hsmtls_p11_error_message());
    int none = -1;
    hsmtls_p11_error_clear();
    char *pin = hsmtls_p11_pin_obtain(&token, uri, NULL, &none);
    FUZZ_CHECK(none == 0, "the URI's pin-source was not used");
    hsmtls_p11_uri_free(uri);
    return pin;
}

static void check_pin(const char *pin, const char *first)
{
    if (pin) {
        FUZZ_CHECK(strpbrk(pin, "\r\n") == NULL, "a line break in the PIN");
        FUZZ_CHECK(strlen(pin) < 256, "a PIN of %zu bytes", strlen(pin));
    }
    FUZZ_CHECK(!pin == !first && (!pin || strcmp(pin, first) == 0),
               "another answer for the same file another way");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("pin-source", 0);
        FUZZ_CHECK(fd >= 0, "memfd_create");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size, "memfd write");

    char *pin = from_lookup(path);
    check_pin(pin, pin);
    char file_uri[80];
    snprintf(file_uri, sizeof file_uri, "file:%s", path);
    char *b = from_lookup(file_uri);
    check_pin(b, pin);
    char *c = from_uri();
    check_pin(c, pin);
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_pin_free(b);
    hsmtls_p11_pin_free(c);
    return 0;
}
