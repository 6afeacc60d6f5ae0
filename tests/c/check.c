#include "check.h"

#include <stdio.h>
#include <string.h>

int check_passed, check_failed;

void check_report(int ok, const char *file, int line, const char *expr, const char *detail)
{
    if (ok) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "FAIL %s:%d: %s%s%s\n", file, line, expr, detail ? ": " : "", detail ? detail : "");
}

int check_finish(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

static char check_dir[1024];

void check_set_dir(const char *dir)
{
    snprintf(check_dir, sizeof check_dir, "%s", dir);
}

const char *check_path(const char *relative)
{
    static char buf[4][1200];
    static int n;
    n = (n + 1) % 4;
    snprintf(buf[n], sizeof buf[n], "%s/%s", check_dir, relative);
    return buf[n];
}

int check_contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

int check_list(int argc, char **argv, const check_case *cases, size_t n)
{
    if (argc != 2 || strcmp(argv[1], "--list") != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        printf("%s\n", cases[i].name);
    return 1;
}

const check_case *check_find(const char *program, const char *name, const check_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, cases[i].name) == 0)
            return &cases[i];
    fprintf(stderr, "%s: no case \"%s\"; the cases are:", program, name);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", cases[i].name);
    fprintf(stderr, "\n");
    return NULL;
}

int check_run(const check_case *c)
{
    c->run();
    if (check_passed + check_failed == 0) {
        fprintf(stderr, "FAIL case \"%s\" made no check\n", c->name);
        check_failed++;
    }
    return check_finish();
}

int check_start(int argc, char **argv, const check_case *cases, size_t n, const char *extra,
                int min_extra, const check_case **c)
{
    if (check_list(argc, argv, cases, n))
        return 0;
    if (argc >= 3 && !(*c = check_find(argv[0], argv[2], cases, n)))
        return -1;
    if (argc < 3 + min_extra) {
        fprintf(stderr, "usage: %s SANDBOX_DIR CASE%s%s | %s --list\n", argv[0], *extra ? " " : "",
                extra, argv[0]);
        return -1;
    }
    check_set_dir(argv[1]);
    return 1;
}
