/* A tiny check harness for the C test programs: every failed check prints where it
 * failed, and the program ends with "N passed, M failed" and a non-zero exit. */
#ifndef HSMTLS_TEST_CHECK_H
#define HSMTLS_TEST_CHECK_H

extern int check_passed, check_failed;
void check_report(int ok, const char *file, int line, const char *expr, const char *detail);
int check_finish(void);

#define CHECK(expr) check_report(!!(expr), __FILE__, __LINE__, #expr, NULL)
#define CHECK_MSG(expr, detail) check_report(!!(expr), __FILE__, __LINE__, #expr, (detail))

#endif
