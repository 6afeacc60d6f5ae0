"""The provider's store beyond keys: CA certificates kept on a token, and lookups that
find nothing."""
import peers


def test_ca_certificate_from_a_token_verifies_the_server(sandbox, tmp_path):
    der = tmp_path / "ca.der"
    sandbox.run("openssl", "x509", "-in", sandbox.dir / "ca.pem", "-outform", "DER", "-out", der,
                check=True)
    module = sandbox.env["HSMTLS_PKCS11_MODULE"]
    common = ["pkcs11-tool", "--module", module, "--token-label", "scratch", "--login", "--pin", "1234"]
    sandbox.run(*common, "--delete-object", "--type", "cert", "--label", "sandbox-ca")
    sandbox.run(*common, "--write-object", der, "--type", "cert", "--label", "sandbox-ca",
                "--id", "c0", check=True)
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "ec-p256.key",
                                     sandbox.dir / "certs" / "ec-p256.pem")
    with peers.serving(args, sandbox, port):
        proc = sandbox.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-CAstore", "pkcs11:token=scratch;object=sandbox-ca;type=cert",
                           "-verify_return_error", "-verify_hostname", "localhost", "-brief",
                           input="", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Verification: OK" in proc.stderr


def test_unknown_token_names_the_tokens_present(sandbox):
    proc = sandbox.run("openssl", "pkey", "-pubout", "-in",
                       "pkcs11:token=nosuch;object=ec-p256;type=private")
    assert proc.returncode != 0
    assert "token=nosuch" in proc.stderr and '"server"' in proc.stderr and '"client"' in proc.stderr
