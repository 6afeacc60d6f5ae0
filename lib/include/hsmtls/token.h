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

/* The key cache inside the token (docs/pkcs11-core.md): each token key is copied once
 * into a session object inside the token, which signs with it faster (SoftHSM2 re-reads
 * a token object's file on every operation); nothing leaves the token. On by default;
 * 0 turns it off for the whole process (one PKCS#11 core per process), at the cost of
 * that speed, 1 on again. Takes effect now when the provider is loaded, else when it is.
 * Returns HSMTLS_OK, or HSMTLS_ERROR when no library context can be made. */
int hsmtls_token_set_key_cache(int enabled);

#ifdef __cplusplus
}
#endif
#endif
