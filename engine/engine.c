/* The hsmtls ENGINE: a thin ENGINE over the hsmtls provider's OSSL_STORE, for programs
 * that load hardware keys the ENGINE way (nginx `engine:hsmtls:KEY`, curl --engine,
 * stunnel, `openssl ... -engine hsmtls -keyform engine`).
 *
 * load_privkey / load_pubkey take a pkcs11: URI or one of engine_pkcs11's key ids
 * (id_HEX, label_NAME, slot_N-id_HEX, slot_N-label_NAME, N:HEX, HEX), turn it into a
 * URI (adding MODULE_PATH and PIN as module-path / pin-value when the URI has none),
 * and open it with OSSL_STORE_open_ex in the default library context. The keys that
 * come back are the provider's: every signature and decryption runs in the provider,
 * so there is one signing path, and libssl's TLS-specific RSA padding, RSA-PSS and
 * EdDSA work as they do with `-key pkcs11:...`.
 *
 * The provider must be in the process: if openssl.cnf did not load it, init() loads
 * it from PROVIDER_PATH (a control command), else where libhsmtls would
 * (provider/locate.c: $HSMTLS_PROVIDER, the build tree, beside this engine as
 * installed, the install path).
 *
 * Control commands are those of libp11's engine_pkcs11 (same names and numbers) plus
 * PROVIDER_PATH. A PIN is never printed: URIs are shown with pin-value masked. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core.h>
#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include "hsmtls/p11_error.h"
#include "hsmtls/p11_uri.h"
#include "hsmtls_provider.h"

#ifndef HSMTLS_VERSION
#define HSMTLS_VERSION "0"
#endif

static const char engine_id[] = "hsmtls";
static const char engine_name[] = "hsmtls engine: PKCS#11 token keys through the hsmtls provider";

/* libp11's command numbers (engine_pkcs11 0.4.12/0.4.13), so programs that pass
 * numbers rather than names reach the same commands. */
#define CMD_SO_PATH ENGINE_CMD_BASE
#define CMD_MODULE_PATH (ENGINE_CMD_BASE + 1)
#define CMD_PIN (ENGINE_CMD_BASE + 2)
#define CMD_VERBOSE (ENGINE_CMD_BASE + 3)
#define CMD_QUIET (ENGINE_CMD_BASE + 4)
#define CMD_LOAD_CERT_CTRL (ENGINE_CMD_BASE + 5)
#define CMD_INIT_ARGS (ENGINE_CMD_BASE + 6)
#define CMD_SET_USER_INTERFACE (ENGINE_CMD_BASE + 7)
#define CMD_SET_CALLBACK_DATA (ENGINE_CMD_BASE + 8)
#define CMD_FORCE_LOGIN (ENGINE_CMD_BASE + 9)
#define CMD_RE_ENUMERATE (ENGINE_CMD_BASE + 10)
#define CMD_DEBUG_LEVEL (ENGINE_CMD_BASE + 12)
#define CMD_KEYGEN (ENGINE_CMD_BASE + 13)
#define CMD_PROVIDER_PATH (ENGINE_CMD_BASE + 100)

