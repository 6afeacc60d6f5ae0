"""libhsmtls C API tests (tests/c/test_lib_*.c), run against the sandbox's files. Each
program lists its own cases (conftest.c_cases); what a case needs beyond the sandbox is
given here by case name."""
import pytest

from conftest import BIN, assert_no_sanitizer_report, c_cases


def assert_clean(proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)


# "token": token keys go through the provider. "noprovider": pkcs11: URIs fail with a
# clear message when the provider module is missing.
CONFIG_ENV = {"noprovider": {"HSMTLS_PROVIDER": "/nonexistent/hsmtls.so"}}


@pytest.mark.parametrize("case", c_cases("test_lib_config"))
def test_lib_config(sandbox, case, tmp_path):
    assert_clean(sandbox.run(BIN / "test_lib_config", sandbox.dir, case, tmp_path, env=CONFIG_ENV.get(case)))


@pytest.mark.parametrize("case", c_cases("test_lib_conn"))
def test_lib_conn(sandbox, case):
    assert_clean(sandbox.run(BIN / "test_lib_conn", sandbox.dir, case, timeout=120))


@pytest.mark.parametrize("case", c_cases("test_lib_cert"))
def test_lib_cert(sandbox, case):
    assert_clean(sandbox.run(BIN / "test_lib_cert", sandbox.dir, case))


@pytest.mark.parametrize("case", c_cases("test_lib_binding"))
def test_lib_binding(sandbox, case, tmp_path):
    """Channel bindings, the ephemeral key, DH parameters (tests/c/test_lib_binding.c)."""
    assert_clean(sandbox.run(BIN / "test_lib_binding", sandbox.dir, case, tmp_path, timeout=120))


@pytest.mark.parametrize("case", c_cases("test_lib_cache"))
def test_lib_session_cache(sandbox, case):
    """Session cache mode, size, flush and counters (tests/c/test_lib_cache.c)."""
    assert_clean(sandbox.run(BIN / "test_lib_cache", sandbox.dir, case, timeout=120))
