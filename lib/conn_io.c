/* Callback I/O for connections: a BIO whose reads and writes are the application's
 * functions, for transports that are neither an fd nor a buffer the application pumps
 * (an event library's stream, a test harness, a tunnel). */
#include "lib_internal.h"

#include <limits.h>
#include <stdlib.h>

struct io {
    hsmtls_read_cb read;
    hsmtls_write_cb write;
    void *arg;
};

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int io_read(BIO *b, char *buf, int size)
{
    struct io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!io || size <= 0)
        return 0;
    int r = io->read(io->arg, buf, (size_t)size);
    if (r == HSMTLS_WANT_READ || r == HSMTLS_WANT_WRITE) {
        BIO_set_retry_read(b);
        return -1;
    }
    if (r > size)
        return -1; /* a callback that claims more than it was given is broken */
    return r < 0 ? -1 : r;
}

static int io_write(BIO *b, const char *data, int len)
{
    struct io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!io || len <= 0)
        return 0;
    int r = io->write(io->arg, data, (size_t)len);
    if (r == HSMTLS_WANT_WRITE || r == HSMTLS_WANT_READ) {
        BIO_set_retry_write(b);
        return -1;
    }
    if (r > len || r == 0)
        return -1;
    return r < 0 ? -1 : r;
}

static long io_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* libssl flushes after each flight; our writes are never buffered */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int io_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static int io_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hsmtls callbacks");
    if (m && BIO_meth_set_read(m, io_read) && BIO_meth_set_write(m, io_write) &&
        BIO_meth_set_ctrl(m, io_ctrl) && BIO_meth_set_create(m, io_create) &&
        BIO_meth_set_destroy(m, io_destroy))
        method = m;
    else
        BIO_meth_free(m);
}

int hsmtls_conn_set_io(hsmtls_conn *conn, hsmtls_read_cb read_cb, hsmtls_write_cb write_cb, void *arg)
{
    if (conn->mode != MODE_NONE)
        return hsmtls__err_set(&conn->err, "the connection already has its I/O");
    if (!read_cb || !write_cb)
        return hsmtls__err_set(&conn->err, "hsmtls_conn_set_io: both callbacks are needed");
    pthread_once(&method_once, make_method);
    struct io *io = malloc(sizeof *io);
    BIO *b = method && io ? BIO_new(method) : NULL;
    if (!b) {
        free(io);
        return hsmtls__err_ssl(&conn->err, "out of memory");
    }
    *io = (struct io){ read_cb, write_cb, arg };
    BIO_set_data(b, io);
    SSL_set_bio(conn->ssl, b, b); /* one reference serves both directions */
    conn->mode = MODE_CALLBACKS;
    return HSMTLS_OK;
}