static const ENGINE_CMD_DEFN cmd_defns[] = {
    { CMD_SO_PATH, "SO_PATH", "Deprecated alias of MODULE_PATH", ENGINE_CMD_FLAG_STRING },
    { CMD_MODULE_PATH, "MODULE_PATH",
      "PKCS#11 module for URIs without module-path (HSMTLS_PKCS11_MODULE still overrides)",
      ENGINE_CMD_FLAG_STRING },
    { CMD_PIN, "PIN", "User PIN for URIs without pin-value/pin-source (never printed)",
      ENGINE_CMD_FLAG_STRING },
    { CMD_VERBOSE, "VERBOSE", "Print what is loaded, and from where", ENGINE_CMD_FLAG_NO_INPUT },
    { CMD_QUIET, "QUIET", "Print nothing but errors", ENGINE_CMD_FLAG_NO_INPUT },
    { CMD_LOAD_CERT_CTRL, "LOAD_CERT_CTRL",
      "Get a certificate by pkcs11: URI or key id (struct { const char *id; X509 *cert; })",
      ENGINE_CMD_FLAG_INTERNAL },
    { CMD_INIT_ARGS, "INIT_ARGS",
      "Accepted for compatibility; not passed to C_Initialize (hsmtls initialises modules itself)",
      ENGINE_CMD_FLAG_STRING },
    { CMD_SET_USER_INTERFACE, "SET_USER_INTERFACE",
      "UI_METHOD for PIN prompts when the caller gives none", ENGINE_CMD_FLAG_INTERNAL },
    { CMD_SET_CALLBACK_DATA, "SET_CALLBACK_DATA", "Data for the SET_USER_INTERFACE method",
      ENGINE_CMD_FLAG_INTERNAL },
    { CMD_FORCE_LOGIN, "FORCE_LOGIN",
      "Accepted; hsmtls logs in whenever a lookup needs it (private keys, private objects)",
      ENGINE_CMD_FLAG_NO_INPUT },
    { CMD_RE_ENUMERATE, "RE_ENUMERATE",
      "Accepted; every load looks the token up again (objects are cached by the provider)",
      ENGINE_CMD_FLAG_NO_INPUT },
    { CMD_DEBUG_LEVEL, "DEBUG_LEVEL", "Message level 0-7 (syslog levels; 4 warnings, 6 info, 7 debug)",
      ENGINE_CMD_FLAG_NUMERIC },
    { CMD_KEYGEN, "KEYGEN", "Not supported: generate keys with pkcs11-tool --keypairgen",
      ENGINE_CMD_FLAG_INTERNAL },
    { CMD_PROVIDER_PATH, "PROVIDER_PATH",
      "hsmtls provider module to load if openssl.cnf did not (default: $HSMTLS_PROVIDER, then "
      "the build tree's for an engine in it, then the installed one beside this engine, then "
      "the install path)",
      ENGINE_CMD_FLAG_STRING },
    { 0, NULL, NULL, 0 },
};

/* ---- state: one per process, like the provider's core ---- */

#define LEVEL_ERR 3
#define LEVEL_WARNING 4
#define LEVEL_INFO 6
#define LEVEL_DEBUG 7

static struct {
    pthread_mutex_t lock;
    char *module_path;
    char *pin;
    char *provider_path;
    int level;
    int force_login;
    UI_METHOD *ui;
    void *ui_data;
    int ready;                  /* a pkcs11: store of the hsmtls provider is reachable */
} g = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, LEVEL_WARNING, 0, NULL, NULL, 0 };

/* ---- errors: a library of our own, so messages read "hsmtls engine" ---- */

static int err_lib;
#define R_ERROR 100

static ERR_STRING_DATA err_strings[] = {
    { 0, "hsmtls engine" },
    { 0, NULL },
};
static ERR_STRING_DATA reason_strings[] = {
    { 0, "hsmtls engine error" },
    { 0, NULL },
};

static void err_init(void)
{
    if (err_lib)
        return;
    err_lib = ERR_get_next_error_library();
    err_strings[0].error = ERR_PACK(err_lib, 0, 0);
    reason_strings[0].error = ERR_PACK(err_lib, 0, R_ERROR);
    ERR_load_strings(err_lib, err_strings);
    ERR_load_strings(err_lib, reason_strings);
}

__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ERR_new();
    ERR_set_debug(OPENSSL_FILE, OPENSSL_LINE, "hsmtls_engine");
    ERR_set_error(err_lib ? err_lib : ERR_LIB_ENGINE, R_ERROR, "%s", msg);
}

__attribute__((format(printf, 2, 3)))
static void say(int level, const char *fmt, ...)
{
    if (level > g.level)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("hsmtls engine: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void free_pin(void)
{
    if (g.pin) {
        OPENSSL_cleanse(g.pin, strlen(g.pin));
        free(g.pin);
        g.pin = NULL;
    }
}

static int set_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value && *value && !(copy = strdup(value))) {
        fail("out of memory");
        return 0;
    }
    free(*slot);
    *slot = copy;
    return 1;
}

/* ---- the provider ---- */

