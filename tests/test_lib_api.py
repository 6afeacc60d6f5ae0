"""libhsmtls C API tests (tests/c/test_lib_*.c), run against the sandbox's files."""
import pytest

from conftest import BIN, assert_no_sanitizer_report

# Token keys go through the provider: the case runs when this build has one.
CONFIG_CASES = ["defaults", "loading", "passphrase", "token"]


def assert_clean(proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_lib_config(sandbox, case, tmp_path):
    assert_clean(sandbox.run(BIN / "test_lib_config", sandbox.dir, case, tmp_path))


def test_lib_config_without_provider(sandbox):
    """pkcs11: URIs fail with a clear message when the provider module is missing."""
    assert_clean(sandbox.run(BIN / "test_lib_config", sandbox.dir, "noprovider",
                             env={"HSMTLS_PROVIDER": "/nonexistent/hsmtls.so"}))


@pytest.mark.parametrize("case", ["memory", "nonblocking", "callbacks", "verify", "pause", "resume", "sni",
                                  "psk", "misc"])
def test_lib_conn(sandbox, case):
    assert_clean(sandbox.run(BIN / "test_lib_conn", sandbox.dir, case, timeout=120))


def test_lib_cert(sandbox):
    assert_clean(sandbox.run(BIN / "test_lib_cert", sandbox.dir))


@pytest.mark.parametrize("case", ["binding", "dh"])
def test_lib_binding(sandbox, case, tmp_path):
    """Channel bindings, the ephemeral key, DH parameters (tests/c/test_lib_binding.c)."""
    assert_clean(sandbox.run(BIN / "test_lib_binding", sandbox.dir, case, tmp_path, timeout=120))


def test_lib_session_cache(sandbox):
    """Session cache mode, size, flush and counters (tests/c/test_lib_cache.c)."""
    assert_clean(sandbox.run(BIN / "test_lib_cache", sandbox.dir, timeout=120))
