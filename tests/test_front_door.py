"""README's main-job command, run as a user would run it."""
import subprocess

from conftest import ROOT, base_env


def test_run_demo_makes_a_sandbox_and_lists_it(tmp_path, build):
    proc = subprocess.run([str(ROOT / "run-demo"), str(tmp_path / "box")], env=base_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'token "server"' in out and 'token "client"' in out
    assert "label=client-p256" in out and "label=rsa3072" in out
    assert out.count("private-key") == 7 + 2
    # TLS, then DTLS: the server's key on the server token, the client's on the client token.
    assert "client: hello over TLS" in out and "client: hello over DTLS" in out, out
    assert "private key on a token: pkcs11:token=server" in out
    assert "private key on a token: pkcs11:token=client" in out
    assert "peer CN=client-p256,O=hsmtls sandbox: verified" in out
    # Run again: the sandbox is reused, not remade.
    again = subprocess.run([str(ROOT / "run-demo"), str(tmp_path / "box")], env=base_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reusing sandbox" in again.stdout + again.stderr