/* Whether a pkcs11: store of the hsmtls provider is reachable in the default library
 * context (loaded from openssl.cnf, by the application, or by us). */
static int provider_present(void)
{
    ERR_set_mark();
    OSSL_STORE_LOADER *l = OSSL_STORE_LOADER_fetch(NULL, "pkcs11", "provider=" HSMTLS_PROVIDER_NAME);
    ERR_pop_to_mark();
    if (!l)
        return 0;
    OSSL_STORE_LOADER_free(l);
    return 1;
}

/* Loads the provider at `path` into the default library context under the name
 * "hsmtls", so provider=hsmtls queries and openssl.cnf-style ordering (default before
 * hsmtls) hold. OpenSSL 3.0 names a provider after what it was loaded by, and finds a
 * bare name through the process-wide module search path, which it cannot tell us to
 * restore; so the module is opened here and registered under its name instead, leaving
 * that path as the application set it. */
static int load_provider(const char *path)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    OSSL_provider_init_fn *init = dl ? (OSSL_provider_init_fn *)dlsym(dl, "OSSL_provider_init") : NULL;
    if (!init) {
        fail("cannot load the hsmtls provider from %s: %s", path,
             dl ? "no OSSL_provider_init in it (is it hsmtls.so?)" : dlerror());
        if (dl)
            dlclose(dl);
        return 0;
    }
    /* Fallback providers (default) are kept: the fetch in provider_present() already
     * activated them if the application had loaded none, so they come first. Kept for
     * the process, dl included: keys handed out reference it. */
    if (!OSSL_PROVIDER_add_builtin(NULL, HSMTLS_PROVIDER_NAME, init) ||
        !OSSL_PROVIDER_try_load(NULL, HSMTLS_PROVIDER_NAME, 1)) {
        fail("cannot load the hsmtls provider from %s", path);
        return 0;
    }
    say(LEVEL_INFO, "loaded the hsmtls provider from %s", path);
    return 1;
}

static int ensure_provider_locked(void)
{
    if (g.ready)
        return 1;
    if (provider_present()) {
        say(LEVEL_DEBUG, "the hsmtls provider is already loaded");
        g.ready = 1;
        return 1;
    }
    /* PROVIDER_PATH, else the rule libhsmtls follows too (provider/locate.c). */
    const char *path = g.provider_path ? g.provider_path : hsmtls__provider_default_path();
    if (access(path, R_OK) != 0) {
        fail("the hsmtls provider is not loaded and was not found at %s: %s; load it from "
             "openssl.cnf, set HSMTLS_PROVIDER or the PROVIDER_PATH command", path, strerror(errno));
        return 0;
    }
    int ok = load_provider(path);
    if (ok && !provider_present()) {
        fail("the provider loaded from %s offers no pkcs11: store (is it hsmtls.so?)", path);
        ok = 0;
    }
    g.ready = ok;
    return ok;
}

static int ensure_provider(void)
{
    pthread_mutex_lock(&g.lock);
    int ok = ensure_provider_locked();
    pthread_mutex_unlock(&g.lock);
    return ok;
}

/* ---- key ids to URIs ---- */

static int is_hex(const char *s, size_t n)
{
    if (n == 0 || n % 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i]))
            return 0;
    return 1;
}

static int is_decimal(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Growing string. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *text, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *text) { sb_add(b, text, strlen(text)); }

static void sb_encoded(sbuf *b, const unsigned char *bytes, size_t n)
{
    char *enc = hsmtls_p11_uri_encode(bytes, n);
    if (!enc) {
        b->oom = 1;
        return;
    }
    sb_str(b, enc);
    free(enc);
}

static void sb_free(sbuf *b)
{
    if (b->s) {
        OPENSSL_cleanse(b->s, b->cap);
        free(b->s);
    }
    b->s = NULL;
}

/* The id as a percent-encoded CKA_ID ("%01%ab"). */
static void sb_hex_id(sbuf *b, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        char pct[4] = { '%', hex[i], hex[i + 1], '\0' };
        sb_str(b, pct);
    }
}

