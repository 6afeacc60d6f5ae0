"""hsmtls_token_signatures (tests/c/test_lib_token.c): per-token signature counts from the
provider's PKCS#11 core, exact for TLS 1.3 and DTLS 1.2 mutual handshakes with token keys."""
from conftest import BIN, assert_no_sanitizer_report


def test_token_signature_counts(sandbox):
    proc = sandbox.run(BIN / "test_lib_token", sandbox.dir, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    assert "# TLS 1.3: server 1, client 1" in proc.stdout, out
    assert "# DTLS 1.2: server 1, client 1" in proc.stdout, out
    assert_no_sanitizer_report(proc)
