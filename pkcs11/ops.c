/* Sign, decrypt and derive on a pooled session. Each runs at most twice: once more
 * after a lost session (replaced, login restored) or a stale handle (looked up again). */
#include "p11_internal.h"

#include <stdlib.h>
#include <string.h>

struct op {
    const char *what;             /* "signing", for messages */
    const CK_MECHANISM *mech;
    CK_OBJECT_HANDLE key;         /* the key's copy inside the token, or the key itself */
    const unsigned char *in;
    size_t in_len;
    unsigned char *out;
    CK_ULONG out_len;
    int started;                  /* an operation is active on the session after a failure */
};

typedef CK_RV (*op_fn)(hsmtls_p11_object *o, CK_SESSION_HANDLE s, struct op *op);

/* Init, the context-specific login a CKA_ALWAYS_AUTHENTICATE key wants, then the
 * single-part call: the same steps for signing and decrypting. */
static CK_RV single_part(hsmtls_p11_object *o, CK_SESSION_HANDLE s, struct op *op, int decrypt)
{
    hsmtls_p11_module *m = o->token->module;
    CK_MECHANISM *mech = (CK_MECHANISM *)op->mech;
    CK_RV rv = decrypt ? P11_CALL(m, C_DecryptInit, s, mech, op->key)
                       : P11_CALL(m, C_SignInit, s, mech, op->key);
    if (rv != CKR_OK)
        return rv;
    op->started = 1;
    if (o->always_authenticate && (rv = hsmtls_p11_token_context_login(o->token, s)) != CKR_OK)
        return rv;
    unsigned char *in = (unsigned char *)op->in;
    rv = decrypt ? P11_CALL(m, C_Decrypt, s, in, op->in_len, op->out, &op->out_len)
                 : P11_CALL(m, C_Sign, s, in, op->in_len, op->out, &op->out_len);
    op->started = rv == CKR_BUFFER_TOO_SMALL; /* other results end the operation */
    return rv;
}

static CK_RV sign_fn(hsmtls_p11_object *o, CK_SESSION_HANDLE s, struct op *op)
{
    CK_RV rv = single_part(o, s, op, 0);
    /* Counted here, after the token said yes: a failed or retried attempt made no
     * signature, and a call without an output buffer only asks for the length. */
    if (rv == CKR_OK && op->out) {
        hsmtls_p11_token *t = o->token->primary ? o->token->primary : o->token; /* lanes.c */
        atomic_fetch_add_explicit(&t->signatures, 1, memory_order_relaxed);
    }
    return rv;
}

static CK_RV decrypt_fn(hsmtls_p11_object *o, CK_SESSION_HANDLE s, struct op *op)
{
    return single_part(o, s, op, 1);
}

static CK_RV derive_fn(hsmtls_p11_object *o, CK_SESSION_HANDLE s, struct op *op)
{
    hsmtls_p11_module *m = o->token->module;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    /* A session object that may be read back: the shared secret is the result. */
    CK_ATTRIBUTE tmpl[] = {
        { CKA_CLASS, &cls, sizeof cls }, { CKA_KEY_TYPE, &kt, sizeof kt },
        { CKA_TOKEN, &no, sizeof no }, { CKA_SENSITIVE, &no, sizeof no },
        { CKA_EXTRACTABLE, &yes, sizeof yes },
    };
    CK_OBJECT_HANDLE secret;
    CK_RV rv = P11_CALL(m, C_DeriveKey, s, (CK_MECHANISM *)op->mech, op->key,
                        tmpl, sizeof tmpl / sizeof tmpl[0], &secret);
    if (rv != CKR_OK)
        return rv;
    CK_ATTRIBUTE value = { CKA_VALUE, op->out, op->out_len };
    rv = P11_CALL(m, C_GetAttributeValue, s, secret, &value, 1);
    P11_CALL(m, C_DestroyObject, s, secret);
    if (rv == CKR_OK)
        op->out_len = value.ulValueLen;
    return rv;
}

/* A lost session (or device, or token) and a stale handle are each retried once; both
 * can happen to one operation (closing every session logs out, and the token then drops
 * the handles of private objects). A module that went down is started again by the
 * retry's session acquire, in a new epoch: the retry logs in again with the kept PIN and
 * finds the key again by its label and id. */
