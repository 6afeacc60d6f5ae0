"""The provider's openssl.cnf settings beyond module and PIN: pkcs11-login and
pkcs11-operations, and what a bad value says."""
import pytest

KEY = "pkcs11:token=server;object=rsa2048;type=private"


@pytest.fixture
def conf_with(sandbox, tmp_path):
    """An openssl.cnf like the sandbox's, with extra lines in the provider's section."""
    def make(*lines):
        path = tmp_path / "openssl.cnf"
        path.write_text((sandbox.dir / "openssl.cnf").read_text() + "".join(f"{l}\n" for l in lines))
        return {"OPENSSL_CONF": str(path)}
    return make


def encrypt_to_token_key(sandbox, tmp_path):
    pub, msg, ct = tmp_path / "pub.pem", tmp_path / "msg", tmp_path / "ct"
    msg.write_text("for the token's eyes only\n")
    sandbox.run("openssl", "pkey", "-pubout", "-in", KEY, "-out", pub, check=True)
    sandbox.run("openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", pub, "-in", msg, "-out", ct,
                check=True)
    return ct


def test_operations_limit_what_the_provider_offers(sandbox, tmp_path, conf_with):
    ct = encrypt_to_token_key(sandbox, tmp_path)
    full = sandbox.run("openssl", "pkeyutl", "-decrypt", "-inkey", KEY, "-in", ct)
    assert full.returncode == 0 and full.stdout == "for the token's eyes only\n", full.stderr
    limited = conf_with("pkcs11-operations = store, sign")
    proc = sandbox.run("openssl", "pkeyutl", "-decrypt", "-inkey", KEY, "-in", ct, env=limited)
    assert proc.returncode != 0 and "operation not supported" in proc.stderr, proc.stderr
    sig = tmp_path / "sig"
    (tmp_path / "digest").write_bytes(b"\x01" * 32)
    proc = sandbox.run("openssl", "pkeyutl", "-sign", "-inkey", KEY, "-in", tmp_path / "digest",
                       "-out", sig, env=limited)
    assert proc.returncode == 0, proc.stderr


def test_login_never_keeps_private_keys_out_of_reach(sandbox, conf_with):
    proc = sandbox.run("openssl", "pkey", "-pubout", "-in", KEY, env=conf_with("pkcs11-login = never"))
    assert proc.returncode != 0
    assert "no private key matches" in proc.stderr, proc.stderr


def test_login_always_logs_in_for_a_certificate(sandbox, conf_with):
    env = conf_with("pkcs11-login = always")
    env["HSMTLS_DEBUG"] = "1"
    proc = sandbox.run("openssl", "storeutl", "-certs", "pkcs11:token=server;object=ec-p256;type=cert",
                       env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("C_Login = CKR_OK") == 1, proc.stderr


@pytest.mark.parametrize("line,named", [("pkcs11-login = sometimes", 'pkcs11-login = "sometimes"'),
                                        ("pkcs11-operations = sign,teleport", '"teleport"')])
def test_bad_setting_is_named_on_use(sandbox, conf_with, line, named):
    proc = sandbox.run("openssl", "pkey", "-pubout", "-in", KEY, env=conf_with(line))
    assert proc.returncode != 0
    assert "the hsmtls provider's configuration" in proc.stderr and named in proc.stderr, proc.stderr
