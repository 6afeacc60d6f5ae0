/* Where the library looks for the hsmtls provider when the application names none.
 *
 * $HSMTLS_PROVIDER wins. Otherwise the build tree's provider serves only code that runs
 * from the build tree (tests, build/bin/hsmtls), and everything else gets the path the
 * provider is installed at, compiled in by CMake: an installed libhsmtls must load the
 * installed provider even while the build directory it came from still exists.
 * "Runs from" means the file holding this code: libhsmtls.so, or the executable that
 * linked libhsmtls.a. */
#define _GNU_SOURCE /* dladdr1, RTLD_DL_LINKMAP */
#include "lib_internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef HSMTLS_PROVIDER_INSTALL_PATH
#define HSMTLS_PROVIDER_INSTALL_PATH "hsmtls.so"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *compiled_path = HSMTLS_PROVIDER_INSTALL_PATH;

#if defined(HSMTLS_PROVIDER_BUILD_PATH) && defined(HSMTLS_BUILD_DIR)
/* The real path of the shared object or executable that holds this function. */
static int own_file(char out[PATH_MAX])
{
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1((void *)&own_file, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
        return 0;
    /* The main program's link map has an empty name. */
    const char *name = map->l_name[0] ? map->l_name : "/proc/self/exe";
    return realpath(name, out) != NULL;
}

static int under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static void choose(void)
{
    char self[PATH_MAX], build[PATH_MAX];
    struct stat st;
    if (own_file(self) && realpath(HSMTLS_BUILD_DIR, build) && under(self, build)
        && stat(HSMTLS_PROVIDER_BUILD_PATH, &st) == 0 && S_ISREG(st.st_mode))
        compiled_path = HSMTLS_PROVIDER_BUILD_PATH;
}
#else
static void choose(void) {}
#endif

const char *hsmtls__provider_default_path(void)
{
    const char *env = getenv("HSMTLS_PROVIDER");
    if (env && *env)
        return env;
    pthread_once(&once, choose);
    return compiled_path;
}
