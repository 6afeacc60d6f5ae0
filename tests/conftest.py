"""Shared fixtures: the build under test and one SoftHSM2 sandbox per test session
(per xdist worker), made by softhsm/sandbox exactly as users make theirs."""
import json
import os
import pathlib
import signal
import socket
import time
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("HSMTLS_BUILD_DIR", ROOT / "build")).resolve()
BIN = BUILD / "bin"
PROVIDER = BUILD / "lib" / "ossl-modules" / "hsmtls.so"


def sanitized():
    cache = BUILD / "CMakeCache.txt"
    return cache.exists() and "HSMTLS_SANITIZE:BOOL=ON" in cache.read_text()


def base_env():
    env = dict(os.environ)
    for var in ("HSMTLS_PKCS11_MODULE", "HSMTLS_DEBUG", "SOFTHSM2_CONF", "OPENSSL_CONF"):
        env.pop(var, None)
    if sanitized():
        # Full unwinding so the suppressions can see which library leaked.
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0"
        env["LSAN_OPTIONS"] = f"suppressions={ROOT / 'tests' / 'lsan.supp'}"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def sanitizer_preload():
    """LD_PRELOAD for a program that is not instrumented (the system openssl) but loads
    our sanitized code: libasan must come first, and SoftHSM2 (C++) needs libstdc++ there
    from the start. Empty for a normal build."""
    if not sanitized():
        return {}
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    return {"LD_PRELOAD": f"{libasan} libstdc++.so.6", "ASAN_OPTIONS": "detect_leaks=0"}


# System programs that read openssl.cnf and so load the provider. Others must not get
# the sanitizer preload: it hangs programs that link GnuTLS (gnutls-cli, curl), which
# the tests therefore run without OPENSSL_CONF when they need no token key.
OPENSSL_CONF_READERS = {"openssl", "nginx", "python3", "pkcs11-tool", "softhsm2-util", "p11-kit"}


