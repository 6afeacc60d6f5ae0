/* Before the demo loads a token key it looks for the token the URI names through the
 * PKCS#11 core (no login): a missing card is then explained in plain words (which token,
 * which ones are there, what to do) instead of surfacing as a key that failed to load.
 * The provider that then loads the key shares this process's one core, so the module is
 * initialised once and the token found here is the one that signs. */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hsmtls/p11_error.h"
#include "hsmtls/p11_module.h"
#include "hsmtls/p11_token.h"
#include "hsmtls/p11_uri.h"

static const char next_steps[] =
    "  next: plug in the card (or reach the HSM) and check it with `hsmtls tokens`; set\n"
    "        HSMTLS_PKCS11_MODULE (or --module) to its PKCS#11 module (OpenSC smartcards:\n"
    "        /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so); or run `hsmtls demo` without\n"
    "        arguments for the SoftHSM2 sandbox.\n";

/* The token= value of a URI's path, percent-decoded, into out ("" when none). */
static void uri_token_label(const char *ref, char *out, size_t size)
{
    out[0] = '\0';
    size_t path_len = strcspn(ref, "?");
    const char *p = ref + 7; /* after "pkcs11:" */
    while (p < ref + path_len) {
        size_t len = strcspn(p, ";?");
        if (len > 6 && strncmp(p, "token=", 6) == 0) {
            char *raw = strndup(p + 6, len - 6);
            size_t n = 0;
            unsigned char *label = raw ? hsmtls_p11_uri_decode(raw, &n) : NULL;
            if (label)
                snprintf(out, size, "%.*s", (int)n, (const char *)label);
            free(label);
            free(raw);
            return;
        }
        p += len + (p[len] == ';');
    }
}

static int is_token_ref(const char *ref)
{
    return strncasecmp(ref, "pkcs11:", 7) == 0;
}

/* Every initialised token in the modules a URI-less lookup reaches, or the modules
 * themselves when they hold none. */
static void print_present(void)
{
    hsmtls_p11_token **tokens = NULL;
    size_t n = 0, shown = 0;
    if (hsmtls_p11_tokens_list(NULL, NULL, &tokens, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!(hsmtls_p11_token_info(tokens[i])->flags & CKF_TOKEN_INITIALIZED))
                continue;
            fprintf(stderr, "%s\"%s\" (%s)", shown++ ? ", " : "  tokens present: ", hsmtls_p11_token_label(tokens[i]),
                   hsmtls_p11_module_name(hsmtls_p11_token_module(tokens[i])));
        }
        if (shown)
            fprintf(stderr, "\n");
    }
    free(tokens);
    if (shown)
        return;
    hsmtls_p11_module **mods = NULL;
    size_t nmods = 0;
    if (hsmtls_p11_modules_resolve(NULL, NULL, &mods, &nmods) == 0 && nmods > 0) {
        fprintf(stderr, "  no token is present in ");
        for (size_t i = 0; i < nmods; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", hsmtls_p11_module_path(mods[i]));
        fprintf(stderr, "\n");
    } else {
        fprintf(stderr, "  no PKCS#11 module is configured, so no token is present\n");
    }
    free(mods);
}

int demo_find_token(struct demo_ref *r)
{
    r->token[0] = '\0';
    snprintf(r->shown, sizeof r->shown, "%s", r->ref);
    if (!is_token_ref(r->ref))
        return 0;
    hsmtls_p11_uri *uri = hsmtls_p11_uri_parse(r->ref);
    if (uri)
        snprintf(r->shown, sizeof r->shown, "%s", hsmtls_p11_uri_masked(uri));
    else {
        snprintf(r->shown, sizeof r->shown, "(a pkcs11: URI)");
        fprintf(stderr, "hsmtls demo: the %s: %s\n", r->what, hsmtls_p11_error_message());
        return -1;
    }
    hsmtls_p11_lookup quiet = { .login = HSMTLS_P11_LOGIN_NEVER };
    hsmtls_p11_token **tokens = NULL;
    size_t n = 0;
    int rc = hsmtls_p11_tokens_list(uri, &quiet, &tokens, &n);
    if (rc == 0 && n == 0) {
        /* Once more after a pause, as the core's own lookups do: SoftHSM2 skips a token
         * whose files another process is rewriting at that moment. */
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
        free(tokens);
        rc = hsmtls_p11_tokens_list(uri, &quiet, &tokens, &n);
    }
    char wanted[128];
    uri_token_label(r->ref, wanted, sizeof wanted);
    if (rc < 0) {
        fprintf(stderr, "hsmtls demo: no token can be reached for the %s %s: %s\n", r->what, hsmtls_p11_uri_masked(uri),
               hsmtls_p11_error_message());
        fputs(next_steps, stderr);
    } else if (n == 0) {
        if (wanted[0])
            fprintf(stderr, "hsmtls demo: token \"%s\" is not present (looked for it for the %s %s)\n", wanted, r->what,
                   hsmtls_p11_uri_masked(uri));
        else
            fprintf(stderr, "hsmtls demo: no token matches the %s %s\n", r->what, hsmtls_p11_uri_masked(uri));
        print_present();
        fputs(next_steps, stderr);
    } else {
        snprintf(r->token, sizeof r->token, "%s", hsmtls_p11_token_label(tokens[0]));
    }
    free(tokens);
    hsmtls_p11_uri_free(uri);
    return r->token[0] || !is_token_ref(r->ref) ? 0 : -1;
}

void demo_explain_load_error(const struct demo_ref *r, const char *message, const char *pin_source)
{
    static const char *const pin_errors[] = { "CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE",
                                              "CKR_PIN_LOCKED", "CKR_PIN_EXPIRED" };
    for (size_t i = 0; i < sizeof pin_errors / sizeof pin_errors[0]; i++) {
        if (!strstr(message, pin_errors[i]))
            continue;
        /* One line, never the PIN: the core offers a rejected PIN only once, and so do we. */
        if (i == 3)
            fprintf(stderr, "hsmtls demo: the PIN of token \"%s\" is locked (CKR_PIN_LOCKED): unblock it with the "
                   "token's SO PIN or tools before trying again\n", r->token);
        else
            fprintf(stderr, "hsmtls demo: token \"%s\" rejected the PIN%s%s (%s); it was not tried again, since a "
                   "token locks after a few wrong PINs\n", r->token, pin_source ? " from " : "",
                   pin_source ? pin_source : "", pin_errors[i]);
        return;
    }
    if (strstr(message, "no PIN given")) {
        fprintf(stderr, "hsmtls demo: no PIN for token \"%s\" (the %s): give --pin-source FILE, or run the demo "
                        "on a terminal to be asked once\n", r->token, r->what);
        return;
    }
    static const char *const missing[] = { "no private key matches", "no certificate matches",
                                           "no public key matches", "no object matches" };
    const char *why = NULL;
    for (size_t i = 0; i < sizeof missing / sizeof missing[0] && !why; i++)
        why = strstr(message, missing[i]);
    if (r->token[0] && why) {
        /* The core's own words from there on: what was sought, what the token has. */
        const char *end = strrchr(why, ')');
        fprintf(stderr, "hsmtls demo: the %s %s is not on token \"%s\"\n", r->what, r->shown, r->token);
        fprintf(stderr, "  why: %.*s\n", (int)(end ? (size_t)(end - why) : strlen(why)), why);
        fprintf(stderr, "  next: see what the token holds: hsmtls objects --login 'pkcs11:token=%s'\n", r->token);
        return;
    }
    fprintf(stderr, "hsmtls demo: the %s %s: %s\n", r->what, r->shown, message);
}
