"""README's main-job command, run as a user would run it: ./run-demo builds what is
missing and runs `hsmtls demo`, which makes a SoftHSM2 sandbox in the user's cache
directory and shows a TLS and a DTLS exchange with keys on the server and client tokens."""
import subprocess

from conftest import BUILD, ROOT, assert_no_sanitizer_report, base_env

BOTH_TOKENS = '  signatures   token "server" 1, token "client" 1'


def run_demo(env, *args):
    proc = subprocess.run([str(ROOT / "run-demo"), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert_no_sanitizer_report(proc)
    return proc


def test_run_demo_makes_a_sandbox_and_shows_both_exchanges(tmp_path, build):
    env = base_env()
    env["HSMTLS_BUILD_DIR"] = str(BUILD)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the default sandbox lives under it
    proc = run_demo(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    box = tmp_path / "cache" / "hsmtls" / "sandbox"
    assert f"made sandbox {box}" in out and (box / ".complete").exists(), out
    assert "\nTLS: TLSv1.3, " in out and "\nDTLS: DTLSv1.2, ECDHE-ECDSA-" in out, out
    assert out.count('on token "server": pkcs11:token=server;object=ec-p256;type=private') == 2, out
    assert out.count('on token "client": pkcs11:token=client;object=client-p256;type=private') == 2, out
    assert out.count("CN=client-p256,O=hsmtls sandbox (verified by the server)") == 2, out
    assert out.count(BOTH_TOKENS + "\n") == 2, out
    assert 'you said "hello over TLS"' in out and 'you said "hello over DTLS"' in out, out

    # Run again: the sandbox is reused, not remade, and the counts are the same.
    again = run_demo(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"reusing sandbox {box}" in again.stdout and again.stdout.count(BOTH_TOKENS + "\n") == 2, again.stdout


def test_run_demo_passes_its_arguments_on(build):
    env = base_env()
    env["HSMTLS_BUILD_DIR"] = str(BUILD)
    proc = run_demo(env, "--help")
    assert proc.returncode == 0 and "hsmtls demo --cert CERT --key KEY" in proc.stdout, proc.stdout + proc.stderr
    bad = run_demo(env, "--cert", "/x.pem")
    assert bad.returncode == 2 and "--cert and --key go together" in bad.stderr, bad.stderr

