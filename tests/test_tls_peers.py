"""TLS with each server key against real peers, the same case with the software key and
with the token key: openssl s_server serving, openssl s_client and gnutls-cli connecting."""
import pytest

import peers

SERVER_KEYS = ["rsa2048", "rsa3072", "ec-p256", "ec-p384", "ec-p521", "ed25519"]
VERSIONS = {"1.3": "-tls1_3", "1.2": "-tls1_2"}
SOURCES = ["file", "token"]


def key_ref(box, label, source):
    """The software copy, or the token key by URI (the PIN comes from the sandbox's
    openssl.cnf, which loads the provider with the sandbox's pin-source)."""
    if source == "file":
        return box.dir / "soft" / f"{label}.key"
    token = "client" if label.startswith("client") else "server"
    return f"pkcs11:token={token};object={label};type=private"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", SERVER_KEYS)
def test_openssl_server_with_key(sandbox, label, version, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, label, source),
                                     sandbox.dir / "certs" / f"{label}.pem")
    with peers.serving(args, sandbox, port) as server:
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", VERSIONS[version])
        # -naccept reached: the server exits by itself, and cleanly (SoftHSM2 can crash
        # at exit when its sessions are torn down at the wrong moment).
        out, err = server.communicate(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == f"TLSv{version}"
    assert "Verification: OK" in proc.stderr
    assert server.returncode == 0, err


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


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256"])
def test_token_reached_through_p11_kit_remoting(sandbox, remote, label, version):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, label, "token"),
                                     sandbox.dir / "certs" / f"{label}.pem")
    env = sandbox.env_for("openssl", remote)
    with peers.serving(args, env, port):
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", VERSIONS[version])
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == f"TLSv{version}"


def test_mechanism_the_remoting_drops_is_reported(sandbox, remote):
    """p11-kit 0.24's RPC does not forward CKM_EDDSA: the server names it."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ed25519", "token"),
                                     sandbox.dir / "certs" / "ed25519.pem")
    with peers.serving(args, sandbox.env_for("openssl", remote), port) as server:
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem")
        server.kill()
        out, err = server.communicate(timeout=30)
    assert proc.returncode != 0
    assert "CKM_EDDSA" in out + err and "CKR_MECHANISM_INVALID" in out + err, out + err


def test_certificate_that_does_not_match_the_key(sandbox):
    port = peers.free_port()
    proc = sandbox.run(*peers.openssl_server_args(port, key_ref(sandbox, "rsa2048", "token"),
                                                  sandbox.dir / "certs" / "ec-p256.pem"), timeout=30)
    assert proc.returncode != 0
    assert "does not match the certificate" in proc.stdout + proc.stderr


def test_wrong_pin_one_login_attempt(sandbox):
    port = peers.free_port()
    uri = "pkcs11:token=server;object=ec-p256;type=private?pin-value=9999"
    proc = sandbox.run(*peers.openssl_server_args(port, uri, sandbox.dir / "certs" / "ec-p256.pem"),
                       env={"HSMTLS_DEBUG": "1"}, timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "CKR_PIN_INCORRECT" in out
    assert out.count("C_Login = ") == 1, out
