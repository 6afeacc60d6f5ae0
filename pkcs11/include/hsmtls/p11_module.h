/* PKCS#11 modules: loaded by path, found in p11-kit's registry, or named by
 * HSMTLS_PKCS11_MODULE; and the one wrapper every PKCS#11 call goes through, which
 * counts calls per function and traces them when HSMTLS_DEBUG is set. */
#ifndef HSMTLS_P11_MODULE_H
#define HSMTLS_P11_MODULE_H

#include <stddef.h>
#include <stdio.h>
#include <p11-kit/pkcs11.h>
#include "hsmtls/p11_uri.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_p11_module hsmtls_p11_module;

/* The modules a URI should be searched in, most specific first:
 *   HSMTLS_PKCS11_MODULE from the environment (overrides everything);
 *   the URI's module-path; `configured_path` (a program's or provider's setting);
 *   the URI's module-name looked up in p11-kit's registry;
 *   every module in p11-kit's registry; the build's default module.
 * `*out` is malloc'd (free() it), the modules are shared. -1 with a message when a
 * named module cannot be loaded or found. `uri` may be NULL. */
int hsmtls_p11_modules_resolve(const hsmtls_p11_uri *uri, const char *configured_path,
                               hsmtls_p11_module ***out, size_t *n);

const char *hsmtls_p11_module_path(const hsmtls_p11_module *m);
/* The p11-kit registry name where the module came from there, else the file's base name. */
const char *hsmtls_p11_module_name(const hsmtls_p11_module *m);
const CK_INFO *hsmtls_p11_module_info(const hsmtls_p11_module *m);

/* Connections the core uses to the module: 1, or more for a module whose connection
 * serves one call at a time (p11-kit's client: 4; HSMTLS_P11_LANES=N sets it for any
 * module, 1 turns it off). Threads are spread over them, each keeping its own; the
 * first thread to sign keeps the module's own, and the others are opened when a second
 * thread signs. */
size_t hsmtls_p11_module_lanes(hsmtls_p11_module *m);

/* Call accounting, process-wide. `fn` is a PKCS#11 function name ("C_Sign"). */
unsigned long hsmtls_p11_calls(const char *fn);
unsigned long hsmtls_p11_calls_total(void);
void hsmtls_p11_calls_reset(void);
/* Prints "C_Sign 12" lines for every function called since the last reset. */
void hsmtls_p11_calls_print(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
