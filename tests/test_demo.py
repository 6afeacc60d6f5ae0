"""`hsmtls demo` on the session sandbox: both exchanges with the exact signatures each token
made (counted by the provider's PKCS#11 core), --cert/--key with the sandbox's key by URI
and by file, and the messages for a missing token and a wrong PIN."""
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BIN, BUILD, PROVIDER, ROOT, assert_no_sanitizer_report, base_env

SERVER_URI = "pkcs11:token=server;object=ec-p256;type=private"
CLIENT_URI = "pkcs11:token=client;object=client-p256;type=private"


def sections(out):
    """The report's sections by their first word ("TLS", "DTLS"), each as a list of lines."""
    found = {}
    for block in out.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if lines and lines[0].split(":")[0] in ("TLS", "DTLS"):
            found[lines[0].split(":")[0]] = lines
    return found


def demo_alone(*args, env=None):
    """The demo as a user runs it: no SoftHSM2 or module settings in the environment (it
    takes them from the sandbox). HSMTLS_PROVIDER keeps the session sandbox's
    openssl.cnf pointing at this build's provider when the sandbox script rewrites it."""
    merged = base_env()
    merged["HSMTLS_PROVIDER"] = str(PROVIDER)
    merged.update(env or {})
    proc = subprocess.run([str(BIN / "hsmtls"), "demo", *map(str, args)], env=merged, capture_output=True,
                          text=True, timeout=120)
    assert_no_sanitizer_report(proc)
    return proc


