/* What the PKCS#11 tokens did for this process: counters kept by the PKCS#11 core
 * inside the hsmtls provider that libhsmtls loads (hsmtls/config.h), so an
 * application (or `hsmtls demo`) can show that a handshake really signed on a token. */
#ifndef HSMTLS_TOKEN_H
#define HSMTLS_TOKEN_H

#ifdef __cplusplus
extern "C" {
#endif

/* The signatures the token labelled token_label made for libhsmtls in this process:
 * successful C_Sign calls that returned a signature, counted by the provider's PKCS#11
 * core (a failed or refused attempt does not count). Tokens with that label in several
 * modules or slots add up; NULL adds up every token. A token never used, or a process
 * that never loaded the provider (file keys only), gives 0. Returns HSMTLS_ERROR with
 * hsmtls_error_message() when the provider cannot be asked. Take the difference of
 * two readings to count one handshake's signatures. */
long hsmtls_token_signatures(const char *token_label);

#ifdef __cplusplus
}
#endif
#endif