/* engine_pkcs11's key ids (libp11 parse_slot_id_string) as a URI path, or 0. */
static int legacy_to_uri(const char *id, sbuf *b)
{
    sb_str(b, "pkcs11:");
    const char *rest = id;
    if (strncmp(id, "slot_", 5) == 0) {
        const char *dash = strchr(id + 5, '-');
        if (!dash || !is_decimal(id + 5, (size_t)(dash - id - 5)))
            return 0;
        sb_str(b, "slot-id=");
        sb_add(b, id + 5, (size_t)(dash - id - 5));
        sb_str(b, ";");
        rest = dash + 1;
        if (strncmp(rest, "id_", 3) != 0 && strncmp(rest, "label_", 6) != 0)
            return 0;
    } else if (strncmp(id, "id_", 3) != 0 && strncmp(id, "label_", 6) != 0) {
        /* "HEX" or "SLOT:HEX" */
        const char *colon = strchr(id, ':');
        if (colon) {
            if (!is_decimal(id, (size_t)(colon - id)) || !is_hex(colon + 1, strlen(colon + 1)))
                return 0;
            sb_str(b, "slot-id=");
            sb_add(b, id, (size_t)(colon - id));
            sb_str(b, ";id=");
            sb_hex_id(b, colon + 1, strlen(colon + 1));
            return 1;
        }
        if (!is_hex(id, strlen(id)))
            return 0;
        sb_str(b, "id=");
        sb_hex_id(b, id, strlen(id));
        return 1;
    }
    if (strncmp(rest, "id_", 3) == 0) {
        if (!is_hex(rest + 3, strlen(rest + 3)))
            return 0;
        sb_str(b, "id=");
        sb_hex_id(b, rest + 3, strlen(rest + 3));
        return 1;
    }
    /* label_NAME */
    if (!rest[6])
        return 0;
    sb_str(b, "object=");
    sb_encoded(b, (const unsigned char *)rest + 6, strlen(rest + 6));
    return 1;
}

/* The URI to open for `key_id`, with the engine's MODULE_PATH and PIN added where the
 * URI has none; malloc'd (sb_free-style cleanse by the caller: it may hold the PIN).
 * *parsed gets the parsed final URI (for its masked text). */
static char *make_uri(const char *key_id, hsmtls_p11_uri **parsed)
{
    sbuf b = { 0 };
    *parsed = NULL;
    if (!key_id || !*key_id) {
        fail("no key id: give a pkcs11: URI (or id_HEX, label_NAME, slot_N-id_HEX, slot_N-label_NAME)");
        return NULL;
    }
    if (strncmp(key_id, "pkcs11:", 7) == 0) {
        sb_str(&b, key_id);
    } else if (!legacy_to_uri(key_id, &b)) {
        sb_free(&b);
        fail("\"%s\" is neither a pkcs11: URI nor an engine_pkcs11 key id "
             "(id_HEX, label_NAME, slot_N-id_HEX, slot_N-label_NAME, N:HEX, HEX)", key_id);
        return NULL;
    }
    if (b.oom) {
        sb_free(&b);
        fail("out of memory");
        return NULL;
    }
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(b.s);
    if (!uri) {
        fail("%s", hsmtls_p11_error_message()); /* quotes the URI, pin-value masked */
        sb_free(&b);
        return NULL;
    }
    pthread_mutex_lock(&g.lock);
    int sep = strchr(b.s, '?') != NULL;
    if (g.module_path && !hsmtls_p11_uri_module_path(uri) && !hsmtls_p11_uri_module_name(uri)) {
        sb_str(&b, sep ? "&module-path=" : "?module-path=");
        sb_encoded(&b, (const unsigned char *)g.module_path, strlen(g.module_path));
        sep = 1;
    }
    if (g.pin && !hsmtls_p11_uri_pin_value(uri) && !hsmtls_p11_uri_pin_source(uri)) {
        sb_str(&b, sep ? "&pin-value=" : "?pin-value=");
        sb_encoded(&b, (const unsigned char *)g.pin, strlen(g.pin));
    }
    pthread_mutex_unlock(&g.lock);
    hsmtls_p11_uri_free(uri);
    if (b.oom || !(*parsed = hsmtls_p11_uri_parse(b.s))) {
        fail("%s", b.oom ? "out of memory" : hsmtls_p11_error_message());
        sb_free(&b);
        return NULL;
    }
    /* Hand the buffer over; the caller cleanses it. */
    return b.s;
}