def test_demo_on_the_sandbox(sandbox):
    proc = demo_alone("--sandbox", sandbox.dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"reusing sandbox {sandbox.dir}" in proc.stdout, proc.stdout
    found = sections(proc.stdout)
    assert set(found) == {"TLS", "DTLS"}, proc.stdout
    tls, dtls = found["TLS"], found["DTLS"]
    assert tls[0].startswith("TLS: TLSv1.3, TLS_"), tls
    assert dtls[0].startswith("DTLS: DTLSv1.2, ECDHE-ECDSA-") and "(1 HelloVerifyRequest)" in dtls[0], dtls
    for proto, lines in (("TLS", tls), ("DTLS", dtls)):
        assert "  server cert  CN=localhost,OU=ec-p256,O=hsmtls sandbox (verified by the client)" in lines, lines
        assert f'  server key   on token "server": {SERVER_URI}' in lines, lines
        assert "  client cert  CN=client-p256,O=hsmtls sandbox (verified by the server)" in lines, lines
        assert f'  client key   on token "client": {CLIENT_URI}' in lines, lines
        # What the client received: the server names the certificate it verified.
        assert f"  request      hello over {proto}" in lines, lines
        assert f'  answer       hello CN=client-p256,O=hsmtls sandbox, you said "hello over {proto}"' in lines, lines
        # TLS 1.3: one CertificateVerify each; DTLS 1.2 ECDHE-ECDSA: the server's
        # ServerKeyExchange and the client's CertificateVerify.
        assert lines[-1] == '  signatures   token "server" 1, token "client" 1', lines


def test_demo_with_the_server_key_by_uri(sandbox):
    d = sandbox.dir
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", SERVER_URI, "--ca", d / "ca.pem",
                          "--pin-source", d / "pin.txt", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hsmtls-sandbox" not in proc.stdout + proc.stderr  # no sandbox made or used
    for lines in sections(proc.stdout).values():
        # A real certificate names its own host, not this loopback: only the chain counts.
        assert "  server cert  CN=localhost,OU=ec-p256,O=hsmtls sandbox (verified by the client, host name not " \
               "checked)" in lines, lines
        assert f'  server key   on token "server": {SERVER_URI}' in lines, lines
        assert "  client       does not authenticate (no --client-cert/--client-key)" in lines, lines
        assert lines[-1] == '  signatures   token "server" 1', lines
    assert len(sections(proc.stdout)) == 2, proc.stdout


def test_demo_with_the_server_key_in_a_file(sandbox):
    d = sandbox.dir
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", d / "soft/ec-p256.key",
                          "--ca", d / "ca.pem", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = sections(proc.stdout)
    assert len(found) == 2, proc.stdout
    for lines in found.values():
        assert f"  server key   in a file: {d / 'soft/ec-p256.key'} (signs in software)" in lines, lines
        assert lines[-1] == "  signatures   0 on any token (no key is on a token)", lines

    # The same file key with the client on its token: only the client token signs, and
    # nothing else signed on any token (the line would add "other tokens N").
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", d / "soft/ec-p256.key",
                          "--client-cert", d / "certs/client-p256.pem", "--client-key", CLIENT_URI,
                          "--ca", d / "ca.pem", "--pin-source", d / "pin.txt", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lines in sections(proc.stdout).values():
        assert "  client cert  CN=client-p256,O=hsmtls sandbox (verified by the server)" in lines, lines
        assert lines[-1] == '  signatures   token "client" 1', lines


def test_demo_says_what_to_do_when_the_token_is_missing(sandbox):
    d = sandbox.dir
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", "pkcs11:token=PIV%20Card;object=x",
                          "--pin-source", d / "pin.txt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert 'token "PIV Card" is not present (looked for it for the server key pkcs11:token=PIV%20Card;object=x)' in err
    present = next(line for line in err.splitlines() if line.startswith("  tokens present: "))
    assert '"server" (libsofthsm2.so)' in present and '"client" (libsofthsm2.so)' in present, err
    for step in ("`hsmtls tokens`", "HSMTLS_PKCS11_MODULE", "plug in the card", "without\n        arguments"):
        assert step in err, err
    assert "TLS:" not in proc.stdout


def test_demo_says_when_no_token_is_there_at_all(sandbox, tmp_path):
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    proc = sandbox.hsmtls("demo", "--cert", sandbox.dir / "certs/ec-p256.pem", "--key", SERVER_URI,
                          env={"SOFTHSM2_CONF": str(conf)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'token "server" is not present' in proc.stderr, proc.stderr
    assert f"no token is present in {sandbox.env['HSMTLS_PKCS11_MODULE']}" in proc.stderr, proc.stderr

    nomodule = sandbox.hsmtls("demo", "--cert", sandbox.dir / "certs/ec-p256.pem", "--key", SERVER_URI,
                              "--module", tmp_path / "missing.so")
    assert nomodule.returncode == 1, nomodule.stderr
    assert "no token can be reached for the server key" in nomodule.stderr, nomodule.stderr
    assert f"cannot load PKCS#11 module {tmp_path / 'missing.so'}" in nomodule.stderr, nomodule.stderr


def test_demo_names_a_key_missing_from_its_token(sandbox):
    d = sandbox.dir
    uri = "pkcs11:token=server;object=no-such-key;type=private"
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", uri, "--pin-source", d / "pin.txt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f'the server key {uri} is not on token "server"' in proc.stderr, proc.stderr
    assert '"ec-p256"' in proc.stderr and "hsmtls objects --login 'pkcs11:token=server'" in proc.stderr


def test_demo_wrong_pin_is_one_line_and_one_login(sandbox, tmp_path):
    bad = tmp_path / "pin.txt"
    bad.write_text("97531")
    proc = demo_alone("--sandbox", sandbox.dir, "--pin-source", bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f'hsmtls demo: token "server" rejected the PIN from {bad} (CKR_PIN_INCORRECT); it was '
                     "not tried again, since a token locks after a few wrong PINs"], proc.stderr
    assert "97531" not in proc.stdout + proc.stderr
    # No retry loop: the trace of every PKCS#11 call shows a single C_Login.
    traced = demo_alone("--sandbox", sandbox.dir, "--pin-source", bad, env={"HSMTLS_DEBUG": "1"})
    assert traced.returncode == 1
    logins = [line for line in traced.stderr.splitlines() if line.startswith("hsmtls: C_Login =")]
    assert len(logins) == 1 and "CKR_PIN_INCORRECT" in logins[0], traced.stderr
    assert "97531" not in traced.stdout + traced.stderr


def test_demo_without_a_pin_says_where_to_give_one(sandbox):
    d = sandbox.dir
    proc = sandbox.hsmtls("demo", "--cert", d / "certs/ec-p256.pem", "--key", SERVER_URI, input="")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == ('hsmtls demo: no PIN for token "server" (the server key): give --pin-source FILE, '
                           "or run the demo on a terminal to be asked once\n"), proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--cert", "/x.pem"], "--cert and --key go together"),
    (["--client-key", "pkcs11:token=client"], "--client-cert and --client-key go together"),
    (["--sandbox"], "--sandbox needs a value"),
    (["--bogus"], "unknown option or argument --bogus"),
])
def test_demo_usage_errors(build, args, message):
    proc = demo_alone(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_demo_names_a_sandbox_script_that_cannot_run(tmp_path, build):
    proc = demo_alone("--sandbox", tmp_path / "box", env={"HSMTLS_SANDBOX_SCRIPT": str(tmp_path / "nope")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot run the sandbox script {tmp_path / 'nope'}" in proc.stderr, proc.stderr


def installed_path(name):
    """Where `cmake --install` of the build under test puts bin/NAME."""
    cache = (BUILD / "CMakeCache.txt").read_text()
    prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", cache, re.M).group(1)
    bindir = re.search(r"^CMAKE_INSTALL_BINDIR:PATH=(.*)$", cache, re.M).group(1)
    return pathlib.Path(prefix, bindir, name)  # an absolute bindir wins


def test_an_hsmtls_outside_its_build_tree_never_runs_the_source_trees_script(tmp_path, build):
    """Only an hsmtls running from its build tree uses softhsm/sandbox; any other copy
    (an installed one) runs the installed hsmtls-sandbox, even while the source tree is
    there, as the library picks the installed provider."""
    script = installed_path("hsmtls-sandbox")
    assert not script.exists(), f"{script} is installed: this test needs a prefix without hsmtls"
    copy = tmp_path / "bin" / "hsmtls"
    copy.parent.mkdir()
    shutil.copy2(BIN / "hsmtls", copy)
    env = base_env()
    env.pop("HSMTLS_SANDBOX_SCRIPT", None)
    proc = subprocess.run([str(copy), "demo", "--sandbox", str(tmp_path / "box")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot run the sandbox script {script}:" in proc.stderr, proc.stderr
    assert "softhsm/sandbox" not in proc.stdout and not (tmp_path / "box" / "env.sh").exists(), proc.stdout


def test_an_installed_sandbox_script_names_the_installed_provider(tmp_path, build):
    """hsmtls-sandbox as `cmake --install` writes it (INSTALLED_PROVIDER filled in) next
    to a ../build that holds a provider too: the installed copy's openssl.cnf names the
    installed provider."""
    text = (ROOT / "softhsm" / "sandbox").read_text()
    fmt = re.search(r"^FORMAT=(\d+)$", text, re.M).group(1)
    installed = tmp_path / "lib" / "ossl-modules" / "hsmtls.so"
    built = tmp_path / "build" / "lib" / "ossl-modules" / "hsmtls.so"
    for module in (installed, built):
        module.parent.mkdir(parents=True)
        shutil.copy2(PROVIDER, module)
    script = tmp_path / "bin" / "hsmtls-sandbox"
    script.parent.mkdir()
    assert "\nINSTALLED_PROVIDER=\n" in text
    script.write_text(text.replace("\nINSTALLED_PROVIDER=\n", f"\nINSTALLED_PROVIDER='{installed}'\n"))
    script.chmod(0o755)
    box = tmp_path / "box"
    box.mkdir()
    (box / ".complete").write_text(f"format={fmt}\n")  # reused: only openssl.cnf and env.sh are written
    env = base_env()
    env.pop("HSMTLS_PROVIDER", None)
    proc = subprocess.run([str(script), str(box)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cnf = (box / "openssl.cnf").read_text()
    assert f"module = {installed}\n" in cnf, cnf
