/* What every verb shares: the common options, strict numbers, PIN prompting, error
 * printing. The TLS and DTLS verbs' own shared parts are in cli_tls.c. */
#include "cli.h"
#include "hsmtls/p11_uri.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

int cli_parse_common(int argc, char **argv, struct cli_options *opt, const char *usage)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--module") == 0 && i + 1 < argc)
            opt->module = argv[++i];
        else if (strcmp(a, "--pin-source") == 0 && i + 1 < argc)
            opt->pin_source = argv[++i];
        else if (strcmp(a, "--login") == 0)
            opt->login = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: %s\n", usage);
            return -2;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hsmtls: unknown or incomplete option %s\nusage: %s\n", cli_q(a), usage);
            return -1;
        } else {
            break;
        }
    }
    return i;
}

int cli_parse_count(const char *verb, const char *opt, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < min || v > max) {
        if (max == LONG_MAX)
            fprintf(stderr, "hsmtls %s: %s \"%s\": expected a whole number, %ld or more\n", verb, opt, cli_q(text), min);
        else
            fprintf(stderr, "hsmtls %s: %s \"%s\": expected a whole number from %ld to %ld\n", verb, opt, cli_q(text),
                    min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *verb, const char *opt, const char *text, int zero_ok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* the cap keeps a wait in milliseconds within an int (poll's) */
    if (end == text || *end || errno == ERANGE || !isfinite(v) || v < 0 || (v == 0 && !zero_ok) ||
        v > CLI_MAX_SECONDS) {
        fprintf(stderr, "hsmtls %s: %s \"%s\": expected seconds, %s and at most %d\n", verb, opt, cli_q(text),
                zero_ok ? "0 or more" : "more than 0", CLI_MAX_SECONDS);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_read_hidden(const char *prompt, char *buf, size_t size)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fputs(prompt, stderr);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    char *line = fgets(buf, size > INT_MAX ? INT_MAX : (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fputc('\n', stderr);
    }
    if (!line)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return (int)strlen(buf);
}

/* The PIN is read without echo from the terminal, or as one line from a pipe. */
static int prompt_pin(const hsmtls_p11_pin_request *req, char *pin, size_t size, void *arg)
{
    (void)arg;
    char prompt[256];
    snprintf(prompt, sizeof prompt, "%sPIN for token \"%s\": ", req->retry ? "(the last PIN was rejected) " : "",
             cli_q(req->token_label));
    return cli_read_hidden(prompt, pin, size);
}

hsmtls_p11_lookup cli_lookup(const struct cli_options *opt)
{
    hsmtls_p11_lookup l = {
        .module_path = opt->module,
        .pin_source = opt->pin_source,
        .pin_cb = opt->login ? prompt_pin : NULL,
        .login = opt->login ? HSMTLS_P11_LOGIN_ALWAYS : HSMTLS_P11_LOGIN_AUTO,
    };
    return l;
}

const char *cli_q(const char *text)
{
    static char *kept[8];
    static unsigned next;
    char *masked = hsmtls_p11_mask_text(text ? text : "(null)");
    if (!masked)
        return "(out of memory)";
    unsigned i = next++ % 8;
    free(kept[i]);
    kept[i] = masked;
    return masked;
}

int cli_fail(const char *what)
{
    fprintf(stderr, "hsmtls: %s: %s\n", what, cli_q(hsmtls_p11_error_message()));
    return CLI_FAILED;
}

const char *cli_hex(const unsigned char *p, size_t len)
{
    static char buf[2 * 64 + 4];
    size_t i = 0;
    for (; i < len && i < 64; i++)
        snprintf(buf + 2 * i, 3, "%02x", p[i]);
    buf[2 * i] = '\0';
    if (len > 64)
        strcat(buf, "...");
    return buf;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