class Sandbox:
    def __init__(self, path):
        self.dir = path
        self.env = base_env()
        for line in (path / "env.sh").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                self.env[key] = value.strip("'\"")

    def env_for(self, program, env=None):
        """The sandbox's environment for `program`, with `env` on top (None removes)."""
        merged = dict(self.env)
        if os.path.basename(str(program)) in OPENSSL_CONF_READERS:
            # A system program that loads our sanitized provider through openssl.cnf.
            merged.update(sanitizer_preload())
        merged.update(env or {})
        return {k: v for k, v in merged.items() if v is not None}

    def run(self, *args, env=None, input=None, timeout=60, check=False):
        """Runs a command in the sandbox's environment; returns the CompletedProcess."""
        merged = self.env_for(args[0], env)
        proc = subprocess.run([str(a) for a in args], env=merged, input=input, text=True,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def hsmtls(self, *args, **kw):
        proc = self.run(BIN / "hsmtls", *args, **kw)
        assert_no_sanitizer_report(proc)
        return proc


def assert_no_sanitizer_report(proc):
    out = proc.stdout + proc.stderr
    assert "ERROR: AddressSanitizer" not in out and "ERROR: LeakSanitizer" not in out, out
    assert "runtime error:" not in out, out


NOT_BUILT = "(not built)"


def c_cases(program, optional=False):
    """The cases of the C test program tests/c/PROGRAM.c, as `BIN/PROGRAM --list` prints
    them (the program's own table is the one list): pytest params with the case name as
    id, marked c_case(PROGRAM, CASE) so that test_c_cases.py can tell that every case
    runs. Called at collection: a missing build fails the collection, saying so. An
    optional program (built only when an optional peer's files are there) that is missing
    gives one case, NOT_BUILT, for the test to skip or fail with its reason."""
    path = BIN / program
    if not path.exists() and optional:
        return [pytest.param(NOT_BUILT, id="not-built")]
    if not path.exists():
        pytest.fail(f"{path} is missing, so its cases cannot be collected: build {BUILD} first "
                    "(see README), or set HSMTLS_BUILD_DIR to a build", pytrace=False)
    proc = subprocess.run([str(path), "--list"], capture_output=True, text=True, env=base_env(),
                          timeout=60)
    names = proc.stdout.split()
    if proc.returncode != 0 or not names:
        pytest.fail(f"`{path} --list` exited {proc.returncode} and listed no cases:\n"
                    f"{proc.stdout}{proc.stderr}", pytrace=False)
    return [pytest.param(name, id=name, marks=pytest.mark.c_case(program, name)) for name in names]


def pytest_configure(config):
    config.addinivalue_line("markers", "c_case(program, case): runs that case of a C test program "
                                       "(from conftest.c_cases)")
    config.addinivalue_line("markers", "soak: a long run, deselected unless HSMTLS_SOAK is set")


def pytest_collection_modifyitems(config, items):
    """Soaks run only when asked for (HSMTLS_SOAK=1): deselected, not skipped, so the
    default run neither spends their minutes nor reports them as skipped."""
    if os.environ.get("HSMTLS_SOAK"):
        return
    soaks = [item for item in items if item.get_closest_marker("soak")]
    if soaks:
        config.hook.pytest_deselected(items=soaks)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


def pytest_collection_finish(session):
    """With HSMTLS_C_CASES_OUT set, writes the C cases the collected tests run there
    ({program: [case, ...]}) for test_c_cases.py."""
    out = os.environ.get("HSMTLS_C_CASES_OUT")
    if not out:
        return
    runs = {}
    for item in session.items:
        for mark in item.iter_markers("c_case"):
            program, case = mark.args
            runs.setdefault(program, set()).add(case)
    pathlib.Path(out).write_text(json.dumps({p: sorted(c) for p, c in runs.items()}))


@pytest.fixture(scope="session")
def build():
    missing = [p for p in ("hsmtls", "test_core") if not (BIN / p).exists()]
    if not PROVIDER.exists():
        missing.append(str(PROVIDER))
    if missing:
        pytest.fail(f"build {BUILD} lacks {missing}: build first (see README)")
    return BIN


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, build):
    path = tmp_path_factory.getbasetemp() / "sandbox"
    env = base_env()
    env["HSMTLS_PROVIDER"] = str(PROVIDER)  # this build's, for the sandbox's openssl.cnf
    subprocess.run([str(ROOT / "softhsm" / "sandbox"), str(path)], check=True,
                   capture_output=True, text=True, env=env)
    box = Sandbox(path)
    # A third token that tests may change without disturbing the others.
    box.run("softhsm2-util", "--init-token", "--free", "--label", "scratch",
            "--so-pin", "12345678", "--pin", "1234", check=True)
    return box


P11_KIT_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"


def accepts_connections(path):
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0


@pytest.fixture(scope="session")
def remote(sandbox, tmp_path_factory):
    """The sandbox's server token exported by `p11-kit server` on a unix socket; returns
    the environment that reaches it through p11-kit-client.so."""
    sock = tmp_path_factory.mktemp("remote") / "p11.sock"
    log = open(sock.parent / "server.log", "w")
    # A session of its own: the server forks a p11-kit-remote per connection, and
    # those must end with it.
    proc = subprocess.Popen(["p11-kit", "server", "-f", "-s", "--provider",
                             sandbox.env["HSMTLS_PKCS11_MODULE"], "-n", str(sock),
                             "pkcs11:token=server"],
                            env=sandbox.env_for("p11-kit"), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while not accepts_connections(sock):  # bound is not yet listening
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"p11-kit server did not start: {(sock.parent / 'server.log').read_text()}")
        time.sleep(0.05)
    yield {"HSMTLS_PKCS11_MODULE": P11_KIT_CLIENT, "P11_KIT_SERVER_ADDRESS": f"unix:path={sock}"}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
