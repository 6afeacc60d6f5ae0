"""TLS with each server key against real peers, the same case with the software key and
with the token key: openssl s_server serving, openssl s_client and gnutls-cli connecting."""
import pytest

import peers

SERVER_KEYS = ["rsa2048", "rsa3072", "ec-p256", "ec-p384", "ec-p521", "ed25519"]
VERSIONS = {"1.3": "-tls1_3", "1.2": "-tls1_2"}
SOURCES = ["file"]


def key_ref(box, label, source):
    if source == "file":
        return box.dir / "soft" / f"{label}.key"
    return f"pkcs11:token={'client' if label.startswith('client') else 'server'};object={label};type=private?pin-value=1234"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", SERVER_KEYS)
def test_openssl_server_with_key(sandbox, label, version, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, label, source),
                                     sandbox.dir / "certs" / f"{label}.pem")
    with peers.serving(args, sandbox, port):
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", VERSIONS[version])
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == f"TLSv{version}"
    assert "Verification: OK" in proc.stderr


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("client", ["client-rsa2048", "client-p256"])
def test_mutual_tls(sandbox, client, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p256", source),
                                     sandbox.dir / "certs" / "ec-p256.pem",
                                     "-Verify", "1", "-verify_return_error",
                                     "-CAfile", sandbox.dir / "ca.pem")
    with peers.serving(args, sandbox, port) as server:
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem",
                                    "-cert", sandbox.dir / "certs" / f"{client}.pem",
                                    "-key", key_ref(sandbox, client, source))
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == "TLSv1.3"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256", "ed25519"])
def test_gnutls_client(sandbox, label, version, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, label, source),
                                     sandbox.dir / "certs" / f"{label}.pem")
    priority = "NORMAL:-VERS-ALL:+VERS-TLS" + version
    with peers.serving(args, sandbox, port):
        proc = peers.gnutls_client(sandbox, port, sandbox.dir / "ca.pem", "--priority", priority)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(TLS{version}" in proc.stdout and "Handshake was completed" in proc.stdout, proc.stdout
