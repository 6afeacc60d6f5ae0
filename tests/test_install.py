"""`cmake --install` as a packager and an application use it: an install under a scratch
prefix that programs built with pkg-config and with find_package(hsmtls) link and run
(the installed library loading the installed provider, with HSMTLS_PROVIDER unset), and
a Debian layout (-DCMAKE_INSTALL_PREFIX=/usr, DESTDIR) whose provider and engine land
where OpenSSL looks for them by name.

One extra build directory, BUILD/install-check/tree, is configured for each layout in
turn (tests and benchmarks off, the sanitizers as in BUILD), once per test run."""
import fcntl
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, assert_no_sanitizer_report, base_env, sanitized, sanitizer_preload

WORK = BUILD / "install-check"
TREE = WORK / "tree"         # not "build": an installed hsmtls-sandbox looks at ../build
PREFIX = WORK / "prefix"
DESTDIR = WORK / "debian"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if sanitized() else []


def run(args, env=None, cwd=None, timeout=300):
    proc = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def pkg_var(name, variable, pc_dir=None):
    env = dict(os.environ)
    if pc_dir:
        env["PKG_CONFIG_PATH"] = str(pc_dir)
    return run(["pkg-config", f"--variable={variable}", name], env=env).stdout.strip()


MULTIARCH = run(["gcc", "-print-multiarch"]).stdout.strip()
DEB_LIBDIR = f"usr/lib/{MULTIARCH}"
MODULESDIR = pkg_var("libcrypto", "modulesdir")
ENGINESDIR = pkg_var("libcrypto", "enginesdir")


def build_env():
    env = dict(os.environ)
    for var in ("DESTDIR", "CFLAGS", "LDFLAGS", "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH"):
        env.pop(var, None)
    return env


def configure(prefix):
    cache = (BUILD / "CMakeCache.txt").read_text()
    build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M)
    run(["cmake", "-S", ROOT, "-B", TREE, f"-DCMAKE_INSTALL_PREFIX={prefix}",
         f"-DCMAKE_BUILD_TYPE={build_type.group(1) if build_type else 'RelWithDebInfo'}",
         f"-DHSMTLS_SANITIZE={'ON' if sanitized() else 'OFF'}",
         "-DHSMTLS_BUILD_TESTS=OFF", "-DHSMTLS_BUILD_BENCH=OFF",
         "-DHSMTLS_PROVIDER_INSTALL_DIR=", "-DHSMTLS_ENGINE_INSTALL_DIR="], env=build_env())
    run(["cmake", "--build", TREE, "-j2"], env=build_env(), timeout=600)


