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
