/* A datagram BIO for DTLS on OpenSSL 3.0, which has no BIO_s_dgram_mem (3.2 does):
 * datagram boundaries kept both ways. Reads take the one datagram the application
 * offered (then "retry"); writes are each one datagram, queued for the application to
 * take or sent with sendto() on the application's socket. */
#include "dtls_internal.h"
#include "lib_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_QUEUED 512

struct dgram {
    struct dgram *next;
    size_t len;
    unsigned char data[];
};

struct dbio {
    unsigned char *in;
    size_t in_len;
    int has_in;
    struct dgram *head, *tail;
    size_t count;
    int fd;
    int muted;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct timeval *ossl_deadline;  /* OpenSSL's own retransmission deadline (dtls_timer.c) */
};

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int d_read(BIO *b, char *buf, int size)
{
    struct dbio *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d || size <= 0)
        return 0;
    if (!d->has_in) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = d->in_len < (size_t)size ? d->in_len : (size_t)size; /* longer: truncated, as UDP does */
    memcpy(buf, d->in, n);
    d->has_in = 0;
    return (int)n;
}

static int d_write(BIO *b, const char *data, int len)
{
    struct dbio *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d || len <= 0)
        return 0;
    if (d->muted)
        return len;
    if (d->fd >= 0) {
        ssize_t r;
        do {
            r = d->peer_len ? sendto(d->fd, data, (size_t)len, 0, (struct sockaddr *)&d->peer, d->peer_len)
                            : send(d->fd, data, (size_t)len, 0);
        } while (r < 0 && errno == EINTR);
        /* A datagram the kernel cannot take now is lost, as on the wire: the
         * retransmission timer covers handshake messages. */
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS && errno != ECONNREFUSED)
            return -1;
        return len;
    }
    if (d->count >= MAX_QUEUED)
        return len; /* the application does not take them: dropped, as a full queue would */
    struct dgram *g = malloc(sizeof *g + (size_t)len);
    if (!g)
        return -1;
    g->next = NULL;
    g->len = (size_t)len;
    memcpy(g->data, data, (size_t)len);
    if (d->tail)
        d->tail->next = g;
    else
        d->head = g;
    d->tail = g;
    d->count++;
    return len;
}

static long d_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct dbio *d = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return d && d->has_in ? (long)d->in_len : 0;
    case BIO_CTRL_WPENDING:
        return 0; /* each write is a datagram of its own, nothing is held back */
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 0; /* the MTU hint is the UDP payload size */
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return 1400;
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
        /* OpenSSL before 3.2 hands over its DTLS state's own deadline, which lives as
         * long as the SSL and with it this BIO */
        if (d && ptr)
            d->ossl_deadline = ptr;
        return 0;
    case BIO_CTRL_DGRAM_SET_MTU:
    case BIO_CTRL_DGRAM_MTU_EXCEEDED:
        return 0;
    default:
        return 0;
    }
}

static int d_create(BIO *b)
{
    struct dbio *d = calloc(1, sizeof *d);
    if (!d)
        return 0;
    d->fd = -1;
    BIO_set_data(b, d);
    BIO_set_init(b, 1);
    return 1;
}

static void clear_out(struct dbio *d)
{
    for (struct dgram *g = d->head, *n; g; g = n) {
        n = g->next;
        free(g);
    }
    d->head = d->tail = NULL;
    d->count = 0;
}

static int d_destroy(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    if (d) {
        clear_out(d);
        free(d->in);
        free(d);
    }
    BIO_set_data(b, NULL);
    return 1;
}

static void make_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hsmtls datagrams");
    if (m && BIO_meth_set_write(m, d_write) && BIO_meth_set_read(m, d_read) && BIO_meth_set_ctrl(m, d_ctrl) &&
        BIO_meth_set_create(m, d_create) && BIO_meth_set_destroy(m, d_destroy)) {
        method = m;
        return;
    }
    BIO_meth_free(m);
}

BIO *hsmtls__dgram_bio_new(void)
{
    pthread_once(&method_once, make_method);
    return method ? BIO_new(method) : NULL;
}

int hsmtls__dgram_bio_push(BIO *b, const void *data, size_t len)
{
    struct dbio *d = BIO_get_data(b);
    if (len > HSMTLS_DTLS_MAX_DATAGRAM_INTERNAL)
        len = HSMTLS_DTLS_MAX_DATAGRAM_INTERNAL;
    if (!d->in && !(d->in = malloc(HSMTLS_DTLS_MAX_DATAGRAM_INTERNAL)))
        return -1;
    memcpy(d->in, data, len);
    d->in_len = len;
    d->has_in = 1;
    return 0;
}

void hsmtls__dgram_bio_clear_in(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    d->has_in = 0;
}

void hsmtls__dgram_bio_set_fd(BIO *b, int fd)
{
    struct dbio *d = BIO_get_data(b);
    d->fd = fd;
}

void hsmtls__dgram_bio_set_peer(BIO *b, const struct sockaddr *peer, socklen_t len)
{
    struct dbio *d = BIO_get_data(b);
    if (!peer || len > sizeof d->peer) {
        d->peer_len = 0;
        return;
    }
    memcpy(&d->peer, peer, len);
    d->peer_len = len;
}

int hsmtls__dgram_bio_take(BIO *b, void *buf, size_t size)
{
    struct dbio *d = BIO_get_data(b);
    struct dgram *g = d->head;
    if (!g)
        return 0;
    if (size < g->len)
        return -1;
    memcpy(buf, g->data, g->len);
    int n = (int)g->len;
    d->head = g->next;
    if (!d->head)
        d->tail = NULL;
    d->count--;
    free(g);
    return n;
}

size_t hsmtls__dgram_bio_next_size(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    return d->head ? d->head->len : 0;
}

size_t hsmtls__dgram_bio_count(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    return d->count;
}

void hsmtls__dgram_bio_clear_out(BIO *b)
{
    clear_out(BIO_get_data(b));
}

void hsmtls__dgram_bio_mute(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    d->muted = 1;
    clear_out(d);
}

int hsmtls__dgram_bio_expire_timer(BIO *b)
{
    struct dbio *d = BIO_get_data(b);
    if (!d || !d->ossl_deadline || (d->ossl_deadline->tv_sec == 0 && d->ossl_deadline->tv_usec == 0))
        return 0;
    /* long past, and not zero (which would mean "no timer") */
    d->ossl_deadline->tv_sec = 0;
    d->ossl_deadline->tv_usec = 1;
    return 1;
}
