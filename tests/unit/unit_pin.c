/* Unit tests of where a PIN comes from (pkcs11/pin.c, hsmtls_p11_pin_obtain): pin-source
 * files with and without a trailing newline, CRLF, empty, missing, a directory, long and
 * binary lines; file: and file:// forms; the order URI, configured PIN, configured
 * pin-source, callback; and what the callback is told. No token: the token is a struct
 * with a label (p11_internal.h), and the files are made here. */
#include "check.h"
#include "p11_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[200];
static hsmtls_p11_token token;

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* A file in the test's directory holding exactly `len` bytes of `text`; its path. */
static const char *file_with(const char *name, const char *text, size_t len)
{
    static char path[4][512];
    static int n;
    n = (n + 1) % 4;
    snprintf(path[n], sizeof path[n], "%s/%s", dir, name);
    FILE *f = fopen(path[n], "wb");
    CHECK(f != NULL && fwrite(text, 1, len, f) == len);
    if (f)
        fclose(f);
    return path[n];
}

/* The PIN that a lookup with only pin_source = `source` yields (NULL on error). */
static char *from_source(const char *source)
{
    hsmtls_p11_lookup opt = { .pin_source = source };
    int none = -1;
    hsmtls_p11_error_clear();
    char *pin = hsmtls_p11_pin_obtain(&token, NULL, &opt, &none);
    CHECK(none == 0);
    return pin;
}

static void expect_pin(const char *name, const char *content, size_t len, const char *want)
{
    char *pin = from_source(file_with(name, content, len));
    CHECK_MSG(streq(pin, want), name);
    if (!streq(pin, want))
        fprintf(stderr, "  got \"%s\" (%s)\n", pin ? pin : "(null)", hsmtls_p11_error_message());
    hsmtls_p11_pin_free(pin);
}

static void test_file_contents(void)
{
    expect_pin("newline", "1234\n", 5, "1234");
    expect_pin("no-newline", "1234", 4, "1234");
    expect_pin("crlf", "1234\r\n", 6, "1234");
    expect_pin("cr", "1234\r", 5, "1234");
    expect_pin("two-lines", "1234\nsecond line\n", 17, "1234"); /* the first line only */
    expect_pin("spaces", " 12 34 \n", 8, " 12 34 ");                /* kept as they are */
    expect_pin("tab", "12\t34\n", 6, "12\t34");
    expect_pin("utf8", "p\xc3\xa9n\n", 5, "p\xc3\xa9n");
    /* a first line of 255 bytes is the longest PIN taken (longer ones: test_file_errors) */
    char line[400];
    char want[256];
    memset(line, '8', 255);
    line[255] = '\n';
    memset(want, '8', 255);
    want[255] = '\0';
    expect_pin("exactly-255", line, 256, want);
}

static void expect_error(const char *source, const char *what)
{
    char *pin = from_source(source);
    const char *msg = hsmtls_p11_error_message();
    int ok = pin == NULL && hsmtls_p11_error_rv() == CKR_ARGUMENTS_BAD && check_contains(msg, what) &&
             check_contains(msg, "for token \"unit\"");
    CHECK_MSG(ok, source);
    if (!ok)
        fprintf(stderr, "  got %s / %s\n", pin ? pin : "(null)", msg);
    hsmtls_p11_pin_free(pin);
}

static void test_file_errors(void)
{
    char path[512], msg[1024];
    const char *empty = file_with("empty", "", 0);
    snprintf(msg, sizeof msg, "pin-source %s for token \"unit\" is empty", empty);
    expect_error(empty, msg);

    snprintf(path, sizeof path, "%s/missing", dir);
    snprintf(msg, sizeof msg, "cannot read pin-source %s for token \"unit\": No such file or directory", path);
    expect_error(path, msg);

    /* a directory is named as one, not as "empty" */
    snprintf(msg, sizeof msg, "pin-source %s for token \"unit\" is a directory", dir);
    expect_error(dir, msg);

    /* PINs that could only be wrong are refused, not sent (each would spend a try): an
     * empty first line, a NUL in it (the zero device, a sparse file), one too long */
    expect_error(file_with("blank-line", "\n1234\n", 6), "has an empty first line");
    expect_error(file_with("nul", "12\0" "34\n", 6), "holds a NUL byte in its first line");
    expect_error(file_with("sparse", "\0\0\0\0\0\0\0\0", 8), "holds a NUL byte in its first line");
    expect_error("/dev/zero", "holds a NUL byte in its first line");
    char line[400];
    memset(line, '7', 300);
    line[300] = '\n';
    expect_error(file_with("long", line, 301), "has a first line longer than 255 bytes");
    /* a name with control characters is quoted escaped */
    snprintf(path, sizeof path, "%s/a\nb", dir);
    expect_error(path, "a\\x0ab for token");

    /* a file the process may not read (root reads anything: then the PIN) */
    const char *locked = file_with("locked", "1234\n", 5);
    chmod(locked, 0);
    char *pin = from_source(locked);
    if (geteuid() == 0)
        CHECK(streq(pin, "1234"));
    else
        CHECK(pin == NULL && check_contains(hsmtls_p11_error_message(), "Permission denied"));
    hsmtls_p11_pin_free(pin);
}

