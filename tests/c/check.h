/* A tiny check harness for the C test programs: every failed check prints where it
 * failed, and the program ends with "N passed, M failed" and a non-zero exit. */
#ifndef HSMTLS_TEST_CHECK_H
#define HSMTLS_TEST_CHECK_H

extern int check_passed, check_failed;
void check_report(int ok, const char *file, int line, const char *expr, const char *detail);
int check_finish(void);

/* The sandbox directory the program was given, and paths inside it (each call returns
 * one of four rotating buffers, so a few can be used in one expression). */
void check_set_dir(const char *dir);
const char *check_path(const char *relative);
/* strstr that takes NULL for "no". */
int check_contains(const char *haystack, const char *needle);

#define CHECK(expr) check_report(!!(expr), __FILE__, __LINE__, #expr, NULL)
#define CHECK_MSG(expr, detail) check_report(!!(expr), __FILE__, __LINE__, #expr, (detail))

#endif