static int run(hsmtls_p11_object *o, op_fn fn, struct op *op, size_t *out_len)
{
    hsmtls_p11_token *t = o->token;
    CK_RV rv = CKR_OK;
    int session_retries = 1, handle_retries = 1, first = 1;
    for (;;) {
        CK_SESSION_HANDLE s;
        /* ensure_login after acquire: a fork or a restart shows up in acquire */
        int ready = hsmtls_p11_session_acquire(t, &s) == 0;
        if (ready && hsmtls_p11_token_ensure_login(t) < 0) {
            hsmtls_p11_session_release(t, s, hsmtls_p11_session_is_lost(hsmtls_p11_error_rv()));
            ready = 0;
        }
        if (!ready)
            return hsmtls_p11_error_set(hsmtls_p11_error_rv(), "%s with \"%s\" on token \"%s\": %s",
                                        op->what, o->label, t->label, hsmtls_p11_error_message());
        op->started = 0;
        int on_copy = 0;
        rv = hsmtls_p11_key_handle(o, s, first, &op->key, &on_copy);
        first = 0;
        if (rv == CKR_OK)
            rv = fn(o, s, op);
        enum hsmtls_p11_failure f = hsmtls_p11_classify(rv);
        if (hsmtls_p11_session_is_lost(rv)) {
            /* A module that went down starts again in the next acquire. */
            hsmtls_p11_session_release(t, s, 1);
            hsmtls_p11_token_drop_sessions(t);
            if (session_retries-- > 0)
                continue;
            break;
        }
        if (f == HSMTLS_P11_TRANSIENT) {
            /* The token was short of memory or sessions: the session itself is fine
             * (a failed C_Sign ends its operation), and closing it could log out. */
            hsmtls_p11_session_release(t, s, 0);
            if (session_retries-- > 0)
                continue;
            break;
        }
        /* A session with an operation left active would fail the next Init. */
        hsmtls_p11_session_release(t, s, op->started);
        if (f == HSMTLS_P11_HANDLE_STALE && handle_retries-- > 0) {
            /* A stale copy most likely means every handle went (a logout, a token
             * that renumbered its objects): the key is found again too. */
            if (on_copy)
                hsmtls_p11_key_copy_stale(o);
            atomic_store(&o->generation, ~0u);
            continue;
        }
        break;
    }
    if (rv != CKR_OK) {
        const char *why = hsmtls_p11_unreachable_note(rv);
        /* Worth a second look only on this error path: a remoting layer (p11-kit
         * 0.24's RPC) lists mechanisms whose parameters it cannot forward. */
        if (rv == CKR_MECHANISM_INVALID)
            why = hsmtls_p11_token_has_mechanism(t, op->mech->mechanism)
                      ? " (the token lists this mechanism, but its module refuses it here: a "
                        "remoting layer may not forward it or its parameters)"
                      : " (the token does not offer this mechanism)";
        return hsmtls_p11_error_set(rv, "%s with \"%s\" on token \"%s\" (%s): %s%s", op->what,
                                    o->label, t->label, hsmtls_p11_mechanism_name(op->mech->mechanism),
                                    hsmtls_p11_rv_name(rv), why);
    }
    *out_len = op->out_len;
    return 0;
}

static int check_key(hsmtls_p11_object *key, const char *what)
{
    if (key->cls != CKO_PRIVATE_KEY)
        return hsmtls_p11_error_set(CKR_KEY_TYPE_INCONSISTENT, "%s needs a private key; \"%s\" on "
                                    "token \"%s\" is %s", what, key->label, key->token->label,
                                    hsmtls_p11_class_name(key->cls));
    return 0;
}

int hsmtls_p11_sign(hsmtls_p11_object *key, const CK_MECHANISM *mech,
                    const unsigned char *in, size_t in_len, unsigned char *out, size_t *out_len)
{
    struct op op = { .what = "signing", .mech = mech, .in = in, .in_len = in_len, .out = out,
                      .out_len = *out_len };
    return check_key(key, "signing") < 0 ? -1 : run(hsmtls_p11_object_lane(key), sign_fn, &op, out_len);
}

int hsmtls_p11_decrypt(hsmtls_p11_object *key, const CK_MECHANISM *mech,
                       const unsigned char *in, size_t in_len, unsigned char *out, size_t *out_len)
{
    struct op op = { .what = "decrypting", .mech = mech, .in = in, .in_len = in_len, .out = out,
                      .out_len = *out_len };
    return check_key(key, "decrypting") < 0 ? -1 : run(hsmtls_p11_object_lane(key), decrypt_fn, &op, out_len);
}

int hsmtls_p11_derive(hsmtls_p11_object *key, const unsigned char *peer_point, size_t peer_len,
                      unsigned char *out, size_t *out_len)
{
    CK_ECDH1_DERIVE_PARAMS params = { CKD_NULL, 0, NULL, peer_len, (unsigned char *)peer_point };
    CK_MECHANISM mech = { CKM_ECDH1_DERIVE, &params, sizeof params };
    struct op op = { .what = "deriving", .mech = &mech, .out = out, .out_len = *out_len };
    return check_key(key, "deriving") < 0 ? -1 : run(hsmtls_p11_object_lane(key), derive_fn, &op, out_len);
}