static void free_uri_text(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static const char *expect_name(int expect)
{
    switch (expect) {
    case OSSL_STORE_INFO_PKEY:
        return "private key";
    case OSSL_STORE_INFO_PUBKEY:
        return "public key";
    case OSSL_STORE_INFO_CERT:
        return "certificate";
    default:
        return "object";
    }
}

/* Opens `key_id` through the provider's store and returns the first object of the
 * kind expected (an EVP_PKEY or an X509), or NULL with an error. */
static void *load_object(const char *key_id, int expect, UI_METHOD *ui, void *ui_data)
{
    if (!ensure_provider())
        return NULL;
    hsmtls_p11_uri *parsed;
    char *text = make_uri(key_id, &parsed);
    if (!text)
        return NULL;
    if (!ui) {
        pthread_mutex_lock(&g.lock);
        ui = g.ui;
        ui_data = g.ui_data;
        pthread_mutex_unlock(&g.lock);
    }
    say(LEVEL_INFO, "loading %s %s", expect_name(expect), hsmtls_p11_uri_masked(parsed));

    void *found = NULL;
    OSSL_STORE_CTX *store = OSSL_STORE_open_ex(text, NULL, NULL, ui, ui_data, NULL, NULL, NULL);
    if (store && OSSL_STORE_expect(store, expect)) {
        while (!found && !OSSL_STORE_eof(store)) {
            OSSL_STORE_INFO *info = OSSL_STORE_load(store);
            if (!info) {
                if (OSSL_STORE_error(store))
                    break;
                continue;
            }
            int type = OSSL_STORE_INFO_get_type(info);
            if (type == expect && expect == OSSL_STORE_INFO_PKEY)
                found = OSSL_STORE_INFO_get1_PKEY(info);
            else if (type == expect && expect == OSSL_STORE_INFO_PUBKEY)
                found = OSSL_STORE_INFO_get1_PUBKEY(info);
            else if (type == expect && expect == OSSL_STORE_INFO_CERT)
                found = OSSL_STORE_INFO_get1_CERT(info);
            OSSL_STORE_INFO_free(info);
        }
    }
    if (store)
        OSSL_STORE_close(store);
    if (!found)
        fail("no %s loaded from %s", expect_name(expect), hsmtls_p11_uri_masked(parsed));
    else
        say(LEVEL_DEBUG, "loaded %s %s", expect_name(expect), hsmtls_p11_uri_masked(parsed));
    hsmtls_p11_uri_free(parsed);
    free_uri_text(text);
    return found;
}

static EVP_PKEY *load_privkey(ENGINE *e, const char *key_id, UI_METHOD *ui, void *cb_data)
{
    return load_object(key_id, OSSL_STORE_INFO_PKEY, ui, cb_data);
}

static EVP_PKEY *load_pubkey(ENGINE *e, const char *key_id, UI_METHOD *ui, void *cb_data)
{
    return load_object(key_id, OSSL_STORE_INFO_PUBKEY, ui, cb_data);
}

/* ---- control commands ---- */

static const ENGINE_CMD_DEFN *defn_by_num(long num)
{
    for (const ENGINE_CMD_DEFN *d = cmd_defns; d->cmd_name; d++)
        if ((long)d->cmd_num == num)
            return d;
    return NULL;
}

static void list_commands(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const ENGINE_CMD_DEFN *d = cmd_defns; d->cmd_name; d++) {
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", d->cmd_name);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* What libcrypto's own helper does for engines without ENGINE_FLAGS_MANUAL_CMD_CTRL,
 * done here so an unknown command name gets a message that names it. */
static int cmd_query(int cmd, long i, void *p)
{
    const ENGINE_CMD_DEFN *d;
    switch (cmd) {
    case ENGINE_CTRL_GET_FIRST_CMD_TYPE:
        return cmd_defns[0].cmd_num;
    case ENGINE_CTRL_GET_NEXT_CMD_TYPE:
        if (!(d = defn_by_num(i)))
            break;
        return d[1].cmd_name ? (int)d[1].cmd_num : 0;
    case ENGINE_CTRL_GET_CMD_FROM_NAME:
        for (d = cmd_defns; p && d->cmd_name; d++)
            if (strcmp(d->cmd_name, p) == 0)
                return (int)d->cmd_num;
        {
            char known[512];
            list_commands(known, sizeof known);
            fail("unknown control command \"%s\" (the hsmtls engine knows %s)",
                 p ? (const char *)p : "(null)", known);
        }
        return -1;
    case ENGINE_CTRL_GET_NAME_LEN_FROM_CMD:
        if (!(d = defn_by_num(i)))
            break;
        return (int)strlen(d->cmd_name);
    case ENGINE_CTRL_GET_NAME_FROM_CMD:
        if (!(d = defn_by_num(i)) || !p)
            break;
        strcpy(p, d->cmd_name);
        return (int)strlen(d->cmd_name);
    case ENGINE_CTRL_GET_DESC_LEN_FROM_CMD:
        if (!(d = defn_by_num(i)))
            break;
        return d->cmd_desc ? (int)strlen(d->cmd_desc) : 0;
    case ENGINE_CTRL_GET_DESC_FROM_CMD:
        if (!(d = defn_by_num(i)) || !p)
            break;
        strcpy(p, d->cmd_desc ? d->cmd_desc : "");
        return d->cmd_desc ? (int)strlen(d->cmd_desc) : 0;
    case ENGINE_CTRL_GET_CMD_FLAGS:
        if (!(d = defn_by_num(i)))
            break;
        return (int)d->cmd_flags;
    default:
        break;
    }
    fail("unknown control command number %ld", i);
    return -1;
}

/* libp11's LOAD_CERT_CTRL argument. */
struct load_cert_params {
    const char *s_slot_cert_id;
    X509 *cert;
};

static int engine_ctrl(ENGINE *e, int cmd, long i, void *p, void (*f)(void))
{
    int ok = 1;
    switch (cmd) {
    case ENGINE_CTRL_GET_FIRST_CMD_TYPE:
    case ENGINE_CTRL_GET_NEXT_CMD_TYPE:
    case ENGINE_CTRL_GET_CMD_FROM_NAME:
    case ENGINE_CTRL_GET_NAME_LEN_FROM_CMD:
    case ENGINE_CTRL_GET_NAME_FROM_CMD:
    case ENGINE_CTRL_GET_DESC_LEN_FROM_CMD:
    case ENGINE_CTRL_GET_DESC_FROM_CMD:
    case ENGINE_CTRL_GET_CMD_FLAGS:
        return cmd_query(cmd, i, p);
    case ENGINE_CTRL_SET_LOGSTREAM:
    case ENGINE_CTRL_SET_PASSWORD_CALLBACK:
        return 1;
    case CMD_LOAD_CERT_CTRL: {
        struct load_cert_params *lc = p;
        if (!lc || !lc->s_slot_cert_id) {
            fail("LOAD_CERT_CTRL needs { const char *s_slot_cert_id; X509 *cert; } with an id");
            return 0;
        }
        lc->cert = load_object(lc->s_slot_cert_id, OSSL_STORE_INFO_CERT, NULL, NULL);
        return lc->cert != NULL;
    }
    case CMD_KEYGEN:
        fail("KEYGEN is not supported by the hsmtls engine: generate key pairs on the token "
             "with pkcs11-tool --keypairgen (or softhsm2-util --import), then load them by URI");
        return 0;
    default:
        break;
    }

    pthread_mutex_lock(&g.lock);
    switch (cmd) {
    case CMD_SO_PATH:
    case CMD_MODULE_PATH:
        ok = set_string(&g.module_path, p);
        if (ok)
            say(LEVEL_INFO, "PKCS#11 module %s", g.module_path ? g.module_path : "(default)");
        break;
    case CMD_PIN:
        free_pin();
        if (p && *(const char *)p && !(g.pin = strdup(p))) {
            fail("out of memory");
            ok = 0;
        }
        break;
    case CMD_VERBOSE:
        if (g.level < LEVEL_INFO)
            g.level = LEVEL_INFO;
        else if (g.level < LEVEL_DEBUG)
            g.level++;
        break;
    case CMD_QUIET:
        g.level = LEVEL_ERR;
        break;
    case CMD_DEBUG_LEVEL:
        g.level = i < 0 ? 0 : i > LEVEL_DEBUG ? LEVEL_DEBUG : (int)i;
        break;
    case CMD_INIT_ARGS:
        if (p && *(const char *)p)
            say(LEVEL_WARNING, "INIT_ARGS ignored: hsmtls initialises PKCS#11 modules itself "
                "(C_Initialize with OS locking, no reserved arguments; SoftHSM2 takes none)");
        break;
    case CMD_SET_USER_INTERFACE:
        g.ui = p;
        break;
    case CMD_SET_CALLBACK_DATA:
        g.ui_data = p;
        break;
    case CMD_FORCE_LOGIN:
        g.force_login = 1;
        break;
    case CMD_RE_ENUMERATE:
        break;
    case CMD_PROVIDER_PATH:
        if (g.ready) {
            say(LEVEL_WARNING, "PROVIDER_PATH ignored: the hsmtls provider is already in use");
            break;
        }
        ok = set_string(&g.provider_path, p);
        break;
    default: {
        const ENGINE_CMD_DEFN *d = defn_by_num(cmd);
        if (d)
            fail("control command %s is not handled by the hsmtls engine", d->cmd_name);
        else
            fail("unknown control command number %d for the hsmtls engine", cmd);
        ok = 0;
        break;
    }
    }
    pthread_mutex_unlock(&g.lock);
    return ok;
}

/* ---- life cycle ---- */

static int engine_init(ENGINE *e)
{
    return ensure_provider();
}

static int engine_finish(ENGINE *e)
{
    return 1; /* the provider stays: keys handed out still use it */
}

static int engine_destroy(ENGINE *e)
{
    pthread_mutex_lock(&g.lock);
    free_pin();
    free(g.module_path);
    g.module_path = NULL;
    free(g.provider_path);
    g.provider_path = NULL;
    g.ui = NULL;
    g.ui_data = NULL;
    pthread_mutex_unlock(&g.lock);
    return 1;
}

static int bind_helper(ENGINE *e)
{
    err_init();
    if (!ENGINE_set_id(e, engine_id) || !ENGINE_set_name(e, engine_name) ||
        !ENGINE_set_init_function(e, engine_init) ||
        !ENGINE_set_finish_function(e, engine_finish) ||
        !ENGINE_set_destroy_function(e, engine_destroy) ||
        !ENGINE_set_ctrl_function(e, engine_ctrl) || !ENGINE_set_cmd_defns(e, cmd_defns) ||
        !ENGINE_set_load_privkey_function(e, load_privkey) ||
        !ENGINE_set_load_pubkey_function(e, load_pubkey) ||
        !ENGINE_set_flags(e, ENGINE_FLAGS_MANUAL_CMD_CTRL | ENGINE_FLAGS_NO_REGISTER_ALL))
        return 0;
    return 1;
}

static int bind_fn(ENGINE *e, const char *id)
{
    /* ENGINE_by_id("/path/to/hsmtls.so") (`openssl ... -engine PATH`) binds with the
     * path as the id: the file is this engine, so that is accepted too. */
    if (id && strcmp(id, engine_id) != 0 && !strchr(id, '/')) {
        err_init();
        fail("this is the \"%s\" engine, not \"%s\"", engine_id, id);
        return 0;
    }
    return bind_helper(e);
}

/* Only the two dynamic-engine entry points are exported (see CMakeLists.txt). */
#undef OPENSSL_EXPORT
#define OPENSSL_EXPORT extern __attribute__((visibility("default")))
IMPLEMENT_DYNAMIC_CHECK_FN()
IMPLEMENT_DYNAMIC_BIND_FN(bind_fn)
