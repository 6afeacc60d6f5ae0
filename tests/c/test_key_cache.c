/* The core's key cache against a real SoftHSM2 sandbox: each key is copied into the token
 * once, the copy keeps the key's protection and never shows in listings, a lost copy is
 * made again, and a key the token will not copy is used as it is. The test looks at the
 * copies itself through the module's own function list (the same SoftHSM2 instance the
 * core initialised: session objects are visible to every session of the process).
 * usage: test_key_cache SANDBOX_DIR CASE   (the sandbox's env.sh must be in effect) */
#include "check.h"
#include "hsmtls/p11_object.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/sha.h>

static CK_FUNCTION_LIST *raw;

static hsmtls_p11_object *find(const char *text)
{
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(text);
    hsmtls_p11_object *o = uri ? hsmtls_p11_object_find(uri, NULL, CKO_PRIVATE_KEY) : NULL;
    CHECK_MSG(o != NULL, hsmtls_p11_error_message());
    hsmtls_p11_uri_free(uri);
    return o;
}

static hsmtls_p11_object *server_key(const char *label)
{
    char uri[256];
    snprintf(uri, sizeof uri, "pkcs11:token=server;object=%s;type=private?pin-value=1234", label);
    return find(uri);
}

/* One signature with the mechanism the key type wants; the token's answer is checked by
 * test_core, here only that it signs. */
static int sign(hsmtls_p11_object *key)
{
    unsigned char digest[32], sig[512];
    size_t siglen = sizeof sig;
    SHA256((const unsigned char *)"key cache", 9, digest);
    static const unsigned char sha256_info[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                                 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
    unsigned char info[sizeof sha256_info + 32];
    memcpy(info, sha256_info, sizeof sha256_info);
    memcpy(info + sizeof sha256_info, digest, 32);
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    const unsigned char *in = digest;
    size_t in_len = sizeof digest;
    if (hsmtls_p11_object_key_type(key) == CKK_RSA) {
        mech.mechanism = CKM_RSA_PKCS;
        in = info;
        in_len = sizeof info;
    } else if (hsmtls_p11_object_key_type(key) == CKK_EC_EDWARDS) {
        mech.mechanism = CKM_EDDSA;
    }
    int ok = hsmtls_p11_sign(key, &mech, in, in_len, sig, &siglen) == 0;
    if (!ok)
        fprintf(stderr, "signing: %s\n", hsmtls_p11_error_message());
    return ok;
}

/* The module's own function list and a session on the server token, for looking at the
 * copies from outside the core. */
static CK_SESSION_HANDLE raw_session(const char *token)
{
    if (!raw) {
        void *lib = dlopen(getenv("HSMTLS_PKCS11_MODULE"), RTLD_NOW);
        CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
        CHECK_MSG(get && get(&raw) == CKR_OK, "loading the module named by HSMTLS_PKCS11_MODULE");
        if (!raw)
            return CK_INVALID_HANDLE;
    }
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CHECK(raw->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (raw->C_GetTokenInfo(slots[i], &ti) != CKR_OK || strncmp((char *)ti.label, token, strlen(token)) != 0 ||
            ti.label[strlen(token)] != ' ')
            continue;
        CK_SESSION_HANDLE s;
        CHECK(raw->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) == CKR_OK);
        return s;
    }
    CHECK_MSG(0, "no such token");
    return CK_INVALID_HANDLE;
}

/* Private keys labelled `label` that are session objects (on_token 0) or token objects. */
static CK_ULONG raw_keys(CK_SESSION_HANDLE s, const char *label, CK_BBOOL on_token, CK_OBJECT_HANDLE *h, CK_ULONG cap)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof cls }, { CKA_LABEL, (void *)label, strlen(label) },
                            { CKA_TOKEN, &on_token, sizeof on_token } };
    CK_ULONG n = 0;
    CHECK(raw->C_FindObjectsInit(s, tmpl, 3) == CKR_OK);
    CHECK(raw->C_FindObjects(s, h, cap, &n) == CKR_OK);
    CHECK(raw->C_FindObjectsFinal(s) == CKR_OK);
    return n;
}

struct many {
    hsmtls_p11_object **keys;
    int nkeys, ok;
};

static void *sign_many(void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < 20; i++)
        for (int k = 0; k < m->nkeys; k++)
            if (!sign(m->keys[k]))
                m->ok = 0;
    return NULL;
}

