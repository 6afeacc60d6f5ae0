/* libhsmtls's error convention, hermetic: the one SSL_get_error mapping (every value),
 * status names, error records sized to fit, long input shortened with the reason kept
 * after it (a 100k-character path and URI), OpenSSL's queue drained into a message,
 * and the thread's last message (per thread, freed with the thread). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "check.h"
#include "lib_internal.h"

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static char *filled(size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    char *s = malloc(p + n + 1);
    memcpy(s, prefix, p);
    memset(s + p, 'a', n);
    s[p + n] = '\0';
    return s;
}

static void test_status_mapping(void)
{
    unsigned long eof = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_EOF_WHILE_READING);
    unsigned long other = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_BAD_PACKET_LENGTH);
    struct { int ssl_error; unsigned long queued; int sys; int want; } cases[] = {
        { SSL_ERROR_NONE, 0, 0, HSMTLS_OK },
        { SSL_ERROR_SSL, other, 0, HSMTLS_ERROR },
        { SSL_ERROR_SSL, eof, 0, HSMTLS_CLOSED },      /* OpenSSL 3's bare TCP close */
        { SSL_ERROR_WANT_READ, 0, 0, HSMTLS_WANT_READ },
        { SSL_ERROR_WANT_WRITE, 0, 0, HSMTLS_WANT_WRITE },
        { SSL_ERROR_WANT_X509_LOOKUP, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_SYSCALL, 0, 0, HSMTLS_CLOSED },     /* EOF without close_notify */
        { SSL_ERROR_SYSCALL, 0, ECONNRESET, HSMTLS_ERROR },
        { SSL_ERROR_SYSCALL, other, 0, HSMTLS_ERROR },
        { SSL_ERROR_ZERO_RETURN, 0, 0, HSMTLS_ERROR },  /* reads check for it first */
        { SSL_ERROR_WANT_CONNECT, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_WANT_ACCEPT, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_WANT_ASYNC, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_WANT_ASYNC_JOB, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_WANT_CLIENT_HELLO_CB, 0, 0, HSMTLS_ERROR },
        { SSL_ERROR_WANT_RETRY_VERIFY, 0, 0, HSMTLS_WANT_VERIFY },
        { 12345, 0, 0, HSMTLS_ERROR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = hsmtls__status_of(cases[i].ssl_error, cases[i].queued, cases[i].sys);
        CHECK_MSG(got == cases[i].want, hsmtls_status_name(got));
    }
}

static void test_status_names(void)
{
    struct { int status; const char *name; } names[] = {
        { HSMTLS_OK, "HSMTLS_OK" }, { HSMTLS_ERROR, "HSMTLS_ERROR" }, { HSMTLS_WANT_READ, "HSMTLS_WANT_READ" },
        { HSMTLS_WANT_WRITE, "HSMTLS_WANT_WRITE" }, { HSMTLS_WANT_ASYNC, "HSMTLS_WANT_ASYNC" },
        { HSMTLS_WANT_VERIFY, "HSMTLS_WANT_VERIFY" }, { HSMTLS_CLOSED, "HSMTLS_CLOSED" },
        { 17, "byte count" }, { -99, "unknown status" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_MSG(strcmp(hsmtls_status_name(names[i].status), names[i].name) == 0, names[i].name);
}

static void test_short(void)
{
    CHECK(strcmp(hsmtls__short("a/b.pem").s, "a/b.pem") == 0);
    CHECK(strcmp(hsmtls__short(NULL).s, "(null)") == 0);
    char *s200 = filled(HSMTLS_QUOTE_MAX, "");
    CHECK(strcmp(hsmtls__short(s200).s, s200) == 0);
    free(s200);
    char *s201 = filled(HSMTLS_QUOTE_MAX + 1, "");
    const char *q = hsmtls__short(s201).s;
    CHECK(strncmp(q, s201, HSMTLS_QUOTE_MAX) == 0 && strcmp(q + HSMTLS_QUOTE_MAX, "...(201 bytes)") == 0);
    free(s201);
    /* a cut never splits a UTF-8 character: "é" is 2 bytes across the 200th */
    char utf[HSMTLS_QUOTE_MAX + 20];
    memset(utf, 'a', sizeof utf);
    utf[HSMTLS_QUOTE_MAX - 1] = (char)0xC3;
    utf[HSMTLS_QUOTE_MAX] = (char)0xA9;
    utf[sizeof utf - 1] = '\0';
    q = hsmtls__short(utf).s;
    CHECK(q[HSMTLS_QUOTE_MAX - 1] == '.' && strncmp(q + HSMTLS_QUOTE_MAX - 1, "...(", 4) == 0);
}

static void test_records(void)
{
    struct hsmtls_err e = { 0 };
    CHECK(strcmp(hsmtls__err_message(&e), "") == 0 && e.code == 0);
    /* no fixed size: a 5000-byte message is kept whole */
    char *big = filled(5000, "");
    CHECK(hsmtls__err_set(&e, "%s: the reason", big) == HSMTLS_ERROR);
    CHECK(strlen(hsmtls__err_message(&e)) == 5000 + strlen(": the reason"));
    CHECK(ends_with(hsmtls__err_message(&e), ": the reason") && e.code == HSMTLS_ERROR);
    CHECK(strcmp(hsmtls_error_message(), hsmtls__err_message(&e)) == 0);
    free(big);
    /* a shorter one reuses the buffer: a pointer the application holds stays a string */
    const char *held = hsmtls__err_message(&e);
    CHECK(hsmtls__err_status(&e, HSMTLS_WANT_VERIFY, "paused on %d error(s)", 2) == HSMTLS_WANT_VERIFY);
    CHECK(held == hsmtls__err_message(&e) && strcmp(held, "paused on 2 error(s)") == 0);
    CHECK(e.code == HSMTLS_WANT_VERIFY);
    CHECK(hsmtls__err_append(&e, " (%s)", "more") == HSMTLS_WANT_VERIFY);
    CHECK(strcmp(hsmtls__err_message(&e), "paused on 2 error(s) (more)") == 0);
    hsmtls__err_clear(&e);
    CHECK(strcmp(hsmtls__err_message(&e), "") == 0 && e.code == 0);
    /* only the thread's message */
    CHECK(hsmtls__err_set(NULL, "thread only") == HSMTLS_ERROR);
    CHECK(strcmp(hsmtls_error_message(), "thread only") == 0);
    hsmtls__err_free(&e);
    CHECK(e.msg == NULL && e.cap == 0);
}

/* OpenSSL's reasons, oldest first, repeats once, its data shortened: the queue drains. */
static void test_openssl_reasons(void)
{
    struct hsmtls_err e = { 0 };
    char *data = filled(500, "uri="); /* OpenSSL keeps at most 1 KiB of data */
    ERR_raise_data(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH, "%s", data);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);
    ERR_raise(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING);
    CHECK(hsmtls__err_ssl(&e, "reading %s", "it") == HSMTLS_ERROR);
    const char *m = hsmtls__err_message(&e);
    CHECK_MSG(strncmp(m, "reading it: bad packet length (uri=aaa", 38) == 0, m);
    CHECK_MSG(strstr(m, "...(504 bytes)); bad packet length; unexpected eof while reading") != NULL, m);
    CHECK(strlen(m) < 600);
    CHECK(ERR_peek_error() == 0);
    /* _set clears what is queued instead */
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);
    hsmtls__err_set(&e, "plain");
    CHECK(strcmp(hsmtls__err_message(&e), "plain") == 0 && ERR_peek_error() == 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);
    char *r = hsmtls__ssl_reasons();
    CHECK(r && strcmp(r, ": bad packet length") == 0);
    free(r);
    free(data);
    hsmtls__err_free(&e);
}

