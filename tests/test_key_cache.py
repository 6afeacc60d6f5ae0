"""The core's key cache (tests/c/test_key_cache.c): each token key copied once into the
token as a session object, with the key's protection, made again when lost, skipped for
keys the token will not copy, and off with HSMTLS_KEY_CACHE=0 or the library setting."""
import pytest

from conftest import BIN, assert_no_sanitizer_report, c_cases


@pytest.mark.parametrize("case", c_cases("test_key_cache"))
def test_key_cache(sandbox, case):
    proc = sandbox.run(BIN / "test_key_cache", sandbox.dir, case, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)


def test_key_cache_off_from_environment(sandbox):
    """HSMTLS_KEY_CACHE=0 turns the cache off for the whole process."""
    proc = sandbox.run(BIN / "test_key_cache", sandbox.dir, "off", env={"HSMTLS_KEY_CACHE": "0"}, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)