/* Four threads sign with three keys at once: one copy per key, then two calls a signature. */
static void case_once(void)
{
    hsmtls_p11_object *keys[] = { server_key("ec-p256"), server_key("rsa2048"), server_key("ed25519") };
    if (!keys[0] || !keys[1] || !keys[2])
        return;
    CHECK(hsmtls_p11_key_cache_enabled());
    hsmtls_p11_calls_reset();
    struct many m[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        m[i] = (struct many){ keys, 3, 1 };
        pthread_create(&th[i], NULL, sign_many, &m[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(m[i].ok);
    }
    CHECK_MSG(hsmtls_p11_calls("C_CopyObject") == 3, "not exactly one copy per key");
    CHECK(hsmtls_p11_calls("C_Sign") == 4 * 20 * 3);
    for (int k = 0; k < 3; k++) {
        CHECK(hsmtls_p11_object_cached(keys[k]));
        CHECK(hsmtls_p11_object_copies(keys[k]) == 1);
    }
    hsmtls_p11_calls_reset();
    CHECK(sign(keys[0]));
    CHECK_MSG(hsmtls_p11_calls_total() == 2, "a warm signature on a copy costs more than two calls");
    /* A second lookup of the same key is the same object, copy and all. */
    CHECK(server_key("ec-p256") == keys[0]);
}

/* The copy is a session object with the key's protection: sensitive, never extractable,
 * its value unreadable; listings show the token's objects only. */
static void case_protected(void)
{
    hsmtls_p11_object *key = server_key("ec-p256");
    if (!key || !sign(key))
        return;
    CHECK(hsmtls_p11_object_cached(key));
    CK_SESSION_HANDLE s = raw_session("server");
    CK_OBJECT_HANDLE copies[4], originals[4];
    CHECK(raw_keys(s, "ec-p256", CK_FALSE, copies, 4) == 1);
    CHECK(raw_keys(s, "ec-p256", CK_TRUE, originals, 4) == 1);
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, on_token = CK_TRUE;
    CK_ATTRIBUTE a[] = { { CKA_SENSITIVE, &sensitive, sizeof sensitive },
                         { CKA_EXTRACTABLE, &extractable, sizeof extractable },
                         { CKA_TOKEN, &on_token, sizeof on_token } };
    CHECK(raw->C_GetAttributeValue(s, copies[0], a, 3) == CKR_OK);
    CHECK(sensitive == CK_TRUE && extractable == CK_FALSE && on_token == CK_FALSE);
    unsigned char value[256];
    CK_ATTRIBUTE secret = { CKA_VALUE, value, sizeof value };
    CHECK(raw->C_GetAttributeValue(s, copies[0], &secret, 1) == CKR_ATTRIBUTE_SENSITIVE);
    raw->C_CloseSession(s);

    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse("pkcs11:token=server;object=ec-p256");
    hsmtls_p11_object **objs = NULL;
    size_t n = 0;
    CHECK(uri && hsmtls_p11_objects_list(uri, NULL, HSMTLS_P11_ANY_CLASS, &objs, &n) == 0);
    size_t privates = 0;
    for (size_t i = 0; i < n; i++)
        privates += hsmtls_p11_object_class(objs[i]) == CKO_PRIVATE_KEY;
    CHECK_MSG(privates == 1, "the copy shows in a listing");
    free(objs);
    hsmtls_p11_uri_free(uri);
}

/* Turned off, the key itself signs: no copy, still two calls a signature. */
static void case_off(void)
{
    if (getenv("HSMTLS_KEY_CACHE"))
        CHECK(!hsmtls_p11_key_cache_enabled()); /* pytest runs this case with it set to 0 */
    else
        hsmtls_p11_key_cache_set(0);
    hsmtls_p11_object *key = server_key("rsa2048");
    if (!key)
        return;
    hsmtls_p11_calls_reset();
    CHECK(sign(key) && sign(key));
    CHECK(!hsmtls_p11_object_cached(key) && hsmtls_p11_object_copies(key) == 0);
    CHECK(hsmtls_p11_calls("C_CopyObject") == 0 && hsmtls_p11_calls_total() == 4);
    CK_SESSION_HANDLE s = raw_session("server");
    CK_OBJECT_HANDLE h[4];
    CHECK(raw_keys(s, "rsa2048", CK_FALSE, h, 4) == 0);
    raw->C_CloseSession(s);
    /* On again: the next operation makes the copy. */
    hsmtls_p11_key_cache_set(1);
    CHECK(sign(key) && hsmtls_p11_object_cached(key));
}

/* A copy that went away (every session closed behind the core's back, the copy destroyed
 * by another user of the module, a fork) is made again, and signing goes on: the
 * operation that found it gone recovers on the key itself, the next makes the copy. */
static void case_lost(void)
{
    hsmtls_p11_object *key = server_key("ec-p256");
    if (!key || !sign(key))
        return;
    CHECK(hsmtls_p11_object_copies(key) == 1);
    CHECK(hsmtls_p11_token_close_all_sessions(hsmtls_p11_object_token(key)) == 0);
    CHECK(sign(key) && hsmtls_p11_object_copies(key) == 1);
    CHECK(sign(key));
    CHECK(hsmtls_p11_object_cached(key) && hsmtls_p11_object_copies(key) == 2);

    CK_SESSION_HANDLE s = raw_session("server");
    CK_OBJECT_HANDLE copy;
    CHECK(raw_keys(s, "ec-p256", CK_FALSE, &copy, 1) == 1);
    CHECK(raw->C_DestroyObject(s, copy) == CKR_OK);
    raw->C_CloseSession(s);
    hsmtls_p11_calls_reset();
    CHECK(sign(key) && sign(key));
    CHECK(hsmtls_p11_object_copies(key) == 3 && hsmtls_p11_calls("C_CopyObject") == 1);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = sign(key) && sign(key) && hsmtls_p11_object_cached(key) &&
                 hsmtls_p11_object_copies(key) == 4;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child did not sign on its own copy");
    hsmtls_p11_calls_reset();
    CHECK(sign(key) && hsmtls_p11_calls_total() == 2);
    CHECK(hsmtls_p11_object_copies(key) == 3);
}

/* A key whose CKA_COPYABLE is false (made so at generation: the attribute can only be
 * set then) is used as it is, and the token is never asked about copying it again. */
static void case_not_copyable(void)
{
    /* The core starts the module and logs in first; the test's session shares both. */
    hsmtls_p11_uri *scratch = hsmtls_p11_uri_parse("pkcs11:token=scratch?pin-value=1234");
    hsmtls_p11_object **none = NULL;
    size_t n = 0;
    CHECK_MSG(scratch && hsmtls_p11_objects_list(scratch, NULL, HSMTLS_P11_ANY_CLASS, &none, &n) == 0,
              hsmtls_p11_error_message());
    free(none);
    hsmtls_p11_uri_free(scratch);
    CK_SESSION_HANDLE s = raw_session("scratch");
    CK_RV login = raw->C_Login(s, CKU_USER, (CK_UTF8CHAR *)"1234", 4);
    CHECK(login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN);
    static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE pub[] = { { CKA_TOKEN, &yes, sizeof yes }, { CKA_VERIFY, &yes, sizeof yes },
                           { CKA_EC_PARAMS, (void *)p256, sizeof p256 }, { CKA_LABEL, "no-copy", 7 } };
    CK_ATTRIBUTE priv[] = { { CKA_TOKEN, &yes, sizeof yes }, { CKA_PRIVATE, &yes, sizeof yes },
                            { CKA_SENSITIVE, &yes, sizeof yes }, { CKA_SIGN, &yes, sizeof yes },
                            { CKA_COPYABLE, &no, sizeof no }, { CKA_LABEL, "no-copy", 7 } };
    CK_MECHANISM gen = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
    CK_OBJECT_HANDLE hpub, hpriv;
    CHECK(raw->C_GenerateKeyPair(s, &gen, pub, 4, priv, 6, &hpub, &hpriv) == CKR_OK);
    hsmtls_p11_object *key = find("pkcs11:token=scratch;object=no-copy;type=private?pin-value=1234");
    if (key) {
        hsmtls_p11_calls_reset();
        CHECK(sign(key) && sign(key) && sign(key));
        CHECK(!hsmtls_p11_object_cached(key) && hsmtls_p11_object_copies(key) == 0);
        CHECK(hsmtls_p11_calls("C_CopyObject") == 0);
        CHECK_MSG(hsmtls_p11_calls("C_GetAttributeValue") == 1, "asked the token about copying more than once");
        CHECK(hsmtls_p11_calls("C_Sign") == 3);
    }
    /* Leave the scratch token as it was. */
    CHECK(raw->C_DestroyObject(s, hpriv) == CKR_OK && raw->C_DestroyObject(s, hpub) == CKR_OK);
    raw->C_CloseSession(s);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = {
        { "once", case_once }, { "protected", case_protected }, { "off", case_off },
        { "lost", case_lost }, { "not_copyable", case_not_copyable },
    };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
