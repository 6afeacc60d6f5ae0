#include "check.h"

#include <stdio.h>

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
