/* Helpers shared by the DTLS API tests (test_dtls.c, test_dtls_sessions.c): configs,
 * moving datagrams between two memory-mode associations, the cookie exchange. */
#include "dtls_check.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

const char *dtls_server_key;

struct sockaddr_in dtls_addr(const char *ip, unsigned port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

unsigned dtls_largest;

/* Moves every datagram from one side to the other (through handshake or read). */
int dtls_pump(hsmtls_dtls *from, hsmtls_dtls *to, int *status)
{
    unsigned char buf[HSMTLS_DTLS_MAX_DATAGRAM], out[2048];
    int n, moved = 0;
    while ((n = hsmtls_dtls_take(from, buf, sizeof buf)) > 0) {
        if ((unsigned)n > dtls_largest)
            dtls_largest = (unsigned)n;
        moved++;
        if (hsmtls_dtls_state(to) == HSMTLS_DTLS_COMPLETE)
            hsmtls_dtls_read(to, buf, (size_t)n, out, sizeof out);
        else
            *status = hsmtls_dtls_handshake(to, buf, (size_t)n);
    }
    return moved;
}

hsmtls_config *dtls_server_config(void)
{
    hsmtls_config *s = hsmtls_config_new(HSMTLS_SERVER);
    CHECK_MSG(hsmtls_config_set_cert_key(s, check_path("certs/ec-p256.pem"), dtls_server_key) == 0, hsmtls_config_error(s));
    CHECK(hsmtls_config_dtls_cookie_verification(s) == 1);
    return s;
}

hsmtls_config *dtls_client_config(int with_ca)
{
    hsmtls_config *c = hsmtls_config_new(HSMTLS_CLIENT);
    if (with_ca)
        CHECK_MSG(hsmtls_config_add_ca(c, check_path("ca.pem")) == 0, hsmtls_config_error(c));
    return c;
}

/* Client hello, HelloVerifyRequest, verified ClientHello: returns the server made for it. */
hsmtls_dtls *dtls_cookie_exchange(hsmtls_dtls_verifier *v, hsmtls_config *scfg, hsmtls_dtls *cl,
                                    struct sockaddr_in *caddr, int *sst)
{
    unsigned char ch[4096], hvr[300];
    size_t hvr_len = 0;
    CHECK(hsmtls_dtls_handshake(cl, NULL, 0) == HSMTLS_WANT_READ);
    CHECK(hsmtls_dtls_state(cl) == HSMTLS_DTLS_IN_PROGRESS);
    int n = hsmtls_dtls_take(cl, ch, sizeof ch);
    CHECK(n > 0);
    CHECK(hsmtls_dtls_verifier_check(v, ch, (size_t)n, (struct sockaddr *)caddr, sizeof *caddr, hvr, sizeof hvr,
                                     &hvr_len) == 0);
    CHECK(hvr_len > 0 && hvr_len <= (size_t)n);
    /* the same ClientHello from another port gets another cookie; truncated gets nothing */
    size_t none = 1;
    CHECK(hsmtls_dtls_verifier_check(v, ch, (size_t)n / 2, (struct sockaddr *)caddr, sizeof *caddr, hvr,
                                     sizeof hvr, &none) == 0 && none == 0);
    CHECK(hsmtls_dtls_handshake(cl, hvr, hvr_len) == HSMTLS_WANT_READ);
    n = hsmtls_dtls_take(cl, ch, sizeof ch);
    CHECK(n > 0);
    size_t rl = 1;
    CHECK(hsmtls_dtls_verifier_check(v, ch, (size_t)n, (struct sockaddr *)caddr, sizeof *caddr, hvr, sizeof hvr,
                                     &rl) == 1 && rl == 0);
    struct sockaddr_in other = *caddr;
    other.sin_port = htons(ntohs(caddr->sin_port) + 1);
    CHECK(hsmtls_dtls_verifier_check(v, ch, (size_t)n, (struct sockaddr *)&other, sizeof other, hvr, sizeof hvr,
                                     &rl) == 0 && rl > 0 && rl <= (size_t)n);
    hsmtls_dtls *sv = hsmtls_dtls_new(scfg);
    CHECK_MSG(sv != NULL, "server association");
    CHECK(hsmtls_dtls_set_peer(sv, (struct sockaddr *)caddr, sizeof *caddr, NULL) == 0);
    CHECK(hsmtls_dtls_use_verifier_secret(sv, v) == 0);
    *sst = hsmtls_dtls_handshake(sv, ch, (size_t)n);
    CHECK_MSG(*sst == HSMTLS_WANT_READ, hsmtls_dtls_error_message(sv));
    return sv;
}

int dtls_run_handshake(hsmtls_dtls *cl, hsmtls_dtls *sv, int *cst, int *sst)
{
    for (int round = 0; round < 50; round++) {
        int moved = dtls_pump(sv, cl, cst) + dtls_pump(cl, sv, sst);
        if (hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE && hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE &&
            !hsmtls_dtls_outgoing(cl) && !hsmtls_dtls_outgoing(sv))
            return 1;
        if (!moved)
            break;
    }
    return hsmtls_dtls_state(cl) == HSMTLS_DTLS_COMPLETE && hsmtls_dtls_state(sv) == HSMTLS_DTLS_COMPLETE;
}