static void test_file_uri_forms(void)
{
    const char *path = file_with("forms", "4321\n", 5);
    char source[600];
    static const char *const forms[] = { "", "file:", "file://" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(source, sizeof source, "%s%s", forms[i], path);
        char *pin = from_source(source);
        CHECK_MSG(streq(pin, "4321"), source);
        hsmtls_p11_pin_free(pin);
    }
    /* the same forms in the URI's pin-source (percent-decoded first) */
    char text[700];
    snprintf(text, sizeof text, "pkcs11:token=unit?pin-source=file:%s", path);
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    int none = -1;
    char *pin = uri ? hsmtls_p11_pin_obtain(&token, uri, NULL, &none) : NULL;
    CHECK(streq(pin, "4321") && none == 0);
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_uri_free(uri);
    /* another scheme is taken as a relative path, which is not there */
    snprintf(source, sizeof source, "http://example.com%s", path);
    expect_error(source, "cannot read pin-source http://example.com");
}

static int cb_calls;
static hsmtls_p11_pin_request cb_seen;
static char cb_uri[256], cb_label[64];

static int pin_cb(const hsmtls_p11_pin_request *req, char *buf, size_t size, void *arg)
{
    cb_calls++;
    cb_seen = *req;
    snprintf(cb_uri, sizeof cb_uri, "%s", req->uri ? req->uri : "(none)");
    snprintf(cb_label, sizeof cb_label, "%s", req->token_label ? req->token_label : "(none)");
    const char *answer = arg;
    if (!answer)
        return -1;
    if (strcmp(answer, "too-long") == 0)
        return (int)size;
    snprintf(buf, size, "%s", answer);
    return (int)strlen(answer);
}