@pytest.fixture(scope="session")
def installed(build):
    """PREFIX and DESTDIR/usr, installed once per test run (xdist workers share it)."""
    WORK.mkdir(parents=True, exist_ok=True)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid {os.getpid()}"
    with open(WORK / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = WORK / ".installed"
        if not stamp.exists() or stamp.read_text() != run_id:
            stamp.unlink(missing_ok=True)
            shutil.rmtree(PREFIX, ignore_errors=True)
            shutil.rmtree(DESTDIR, ignore_errors=True)
            configure(PREFIX)
            run(["cmake", "--install", TREE], env=build_env())
            configure("/usr")
            run(["cmake", "--install", TREE], env={**build_env(), "DESTDIR": str(DESTDIR)})
            stamp.write_text(run_id)
    return PREFIX


def program_env(sandbox, extra):
    """The sandbox's module and tokens, but no HSMTLS_PROVIDER and no OPENSSL_CONF (whose
    provider is the build tree's): the library must find the installed provider itself."""
    return sandbox.env_for("handshake", {"HSMTLS_PROVIDER": None, "OPENSSL_CONF": None,
                                         "LD_LIBRARY_PATH": None, **extra})


def check_handshake(proc, prefix_lib):
    assert_no_sanitizer_report(proc)
    provider = str(prefix_lib / "ossl-modules" / "hsmtls.so")
    out = proc.stdout
    assert f"provider: {provider}\n" in out, out
    assert "version: TLSv1.3" in out and "peer: CN=localhost,OU=ec-p256" in out, out
    assert "server token signatures: 1\n" in out, out  # TLS 1.3: one CertificateVerify
    mapped = re.findall(r"^mapped: (.*)$", out, re.M)
    assert [m for m in mapped if m.endswith("/hsmtls.so")] == [provider], out
    return mapped


def test_prefix_layout(installed):
    lib = PREFIX / "lib"
    for rel in ("bin/hsmtls", "bin/hsmtls-sandbox", "lib/libhsmtls.so", "lib/libhsmtls.a",
                "lib/ossl-modules/hsmtls.so", "lib/engines-3/hsmtls.so", "lib/pkcs11/hsmtls-fault.so",
                "lib/pkgconfig/hsmtls.pc", "lib/cmake/hsmtls/hsmtlsConfig.cmake",
                "lib/cmake/hsmtls/hsmtlsConfigVersion.cmake", "share/man/man1/hsmtls.1",
                "share/doc/hsmtls/README.sandbox.md"):
        assert (PREFIX / rel).exists(), rel
    # The public headers, and no more: the PKCS#11 core's are not libhsmtls's API.
    public = sorted(p.name for p in (ROOT / "lib/include/hsmtls").glob("*.h"))
    assert sorted(p.name for p in (PREFIX / "include/hsmtls").iterdir()) == public
    assert pkg_var("hsmtls", "provider", lib / "pkgconfig") == str(lib / "ossl-modules/hsmtls.so")
    assert pkg_var("hsmtls", "engine", lib / "pkgconfig") == str(lib / "engines-3/hsmtls.so")


def test_pkg_config_program(installed, sandbox, tmp_path):
    lib = PREFIX / "lib"
    env = {**build_env(), "PKG_CONFIG_PATH": str(lib / "pkgconfig")}
    cflags = run(["pkg-config", "--cflags", "hsmtls"], env=env).stdout.split()
    libs = run(["pkg-config", "--libs", "hsmtls"], env=env).stdout.split()
    assert cflags == [f"-I{PREFIX}/include"] and libs == [f"-L{lib}", "-lhsmtls"]
    source = ROOT / "tests/install/handshake.c"
    run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *SANITIZE, *cflags, "-o",
         tmp_path / "shared", source, *libs], env=env)
    # Static: libhsmtls.a with what Requires.private and Libs.private add.
    static_libs = run(["pkg-config", "--static", "--libs", "hsmtls"], env=env).stdout.split()
    static_libs = ["-l:libhsmtls.a" if a == "-lhsmtls" else a for a in static_libs]
    run(["cc", "-std=c11", *SANITIZE, *cflags, "-o", tmp_path / "static", source,
         *static_libs], env=env)

    proc = subprocess.run([tmp_path / "shared", sandbox.dir], capture_output=True, text=True,
                          timeout=60, env=program_env(sandbox, {"LD_LIBRARY_PATH": str(lib)}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mapped = check_handshake(proc, lib)
    shared = [m for m in mapped if "libhsmtls.so" in m]
    assert shared and all(m.startswith(f"{lib}/") for m in shared), mapped

    proc = subprocess.run([tmp_path / "static", sandbox.dir], capture_output=True, text=True,
                          timeout=60, env=program_env(sandbox, {}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mapped = check_handshake(proc, lib)
    assert not [m for m in mapped if "libhsmtls.so" in m], mapped


def test_cmake_package_program(installed, sandbox, tmp_path):
    lib = PREFIX / "lib"
    flags = " ".join(SANITIZE)
    proc = run(["cmake", "-S", ROOT / "tests/install", "-B", tmp_path, f"-DCMAKE_PREFIX_PATH={PREFIX}",
                f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"], env=build_env())
    assert f"hsmtls 0.1.0: {lib}/ossl-modules/hsmtls.so" in proc.stdout, proc.stdout
    run(["cmake", "--build", tmp_path], env=build_env())
    for program in ("handshake", "handshake_static"):
        proc = subprocess.run([tmp_path / program, sandbox.dir], capture_output=True, text=True,
                              timeout=60, env=program_env(sandbox, {"LD_LIBRARY_PATH": str(lib)}))
        assert proc.returncode == 0, program + proc.stdout + proc.stderr
        mapped = check_handshake(proc, lib)
        shared = [m for m in mapped if "libhsmtls.so" in m]
        if program == "handshake":
            assert shared and all(m.startswith(f"{lib}/") for m in shared), mapped
        else:
            assert not shared, mapped


def test_cmake_package_refuses_another_minor_version(installed, tmp_path):
    """0.x releases promise nothing to each other (cmake/hsmtlsPackage.cmake)."""
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES C)\n"
        "find_package(hsmtls 0.2 REQUIRED)\n")
    proc = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"),
                           f"-DCMAKE_PREFIX_PATH={PREFIX}"], capture_output=True, text=True,
                          env=build_env(), timeout=120)
    assert proc.returncode != 0
    assert 'requested version "0.2"' in proc.stderr and "version: 0.1.0" in proc.stderr, proc.stderr


def test_installed_cli_lists_the_sandbox_tokens(installed, sandbox):
    proc = sandbox.run(PREFIX / "bin/hsmtls", "tokens", env={"HSMTLS_PROVIDER": None})
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'token "server"' in proc.stdout and 'token "client"' in proc.stdout, proc.stdout


def test_installed_demo_on_a_sandbox_made_by_the_installed_script(installed, tmp_path):
    """The installed CLI, its sandbox script and the installed provider, end to end; the
    sandbox's openssl.cnf names the installed provider. (A fresh sandbox: running the
    script over the session's would rewrite its openssl.cnf.)"""
    env = {k: v for k, v in base_env().items() if k not in ("HSMTLS_PROVIDER", "HSMTLS_SANDBOX")}
    env["HSMTLS_SANDBOX_SCRIPT"] = str(PREFIX / "bin/hsmtls-sandbox")
    proc = subprocess.run([str(PREFIX / "bin/hsmtls"), "demo", "--sandbox", str(tmp_path / "sb")],
                          capture_output=True, text=True, timeout=180, env=env)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count('signatures   token "server" 1, token "client" 1') == 2, proc.stdout
    cnf = (tmp_path / "sb/openssl.cnf").read_text()
    assert f"module = {PREFIX}/lib/ossl-modules/hsmtls.so\n" in cnf, cnf


def test_debian_layout(installed):
    root = DESTDIR
    lib = root / DEB_LIBDIR
    assert sorted(p.name for p in root.iterdir()) == ["usr"]
    assert MODULESDIR == f"/{DEB_LIBDIR}/ossl-modules" and ENGINESDIR == f"/{DEB_LIBDIR}/engines-3"
    versioned = list(lib.glob("libhsmtls.so.*.*.*"))
    assert len(versioned) == 1, list(lib.iterdir())
    assert (lib / "libhsmtls.so").resolve() == versioned[0].resolve()
    expected = [
        "usr/bin/hsmtls", "usr/bin/hsmtls-sandbox", f"{DEB_LIBDIR}/libhsmtls.a",
        f"{MODULESDIR[1:]}/hsmtls.so", f"{ENGINESDIR[1:]}/hsmtls.so", f"{DEB_LIBDIR}/pkcs11/hsmtls-fault.so",
        f"{DEB_LIBDIR}/pkgconfig/hsmtls.pc", f"{DEB_LIBDIR}/cmake/hsmtls/hsmtlsConfig.cmake",
        f"{DEB_LIBDIR}/cmake/hsmtls/hsmtlsConfigVersion.cmake",
        f"{DEB_LIBDIR}/cmake/hsmtls/hsmtlsTargets.cmake",
        "usr/share/man/man1/hsmtls.1", "usr/share/man/man1/hsmtls-sandbox.1",
        "usr/share/man/man3/libhsmtls.3", "usr/share/man/man7/hsmtls-provider.7",
    ]
    missing = [rel for rel in expected if not (root / rel).is_file()]
    assert not missing, missing
    # The PKCS#11 core: one private shared library (no development link, no headers),
    # which the provider, engine and CLI find relative to themselves.
    assert sorted(p.name for p in (lib / "hsmtls").iterdir()) == [
        "libhsmtls-pkcs11.so.0", "libhsmtls-pkcs11.so.0.1.0"]
    for rel in ("usr/bin/hsmtls", f"{MODULESDIR[1:]}/hsmtls.so", f"{ENGINESDIR[1:]}/hsmtls.so"):
        dynamic = run(["readelf", "-d", root / rel], env=build_env()).stdout
        assert "[libhsmtls-pkcs11.so.0]" in dynamic and "$ORIGIN/" in dynamic, (rel, dynamic)
    public = sorted(p.name for p in (ROOT / "lib/include/hsmtls").glob("*.h"))
    assert sorted(p.name for p in (root / "usr/include/hsmtls").iterdir()) == public
    # What the installed library, pkg-config users and the sandbox will look for.
    pc = (lib / "pkgconfig/hsmtls.pc").read_text()
    assert "prefix=/usr\n" in pc and f"libdir=${{prefix}}/lib/{MULTIARCH}\n" in pc, pc
    assert f"provider={MODULESDIR}/hsmtls.so\n" in pc and f"engine={ENGINESDIR}/hsmtls.so\n" in pc, pc
    assert f"INSTALLED_PROVIDER='{MODULESDIR}/hsmtls.so'\n" in (root / "usr/bin/hsmtls-sandbox").read_text()
    assert f"{MODULESDIR}/hsmtls.so".encode() in (root / DEB_LIBDIR / versioned[0].name).read_bytes()


def test_debian_provider_and_engine_load_by_name(installed):
    """OpenSSL finds both by name in their directories, as it would under /usr."""
    env = {k: v for k, v in build_env().items() if k not in ("OPENSSL_CONF", "HSMTLS_PROVIDER")}
    env.update(sanitizer_preload())
    proc = run(["openssl", "list", "-providers", "-provider-path", f"{DESTDIR}{MODULESDIR}",
                "-provider", "hsmtls"], env=env)
    assert "name: hsmtls PKCS#11 provider" in proc.stdout and "status: active" in proc.stdout, proc.stdout
    # The engine finds the provider beside it (../ossl-modules), as in /usr.
    proc = run(["openssl", "engine", "-t", "hsmtls"],
               env={**env, "OPENSSL_ENGINES": f"{DESTDIR}{ENGINESDIR}"})
    assert "[ available ]" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("compiler,std", [("cc", "-std=c11"), ("c++", "-std=c++17")])
def test_installed_headers_compile_alone(installed, compiler, std):
    headers = sorted((DESTDIR / "usr/include/hsmtls").glob("*.h"))
    assert headers
    for header in headers:
        lang = "c" if compiler == "cc" else "c++"
        proc = subprocess.run([compiler, std, "-Wall", "-Wextra", "-Werror", "-pedantic",
                               "-fsyntax-only", f"-I{DESTDIR}/usr/include", "-x", lang, "-"],
                              input=f"#include <hsmtls/{header.name}>\n", capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"{header.name} alone ({compiler}):\n{proc.stderr}"


def man_pages():
    return sorted((DESTDIR / "usr/share/man").glob("man*/*.[0-9]"))


def test_man_pages_render_without_warnings(installed):
    assert shutil.which("groff"), "groff is needed to check the man pages (Debian: groff-base)"
    assert len(man_pages()) == 4, man_pages()
    for page in man_pages():
        proc = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", f"{page.name}:\n{proc.stderr}"


def test_man_pages_cover_every_verb_and_option_and_name_only_installed_pages(installed):
    """hsmtls(1) has a section for each verb the installed CLI lists, naming every option
    that verb's --help shows; the pages refer only to hsmtls pages that are installed."""
    hsmtls_1 = (DESTDIR / "usr/share/man/man1/hsmtls.1").read_text().replace("\\-", "-")
    sections = dict(re.findall(r'^\.SS "([^\s"]+)[^\n]*\n(.*?)(?=^\.SS |^\.SH )', hsmtls_1, re.M | re.S))
    common = hsmtls_1.split('.SH "COMMON OPTIONS"')[1].split(".SH ")[0]
    cli = DESTDIR / "usr/bin/hsmtls"
    usage = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60,
                           env=build_env())
    verbs = re.findall(r"^  (\S+) ", usage.stdout.split("verbs:")[1], re.M)
    assert "tokens" in verbs and "dtls-connect" in verbs, usage.stdout
    for verb in verbs:
        assert verb in sections, f"hsmtls(1) has no section for the verb {verb}"
        help_text = subprocess.run([str(cli), verb, "--help"], capture_output=True, text=True,
                                   timeout=60, env=build_env())
        options = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", help_text.stdout + help_text.stderr))
        assert options, f"hsmtls {verb} --help shows no options"
        undocumented = sorted(o for o in options - {"--help"}
                              if o not in sections[verb] and o not in common)
        assert not undocumented, f"hsmtls(1) does not describe {verb} {undocumented}"
    installed_names = {f"{p.stem}({p.suffix[1:]})" for p in man_pages()}
    for page in man_pages():
        text = page.read_text().replace("\\-", "-")
        named = set(re.findall(r"^\.BR ((?:lib)?hsmtls[\w-]*) \((\d)\)", text, re.M))
        for name, section in named:
            assert f"{name}({section})" in installed_names, f"{page.name} names {name}({section})"


def test_provider_and_engine_dirs_follow_the_prefix_or_an_explicit_setting(build, tmp_path):
    """Outside OpenSSL's tree the prefix keeps both; -D... overrides; the path compiled into
    the library and the engine is the provider's install destination either way (one
    source file of each is compiled to see it)."""
    def configure_only(name, *args):
        tree = tmp_path / name
        run(["cmake", "-S", ROOT, "-B", tree, "-DHSMTLS_BUILD_TESTS=OFF",
             "-DHSMTLS_BUILD_BENCH=OFF", *args], env=build_env())
        pc = (tree / "lib/hsmtls.pc").read_text()
        provider = re.search(r"^provider=(.*)$", pc, re.M).group(1)
        engine = re.search(r"^engine=(.*)$", pc, re.M).group(1)
        prefix = re.search(r"^prefix=(.*)$", pc, re.M).group(1)
        libdir = re.search(r"^libdir=(.*)$", pc, re.M).group(1).replace("${prefix}", prefix)
        # Both compile provider/locate.c, each for where it is installed: the absolute
        # path and the one relative to that directory.
        for part, target in (("lib", "hsmtls_lib_provider_locate"),
                             ("engine", "hsmtls_engine_provider_locate")):
            run(["make", "-C", tree / part, "__/provider/locate.c.o"], env=build_env())
            obj = tree / part / f"CMakeFiles/{target}.dir/__/provider/locate.c.o"
            assert provider.encode() + b"\0" in obj.read_bytes(), (obj, provider)
            home = os.path.dirname(engine) if part == "engine" else libdir
            relative = os.path.relpath(provider, home)
            assert relative.encode() + b"\0" in obj.read_bytes(), (obj, relative)
        return provider, engine

    assert configure_only("opt", "-DCMAKE_INSTALL_PREFIX=/opt/hsmtls") == (
        "/opt/hsmtls/lib/ossl-modules/hsmtls.so", "/opt/hsmtls/lib/engines-3/hsmtls.so")
    assert configure_only("explicit", "-DCMAKE_INSTALL_PREFIX=/opt/hsmtls",
                          f"-DHSMTLS_PROVIDER_INSTALL_DIR={MODULESDIR}",
                          "-DHSMTLS_ENGINE_INSTALL_DIR=lib/e3") == (
        f"{MODULESDIR}/hsmtls.so", "/opt/hsmtls/lib/e3/hsmtls.so")
