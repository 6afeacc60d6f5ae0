"""The provider's hsmtls-key-cache setting: the core's key cache (token keys copied
into session objects inside the token) on or off from openssl.cnf, and a bad value
named as a configuration error."""
import pytest

KEY = "pkcs11:token=server;object=ec-p256;type=private"


@pytest.fixture
def conf_with(sandbox, tmp_path):
    """An openssl.cnf like the sandbox's, with extra lines in the provider's section."""
    def make(*lines):
        path = tmp_path / "openssl.cnf"
        path.write_text((sandbox.dir / "openssl.cnf").read_text() + "".join(f"{l}\n" for l in lines))
        return {"OPENSSL_CONF": str(path)}
    return make


def sign_and_verify(sandbox, tmp_path, env, key=KEY):
    digest, sig, pub = tmp_path / "digest", tmp_path / "sig", tmp_path / "pub.pem"
    digest.write_bytes(bytes(range(32)))
    sign = sandbox.run("openssl", "pkeyutl", "-sign", "-inkey", key, "-in", digest, "-out", sig,
                       env=env)
    assert sign.returncode == 0, sign.stderr
    sandbox.run("openssl", "pkey", "-pubout", "-in", key, "-out", pub, env=env, check=True)
    verify = sandbox.run("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", digest,
                         "-sigfile", sig, env=env)
    assert verify.returncode == 0 and "Signature Verified Successfully" in verify.stdout, \
        verify.stdout + verify.stderr
    return sign


@pytest.mark.parametrize("value", ["no", "yes", "off", "on", "0", "1", "false", "true", "No", "TRUE"])
def test_sign_works_with_the_cache_on_or_off(sandbox, tmp_path, conf_with, value):
    sign_and_verify(sandbox, tmp_path, conf_with(f"hsmtls-key-cache = {value}"))


@pytest.mark.parametrize("value,copies", [("no", False), ("yes", True)])
def test_the_setting_reaches_the_core(sandbox, tmp_path, conf_with, value, copies):
    # The core traces its PKCS#11 calls with HSMTLS_DEBUG: the cache copies the key into
    # a session object (C_CopyObject) before signing; off, the token object signs.
    env = conf_with(f"hsmtls-key-cache = {value}")
    env["HSMTLS_DEBUG"] = "1"
    env["HSMTLS_KEY_CACHE"] = "1" if value == "no" else "0"  # the setting wins over it
    sign = sign_and_verify(sandbox, tmp_path, env)
    assert ("C_CopyObject" in sign.stderr) == copies, sign.stderr


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "yes please"])
def test_bad_value_is_a_config_error_naming_it(sandbox, conf_with, value):
    proc = sandbox.run("openssl", "pkey", "-pubout", "-in", KEY,
                       env=conf_with(f"hsmtls-key-cache = {value}"))
    assert proc.returncode != 0
    assert "the hsmtls provider's configuration" in proc.stderr, proc.stderr
    assert f'hsmtls-key-cache = "{value}"' in proc.stderr, proc.stderr