static void test_order_and_callback(void)
{
    const char *file_pin = file_with("order", "from-file\n", 10);
    char text[700];
    int none = -1;

    /* the URI's pin-value first, then its pin-source, then the configured PIN, then the
     * configured pin-source, then the callback */
    hsmtls_p11_lookup all = { .pin = "configured", .pin_source = file_pin, .pin_cb = pin_cb,
                              .pin_cb_arg = "from-callback" };
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=unit?pin-value=from-uri");
    char *pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(pin, "from-uri") && none == 0);
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_uri_free(uri);

    snprintf(text, sizeof text, "pkcs11:token=unit?pin-source=%s", file_pin);
    uri = hsmtls_p11_uri_parse(text);
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(pin, "from-file"));
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_uri_free(uri);

    uri = hsmtls_p11_uri_parse("pkcs11:token=unit;object=k");
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(pin, "configured"));
    hsmtls_p11_pin_free(pin);
    all.pin = NULL;
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(pin, "from-file"));
    hsmtls_p11_pin_free(pin);
    /* a configured pin-source that fails is an error, not a reason to ask the callback */
    all.pin_source = "/nonexistent/pin";
    cb_calls = 0;
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(pin == NULL && none == 0 && cb_calls == 0);
    all.pin_source = NULL;
    CHECK(cb_calls == 0);
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(pin, "from-callback") && cb_calls == 1);
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_uri_free(uri);

    /* what the callback is told: the masked URI, the token, whether a PIN was rejected */
    uri = hsmtls_p11_uri_parse("pkcs11:token=unit;object=k?module-name=m");
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(streq(cb_uri, "pkcs11:token=unit;object=k?module-name=m") && streq(cb_label, "unit"));
    CHECK(cb_seen.retry == 0);
    hsmtls_p11_pin_free(pin);
    static char rejected[] = "0000";
    token.rejected_pin = rejected;
    pin = hsmtls_p11_pin_obtain(&token, uri, &all, &none);
    CHECK(cb_seen.retry == 1);
    token.rejected_pin = NULL;
    hsmtls_p11_pin_free(pin);
    hsmtls_p11_uri_free(uri);
    pin = hsmtls_p11_pin_obtain(&token, NULL, &all, &none);
    CHECK(streq(pin, "from-callback") && streq(cb_uri, "(none)"));
    hsmtls_p11_pin_free(pin);

    /* a callback that gives nothing, or more than fits, cancels */
    hsmtls_p11_lookup cancel = { .pin_cb = pin_cb, .pin_cb_arg = NULL };
    hsmtls_p11_error_clear();
    pin = hsmtls_p11_pin_obtain(&token, NULL, &cancel, &none);
    CHECK(pin == NULL && none == 0 && hsmtls_p11_error_rv() == CKR_FUNCTION_CANCELED);
    CHECK_MSG(check_contains(hsmtls_p11_error_message(), "no PIN given for token \"unit\""),
              hsmtls_p11_error_message());
    cancel.pin_cb_arg = "too-long";
    pin = hsmtls_p11_pin_obtain(&token, NULL, &cancel, &none);
    CHECK(pin == NULL && hsmtls_p11_error_rv() == CKR_FUNCTION_CANCELED);
    /* an empty PIN is never given out, wherever it comes from */
    cancel.pin_cb_arg = "";
    hsmtls_p11_error_clear();
    pin = hsmtls_p11_pin_obtain(&token, NULL, &cancel, &none);
    CHECK(pin == NULL && none == 0 && hsmtls_p11_error_rv() == CKR_PIN_LEN_RANGE);
    CHECK_MSG(check_contains(hsmtls_p11_error_message(), "empty PIN from the PIN callback"),
              hsmtls_p11_error_message());
    hsmtls_p11_lookup configured = { .pin = "" };
    pin = hsmtls_p11_pin_obtain(&token, NULL, &configured, &none);
    CHECK(pin == NULL && none == 0 && check_contains(hsmtls_p11_error_message(), "empty PIN from the configured PIN"));
    uri = hsmtls_p11_uri_parse("pkcs11:token=unit?pin-value=");
    pin = uri ? hsmtls_p11_pin_obtain(&token, uri, NULL, &none) : NULL;
    CHECK(pin == NULL && none == 0 && check_contains(hsmtls_p11_error_message(), "empty PIN from the URI's pin-value"));
    hsmtls_p11_uri_free(uri);

    /* no source at all: none, and no error */
    hsmtls_p11_lookup nothing = { 0 };
    none = 0;
    pin = hsmtls_p11_pin_obtain(&token, NULL, &nothing, &none);
    CHECK(pin == NULL && none == 1);
    none = 0;
    pin = hsmtls_p11_pin_obtain(&token, NULL, NULL, &none);
    CHECK(pin == NULL && none == 1);
    uri = hsmtls_p11_uri_parse("pkcs11:token=unit");
    none = 0;
    pin = hsmtls_p11_pin_obtain(&token, uri, NULL, &none);
    CHECK(pin == NULL && none == 1);
    hsmtls_p11_uri_free(uri);
    hsmtls_p11_pin_free(NULL);
}

/* A PIN read from a file never appears in a message. */
static void test_no_pin_in_messages(void)
{
    const char *path = file_with("secret", "s3cr3tPIN\n", 10);
    char text[700];
    snprintf(text, sizeof text, "pkcs11:token=unit?pin-value=s3cr3tPIN&pin-source=%s", path);
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    CHECK(uri && !check_contains(hsmtls_p11_uri_masked(uri), "s3cr3t"));
    hsmtls_p11_uri_free(uri);
    hsmtls_p11_lookup cancel = { .pin_cb = pin_cb, .pin_cb_arg = NULL };
    int none;
    char *pin = hsmtls_p11_pin_obtain(&token, NULL, &cancel, &none);
    CHECK(pin == NULL && !check_contains(hsmtls_p11_error_message(), "s3cr3t"));
}

static void remove_dir(void)
{
    static const char *const names[] = { "newline", "no-newline", "crlf", "cr", "two-lines", "spaces",
                                         "tab", "utf8", "blank-line", "nul", "long", "exactly-255",
                                         "empty", "locked", "forms", "order", "secret", "sparse" };
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    CHECK_MSG(rmdir(dir) == 0, "every file the test made is removed");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/hsmtls-unit-pin-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(token.label, sizeof token.label, "unit");
    test_file_contents();
    test_file_errors();
    test_file_uri_forms();
    test_order_and_callback();
    test_no_pin_in_messages();
    remove_dir();
    return check_finish();
}
