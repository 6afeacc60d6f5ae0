"""The PKCS#11 core's C API tests (tests/c/test_core.c), run against the sandbox. The URI
parser's tests need no token: they are in the unit tier (tests/unit/unit_uri.c, ctest)."""
import pytest

from conftest import BIN, assert_no_sanitizer_report, c_cases


def assert_clean(proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)


@pytest.mark.parametrize("case", c_cases("test_core"))
def test_core(sandbox, case, request):
    env = None
    if case == "remote":
        # The server token through p11-kit's remoting (conftest's remote fixture).
        env = request.getfixturevalue("remote")
    if case == "added":
        # The case adds "later" to the scratch token: start from a token without it.
        for kind in ("secrkey", "cert"):
            sandbox.run("pkcs11-tool", "--module", sandbox.env["HSMTLS_PKCS11_MODULE"],
                        "--token-label", "scratch", "--login", "--pin", "1234",
                        "--delete-object", "--type", kind, "--label", "later")
    assert_clean(sandbox.run(BIN / "test_core", sandbox.dir, case, env=env, timeout=300))
