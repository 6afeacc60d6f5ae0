/* The demo's embedded default: a SoftHSM2 sandbox made (or reused) by the sandbox
 * script, whose env.sh then tells this process where SoftHSM2's configuration and
 * module are. The script is HSMTLS_SANDBOX_SCRIPT, else the source tree's for a binary
 * that runs from the build tree it was built in, else where `cmake --install` put it
 * (bin/hsmtls-sandbox): an installed hsmtls never uses the build or source tree, even
 * while they still exist (as provider/locate.c picks the provider). The paths are
 * compiled in (tools/CMakeLists.txt). The fault module for --fault is found the same
 * way (the build tree's, else the installed one). */
#include "demo.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(HSMTLS_BUILD_DIR)
static int runs_from_build_tree(void)
{
    char self[PATH_MAX], build[PATH_MAX];
    if (!realpath("/proc/self/exe", self) || !realpath(HSMTLS_BUILD_DIR, build))
        return 0;
    size_t n = strlen(build);
    return strncmp(self, build, n) == 0 && self[n] == '/';
}
#endif

static const char *sandbox_script(void)
{
    const char *env = getenv("HSMTLS_SANDBOX_SCRIPT");
    if (env && *env)
        return env;
#if defined(HSMTLS_SANDBOX_SOURCE) && defined(HSMTLS_BUILD_DIR)
    if (runs_from_build_tree() && access(HSMTLS_SANDBOX_SOURCE, X_OK) == 0)
        return HSMTLS_SANDBOX_SOURCE;
#endif
#ifdef HSMTLS_SANDBOX_INSTALLED
    return HSMTLS_SANDBOX_INSTALLED;
#else
    return "hsmtls-sandbox";
#endif
}

const char *demo_fault_module(void)
{
#if defined(HSMTLS_FAULT_BUILD_PATH) && defined(HSMTLS_BUILD_DIR)
    if (runs_from_build_tree() && access(HSMTLS_FAULT_BUILD_PATH, R_OK) == 0)
        return HSMTLS_FAULT_BUILD_PATH;
#endif
#ifdef HSMTLS_FAULT_INSTALL_PATH
    return HSMTLS_FAULT_INSTALL_PATH;
#else
    return "hsmtls-fault.so";
#endif
}

char *demo_sandbox_default_dir(void)
{
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char buf[4096];
    if (cache && *cache)
        snprintf(buf, sizeof buf, "%s/hsmtls/sandbox", cache);
    else if (home && *home)
        snprintf(buf, sizeof buf, "%s/.cache/hsmtls/sandbox", home);
    else {
        fprintf(stderr, "hsmtls demo: neither XDG_CACHE_HOME nor HOME is set: name a directory with --sandbox DIR\n");
        return NULL;
    }
    return strdup(buf);
}

/* The provider this program's library loads, for the sandbox's openssl.cnf: the script
 * would otherwise look next to itself or in OpenSSL's modules directory, and might
 * point `openssl` at another build's provider. NULL when it is not there. */
static char *our_provider(void)
{
    if (getenv("HSMTLS_PROVIDER"))
        return NULL; /* the script reads it itself */
    hsmtls_config *cfg = hsmtls_config_new(HSMTLS_CLIENT);
    const char *path = cfg ? hsmtls_config_provider_path(cfg) : NULL;
    char *copy = path && access(path, R_OK) == 0 ? strdup(path) : NULL;
    hsmtls_config_free(cfg);
    return copy;
}

static int run_script(const char *script, const char *dir)
{
    char *provider = our_provider();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "hsmtls demo: cannot start %s: %s\n", script, strerror(errno));
        free(provider);
        return -1;
    }
    if (pid == 0) {
        if (provider)
            setenv("HSMTLS_PROVIDER", provider, 1);
        execl(script, script, dir, (char *)NULL);
        fprintf(stderr, "hsmtls demo: cannot run the sandbox script %s: %s (set HSMTLS_SANDBOX_SCRIPT "
                        "to softhsm/sandbox or hsmtls-sandbox)\n", script, strerror(errno));
        _exit(127);
    }
    free(provider);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 127))
        fprintf(stderr, "hsmtls demo: the sandbox script %s %s failed (see above)\n", script, dir);
    return -1;
}

/* env.sh holds lines `export NAME='value'` (the script quotes every value, and refuses
 * paths with a quote in them). Only what the PKCS#11 module needs is taken: an
 * OPENSSL_CONF would load a second copy of the provider into OpenSSL's default context. */
static int take_env(const char *dir)
{
    char path[4200], line[4400];
    snprintf(path, sizeof path, "%s/env.sh", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hsmtls demo: %s: %s (the sandbox script did not finish?)\n", path, strerror(errno));
        return -1;
    }
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "export ", 7) != 0)
            continue;
        char *name = line + 7, *eq = strchr(name, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *value = eq + 1;
        size_t len = strlen(value);
        if (len >= 2 && value[0] == '\'' && value[len - 1] == '\'') {
            value[len - 1] = '\0';
            value++;
        }
        if (strcmp(name, "SOFTHSM2_CONF") == 0 || strcmp(name, "HSMTLS_PKCS11_MODULE") == 0) {
            setenv(name, value, 1);
            found++;
        }
    }
    fclose(f);
    if (found < 2) {
        fprintf(stderr, "hsmtls demo: %s does not set SOFTHSM2_CONF and HSMTLS_PKCS11_MODULE\n", path);
        return -1;
    }
    return 0;
}

int demo_sandbox_prepare(const char *dir)
{
    return run_script(sandbox_script(), dir) == 0 && take_env(dir) == 0 ? 0 : -1;
}
