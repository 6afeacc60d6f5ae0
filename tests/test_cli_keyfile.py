"""`hsmtls keyfile`: a PEM key file that names a token key, without its PIN."""
import base64
import re


def der_of(pem):
    body = re.search(r"-----BEGIN PKCS#11 PROVIDER URI-----\n(.*)-----END PKCS#11 PROVIDER URI-----",
                     pem, re.S)
    assert body, pem
    return base64.b64decode(body.group(1))


def test_keyfile_holds_the_uri_without_pin(sandbox, tmp_path):
    out = tmp_path / "ec-p256.pem"
    uri = "pkcs11:token=server;object=ec-p256;type=private?pin-value=1234&module-name=softhsm2"
    proc = sandbox.hsmtls("keyfile", "--out", out, uri)
    assert proc.returncode == 0, proc.stderr
    assert "PIN is not written" in proc.stderr
    der = der_of(out.read_text())
    assert b"PKCS#11 Provider URI v1.0" in der
    # Key files may not choose the module either (issue 12): dropped, and said so.
    assert "module-name dropped" in proc.stderr
    assert b"pkcs11:token=server;object=ec-p256;type=private" in der
    assert b"1234" not in der and b"pin-value" not in der and b"module-name" not in der
    # openssl reads the structure: a VisibleString and a UTF8String in a SEQUENCE.
    parsed = sandbox.run("openssl", "asn1parse", "-in", out, check=True).stdout
    assert "VISIBLESTRING" in parsed and "UTF8STRING" in parsed


def test_keyfile_without_pin_checks_the_label(sandbox):
    proc = sandbox.hsmtls("keyfile", "pkcs11:token=server;object=rsa2048;type=private")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("-----BEGIN PKCS#11 PROVIDER URI-----")
    proc = sandbox.hsmtls("keyfile", "pkcs11:token=server;object=rsa2049")
    assert proc.returncode == 1
    assert "object=rsa2049" in proc.stderr and '"rsa2048"' in proc.stderr
    assert proc.stdout == ""
