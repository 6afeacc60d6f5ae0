/* A tiny check harness for the C test programs: every failed check prints where it
 * failed, and the program ends with "N passed, M failed" and a non-zero exit. */
#ifndef HSMTLS_TEST_CHECK_H
#define HSMTLS_TEST_CHECK_H

#include <stddef.h>

extern int check_passed, check_failed;
void check_report(int ok, const char *file, int line, const char *expr, const char *detail);
int check_finish(void);

/* The sandbox directory the program was given, and paths inside it (each call returns
 * one of four rotating buffers, so a few can be used in one expression). */
void check_set_dir(const char *dir);
const char *check_path(const char *relative);
/* strstr that takes NULL for "no". */
int check_contains(const char *haystack, const char *needle);

/* A program's cases: a table of {name, function}. `PROGRAM --list` prints the names,
 * one a line (pytest parametrizes over them, tests/conftest.py c_cases), and a name not
 * in the table fails loudly. */
typedef struct check_case {
    const char *name;
    void (*run)(void);
} check_case;
#define CHECK_NCASES(table) (sizeof(table) / sizeof((table)[0]))
/* 1 when argv is `PROGRAM --list` (the names are printed), else 0. */
int check_list(int argc, char **argv, const check_case *cases, size_t n);
/* The case called `name`; NULL when there is none, after saying so on stderr with the
 * names there are. */
const check_case *check_find(const char *program, const char *name, const check_case *cases, size_t n);
/* Runs the case; its exit status: check_finish()'s, or 1 when it made no check at all. */
int check_run(const check_case *c);
/* The start every test program shares, for `PROGRAM SANDBOX_DIR CASE [EXTRA...]`:
 * `PROGRAM --list` prints the cases (returns 0: exit 0); a short command line or an
 * unknown case is said on stderr (returns -1: exit 2); else the sandbox directory is set
 * (check_set_dir) and *c is the case (returns 1). `extra` names the arguments after CASE
 * in the usage line ("" when none), of which at least `min_extra` are needed. */
int check_start(int argc, char **argv, const check_case *cases, size_t n, const char *extra,
                int min_extra, const check_case **c);

#define CHECK(expr) check_report(!!(expr), __FILE__, __LINE__, #expr, NULL)
#define CHECK_MSG(expr, detail) check_report(!!(expr), __FILE__, __LINE__, #expr, (detail))

#endif
