"""`hsmtls tokens` and `hsmtls objects` against the sandbox, good input and bad."""
import re

SERVER_LABELS = ["ec-p256", "ec-p384", "ec-p521", "ed25519", "ed448", "rsa2048", "rsa3072"]


def object_uris(stdout):
    return [line.strip() for line in stdout.splitlines() if line.startswith("  pkcs11:")]


def test_tokens_lists_both_tokens(sandbox):
    proc = sandbox.hsmtls("tokens")
    assert proc.returncode == 0, proc.stderr
    assert 'token "server"' in proc.stdout and 'token "client"' in proc.stdout
    assert "login-required" in proc.stdout
    assert re.search(r"uri: pkcs11:.*token=server", proc.stdout)


def test_tokens_filtered_by_uri(sandbox):
    proc = sandbox.hsmtls("tokens", "pkcs11:token=client")
    assert proc.returncode == 0
    assert 'token "client"' in proc.stdout and 'token "server"' not in proc.stdout


def test_objects_lists_every_key_and_certificate(sandbox):
    proc = sandbox.hsmtls("objects", "pkcs11:token=server?pin-value=1234")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if not line.startswith("  ")]
    seen = {(row[0], next(f for f in row if f.startswith("label=")).split("=", 1)[1]) for row in rows}
    for label in SERVER_LABELS:
        for kind in ("private-key", "public-key", "certificate"):
            assert (kind, label) in seen, f"{kind} {label} missing:\n{proc.stdout}"
    assert len(rows) == 3 * len(SERVER_LABELS)
    assert "RSA     3072" in proc.stdout and "ED25519" in proc.stdout and "P-521" in proc.stdout


def test_each_listed_uri_finds_the_same_object(sandbox):
    listing = sandbox.hsmtls("objects", "pkcs11:token=server?pin-value=1234")
    uris = object_uris(listing.stdout)
    assert len(uris) == 3 * len(SERVER_LABELS)
    for uri in uris:
        proc = sandbox.hsmtls("objects", uri + "?pin-value=1234")
        assert proc.returncode == 0, proc.stderr
        assert object_uris(proc.stdout) == [uri]


def test_without_pin_only_public_objects(sandbox):
    proc = sandbox.hsmtls("objects", "pkcs11:token=server")
    assert proc.returncode == 0
    assert "private-key" not in proc.stdout
    assert proc.stdout.count("certificate") == len(SERVER_LABELS)
    assert "listed only after login" in proc.stderr


def test_pin_source_and_login_prompt(sandbox):
    proc = sandbox.hsmtls("objects", "--pin-source", sandbox.dir / "pin.txt", "pkcs11:token=client;type=private")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("private-key") == 2
    proc = sandbox.hsmtls("objects", "--login", "pkcs11:token=client;object=client-p256;type=private", input="1234\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("private-key") == 1


def test_registry_finds_module_by_name(sandbox):
    # No HSMTLS_PKCS11_MODULE: p11-kit's registry (Debian registers SoftHSM2) finds it.
    proc = sandbox.hsmtls("objects", "pkcs11:token=server;object=ec-p256;type=cert?module-name=softhsm2",
                          env={"HSMTLS_PKCS11_MODULE": None})
    assert proc.returncode == 0, proc.stderr
    assert len(object_uris(proc.stdout)) == 1


def test_malformed_uri_is_named_and_pin_masked(sandbox):
    proc = sandbox.hsmtls("objects", "pkcs11:token=server;objct=x?pin-value=s3cret")
    assert proc.returncode == 1
    assert 'unknown attribute "objct"' in proc.stderr or "objct" in proc.stderr
    assert "pin-value=***" in proc.stderr and "s3cret" not in proc.stderr
    proc = sandbox.hsmtls("objects", "pkcs11:object=%zz")
    assert proc.returncode == 1 and "percent" in proc.stderr and "object" in proc.stderr


def test_unknown_token_and_object_say_what_exists(sandbox):
    proc = sandbox.hsmtls("objects", "pkcs11:token=nosuch")
    assert proc.returncode == 1
    assert "token=nosuch" in proc.stderr and '"server"' in proc.stderr and '"client"' in proc.stderr
    proc = sandbox.hsmtls("objects", "pkcs11:token=server;object=nosuch")
    assert proc.returncode == 1 and "nothing matches" in proc.stderr


def test_wrong_pin_one_login_attempt_pin_never_printed(sandbox):
    proc = sandbox.hsmtls("objects", "pkcs11:token=client;type=private?pin-value=9876",
                          env={"HSMTLS_DEBUG": "1"})
    assert proc.returncode == 1
    assert "CKR_PIN_INCORRECT" in proc.stderr and '"client"' in proc.stderr
    assert "9876" not in proc.stderr + proc.stdout
    assert proc.stderr.count("C_Login") == 1


def test_missing_module_names_the_path(sandbox):
    proc = sandbox.hsmtls("tokens", env={"HSMTLS_PKCS11_MODULE": "/nonexistent/libnone.so"})
    assert proc.returncode == 1 and "/nonexistent/libnone.so" in proc.stderr


def test_usage_errors_exit_2(sandbox):
    assert sandbox.hsmtls("frobnicate").returncode == 2
    assert sandbox.hsmtls("objects").returncode == 2
    assert sandbox.hsmtls("objects", "--bogus", "pkcs11:").returncode == 2
    assert sandbox.hsmtls("--help").returncode == 0
