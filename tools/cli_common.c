/* Options, PIN prompting and error printing shared by the verbs. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <termios.h>
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
            fprintf(stderr, "hsmtls: unknown or incomplete option %s\nusage: %s\n", a, usage);
            return -1;
        } else {
            break;
        }
    }
    return i;
}

/* The PIN is read without echo from the terminal, or as one line from a pipe. */
static int prompt_pin(const hsmtls_p11_pin_request *req, char *pin, size_t size, void *arg)
{
    (void)arg;
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%sPIN for token \"%s\": ", req->retry ? "(the last PIN was rejected) " : "",
                req->token_label);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    char *line = fgets(pin, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fputc('\n', stderr);
    }
    if (!line)
        return -1;
    pin[strcspn(pin, "\r\n")] = '\0';
    return (int)strlen(pin);
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

int cli_fail(const char *what)
{
    fprintf(stderr, "hsmtls: %s: %s\n", what, hsmtls_p11_error_message());
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