/* A 100k-character path and URI: the message quotes them shortened, and the reason
 * after them is whole, on the config and as the thread's message. */
static void test_long_input(void)
{
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_SERVER);
    char *path = filled(100000, "/tmp/");
    CHECK(hsmtls_config_set_cert(cfg, path) == HSMTLS_ERROR);
    const char *m = hsmtls_config_error(cfg);
    CHECK_MSG(ends_with(m, strerror(ENAMETOOLONG)), m);
    CHECK_MSG(strncmp(m, "certificate /tmp/aaa", 20) == 0 && strstr(m, "...(100005 bytes): ") != NULL, m);
    CHECK(strlen(m) < 400);
    CHECK(strcmp(hsmtls_error_message(), m) == 0);

    /* a pkcs11: URI whose provider is not there: hermetic, no token is reached */
    CHECK(hsmtls_config_set_provider_path(cfg, "/nonexistent/hsmtls.so") == 0);
    char *uri = filled(100000, "pkcs11:token=t;object=");
    CHECK(hsmtls_config_set_key(cfg, uri) == HSMTLS_ERROR);
    m = hsmtls_config_error(cfg);
    CHECK_MSG(strncmp(m, "key pkcs11:token=t;object=aaa", 29) == 0, m);
    CHECK_MSG(strstr(m, "...(100022 bytes): the hsmtls provider is not available (no module at "
                        "/nonexistent/hsmtls.so; set HSMTLS_PROVIDER or hsmtls_config_set_provider_path)") != NULL, m);
    CHECK(ends_with(m, "hsmtls_config_set_provider_path)"));
    CHECK(strlen(m) < 600);

    /* a long list value, checked by the setter */
    char *list = filled(100000, "NOPE-");
    CHECK(hsmtls_config_set_ciphers(cfg, list) == HSMTLS_ERROR);
    m = hsmtls_config_error(cfg);
    CHECK_MSG(strncmp(m, "cipher list \"NOPE-aaa", 21) == 0 && strstr(m, "...(100005 bytes)\" rejected: ") != NULL, m);
    CHECK(strlen(m) < 800);
    free(list);
    free(uri);
    free(path);
    hsmtls_config_free(cfg);
}

static void *other_thread(void *arg)
{
    (void)arg;
    int empty = strcmp(hsmtls_error_message(), "") == 0;
    hsmtls__err_set(NULL, "in the other thread");
    int own = strcmp(hsmtls_error_message(), "in the other thread") == 0;
    return (void *)(long)(empty && own);
}

static void test_thread_message(void)
{
    hsmtls_config *bad = hsmtls_config_new((enum hsmtls_role)42);
    CHECK(bad == NULL);
    CHECK(strcmp(hsmtls_error_message(), "hsmtls_config_new: role must be HSMTLS_CLIENT or HSMTLS_SERVER") == 0);
    CHECK(strcmp(hsmtls_config_error(NULL), hsmtls_error_message()) == 0);
    CHECK(strcmp(hsmtls_conn_error_message(NULL), hsmtls_error_message()) == 0);
    pthread_t t;
    void *ok = NULL;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0 && pthread_join(t, &ok) == 0);
    CHECK(ok != NULL); /* its own message, empty at first; freed when it ended */
    CHECK(strcmp(hsmtls_error_message(), "hsmtls_config_new: role must be HSMTLS_CLIENT or HSMTLS_SERVER") == 0);
}

int main(void)
{
    /* libssl's reason strings, as the first SSL_CTX of a process loads them */
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL);
    test_status_mapping();
    test_status_names();
    test_short();
    test_records();
    test_openssl_reasons();
    test_long_input();
    test_thread_message();
    return check_finish();
}
