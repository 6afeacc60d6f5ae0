/* libhsmtls statuses and error messages.
 *
 * Every call returns 0 (or a byte count) on success and a negative HSMTLS_* status
 * otherwise. A failed call leaves a readable message on the object it was called on
 * (hsmtls_config_error(), hsmtls_conn_error_message()) and in the calling thread's last
 * message (hsmtls_error_message()), which also covers constructors that return NULL.
 * Messages say what failed, on which file or URI, and keep OpenSSL's reason; a PIN or
 * passphrase never appears in one. */
#ifndef HSMTLS_ERROR_H
#define HSMTLS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum hsmtls_status {
    HSMTLS_OK = 0,
    HSMTLS_ERROR = -1,        /* failed; see the message */
    HSMTLS_WANT_READ = -2,    /* non-blocking: wait until the fd is readable (or feed bytes) */
    HSMTLS_WANT_WRITE = -3,   /* non-blocking: wait until the fd is writable (or take bytes) */
    HSMTLS_WANT_ASYNC = -4,   /* reserved: a token operation is in flight */
    HSMTLS_WANT_VERIFY = -5,  /* reserved: handshake paused on verification errors */
    HSMTLS_CLOSED = -6,       /* the peer closed the connection without close_notify:
                                 what it sent may be cut short (a message says so) */
};

/* "HSMTLS_WANT_READ" and so on, for logs. */
const char *hsmtls_status_name(int status);

/* The calling thread's last message ("" when none). */
const char *hsmtls_error_message(void);

#ifdef __cplusplus
}
#endif
#endif
