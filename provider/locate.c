/* Where libhsmtls and the engine look for the hsmtls provider when nothing names one:
 * one rule, compiled into both (provider/CMakeLists.txt, hsmtls_provider_locate()).
 *
 *   1. $HSMTLS_PROVIDER;
 *   2. the build tree's provider, for code that runs from the build tree (tests,
 *      build/bin/hsmtls): an installed libhsmtls must load the installed provider even
 *      while the build directory it came from still exists;
 *   3. the installed provider found from where this code is installed (the relative path
 *      between the two install directories), so a staged (DESTDIR) or moved install uses
 *      its own provider;
 *   4. the absolute path `cmake --install` puts it at.
 * "Runs from" and "installed at" mean the file holding this code: libhsmtls.so, the
 * engine's module, or the executable that linked libhsmtls.a. */
#define _GNU_SOURCE /* dladdr1, RTLD_DL_LINKMAP */
#include "hsmtls_provider.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef HSMTLS_PROVIDER_INSTALL_PATH
#define HSMTLS_PROVIDER_INSTALL_PATH "hsmtls.so"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *compiled_path = HSMTLS_PROVIDER_INSTALL_PATH;

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

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char relative_path[PATH_MAX];

static void choose(void)
{
    char self[PATH_MAX];
    if (!own_file(self))
        return;
#if defined(HSMTLS_PROVIDER_BUILD_PATH) && defined(HSMTLS_BUILD_DIR)
    char build[PATH_MAX];
    if (realpath(HSMTLS_BUILD_DIR, build) && under(self, build)) {
        if (is_file(HSMTLS_PROVIDER_BUILD_PATH))
            compiled_path = HSMTLS_PROVIDER_BUILD_PATH;
        return;
    }
#endif
#ifdef HSMTLS_PROVIDER_RELATIVE
    char *slash = strrchr(self, '/');
    if (slash && snprintf(relative_path, sizeof relative_path, "%.*s/%s", (int)(slash - self),
                          self, HSMTLS_PROVIDER_RELATIVE) < (int)sizeof relative_path
        && is_file(relative_path))
        compiled_path = relative_path;
#endif
}

const char *hsmtls__provider_default_path(void)
{
    const char *env = getenv("HSMTLS_PROVIDER");
    if (env && *env)
        return env;
    pthread_once(&once, choose);
    return compiled_path;
}
