"""Servers that keep serving across an HSM restart, with no restart or reload of their own.

The HSM is the sandbox's server token exported by `p11-kit server` on a unix socket and
reached through p11-kit's client module, the way network HSMs are. Stopping the server
(its whole process group) and starting it again on the same socket is an HSM restart:
p11-kit's client then answers CKR_DEVICE_ERROR to every call until the module is
finalised and initialised again (FIELD-NOTES), which the core does by itself.

Each server is checked the same way: a handshake works; while the HSM is down each
handshake fails within a second, and the server says the token is unreachable; once it
is back, the first or second handshake works again."""
import os
import signal
import subprocess
import time

import pytest

import peers
from conftest import P11_KIT_CLIENT, accepts_connections

KEY_URI = "pkcs11:token=server;object=ec-p256;type=private"


class Hsm:
    """A p11-kit server exporting the sandbox's server token, stopped and started at will."""

    def __init__(self, sandbox, directory):
        self.sandbox = sandbox
        self.sock = directory / "hsm.sock"
        self.log = directory / "hsm.log"
        self.proc = None

    @property
    def env(self):
        return {"HSMTLS_PKCS11_MODULE": P11_KIT_CLIENT,
                "P11_KIT_SERVER_ADDRESS": f"unix:path={self.sock}"}

    def start(self):
        if self.sock.exists():
            self.sock.unlink()
        with open(self.log, "a") as log:
            # A session of its own: the server forks a p11-kit-remote per connection.
            self.proc = subprocess.Popen(
                ["p11-kit", "server", "-f", "-s", "--provider",
                 self.sandbox.env["HSMTLS_PKCS11_MODULE"], "-n", str(self.sock), "pkcs11:token=server"],
                env=self.sandbox.env_for("p11-kit"), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 10
        while not accepts_connections(self.sock):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.02)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def hsm(sandbox, tmp_path):
    h = Hsm(sandbox, tmp_path)
    h.start()
    yield h
    if h.proc.poll() is None:
        h.stop()


def handshake(sandbox, port):
    """One client handshake (the server's certificate verified); its time and result."""
    start = time.monotonic()
    proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", data="")
    return time.monotonic() - start, peers.handshake_summary(proc) is not None, proc


def check_across_restart(sandbox, hsm, port, server_log):
    """The three phases; server_log() reads what the server said so far."""
    took, ok, proc = handshake(sandbox, port)
    assert ok, proc.stderr + server_log()

    hsm.stop()
    for _ in range(3):
        took, ok, proc = handshake(sandbox, port)
        assert not ok, "a handshake worked with the HSM down"
        assert took < 1.0, f"a handshake took {took:.2f} s to fail while the HSM was down"
    # Stopped servers can need a moment to write their log lines out.
    deadline = time.monotonic() + 5
    while "unreachable" not in server_log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "unreachable" in server_log(), server_log()

    hsm.start()
    results = [handshake(sandbox, port)[1] for _ in range(2)]
    assert results[0] or results[1], server_log()
    # And it stays up.
    for _ in range(3):
        took, ok, proc = handshake(sandbox, port)
        assert ok, proc.stderr + server_log()


def test_openssl_s_server_recovers(sandbox, hsm, tmp_path):
    port = peers.free_port()
    log = tmp_path / "server.log"
    env = sandbox.env_for("openssl", hsm.env)
    with open(log, "w") as out:
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-www", "-naccept", "40",
             "-key", f"{KEY_URI}?pin-value=1234", "-cert", str(sandbox.dir / "certs" / "ec-p256.pem")],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            peers.wait_for_port(port, server)
            check_across_restart(sandbox, hsm, port, log.read_text)
        finally:
            server.kill()
            server.wait()


def test_hsmtls_serve_recovers(sandbox, hsm, tmp_path):
    port = peers.free_port()
    log = tmp_path / "server.log"
    with peers.hsmtls_serve(sandbox, port, KEY_URI, hsm.env, log):
        check_across_restart(sandbox, hsm, port, log.read_text)


def test_nginx_two_workers_recover_without_reload(sandbox, hsm, tmp_path):
    """The key is a key file naming the token key (nginx takes only files), loaded by the
    master before it forks its two workers; each worker recovers on its own, and both
    answer afterwards."""
    key = tmp_path / "key.pem"
    sandbox.hsmtls("keyfile", "--out", key, KEY_URI, check=True)
    port = peers.free_port()
    with peers.nginx_two_workers(sandbox, tmp_path, port, sandbox.dir / "certs" / "ec-p256.pem",
                                 key, hsm.env) as read_log:
        check_across_restart(sandbox, hsm, port, read_log)
        peers.both_nginx_workers_answer(sandbox, port, read_log)
