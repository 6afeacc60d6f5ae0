"""hsmtls_token_signatures (tests/c/test_lib_token.c): per-token signature counts from the
provider's PKCS#11 core, exact for TLS 1.3 and DTLS 1.2 mutual handshakes with token keys."""
import pytest

from conftest import BIN, assert_no_sanitizer_report, c_cases

# What a case must print beyond " 0 failed", by case name.
PRINTS = {"counts": ["# TLS 1.3: server 1, client 1", "# DTLS 1.2: server 1, client 1"]}


@pytest.mark.parametrize("case", c_cases("test_lib_token"))
def test_token_signature_counts(sandbox, case):
    proc = sandbox.run(BIN / "test_lib_token", sandbox.dir, case, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    for line in PRINTS.get(case, []):
        assert line in proc.stdout, out
    assert_no_sanitizer_report(proc)
