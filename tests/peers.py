"""Real TLS peers for the tests: openssl s_server/s_client, gnutls-cli, on loopback.
Every server is bounded in time and accepts a bounded number of connections."""
import contextlib
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"server exited {proc.returncode} before listening:\n{out}\n{err}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


@contextlib.contextmanager
def serving(args, env, port, timeout=60):
    """Starts a server command, waits until it listens, yields the Popen, and ends it.
    `env` is a dict, or the sandbox (then its environment for that program)."""
    if hasattr(env, "env_for"):
        env = env.env_for(args[0])
    proc = subprocess.Popen([str(a) for a in args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=timeout)


def openssl_server_args(port, key, cert, *extra):
    # -naccept bounds the server; the readiness probe of wait_for_port is one accept.
    return ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-key", key, "-cert", cert,
            "-naccept", "2", "-quiet", *extra]


def openssl_client(box, port, ca, *extra, env=None, data="hello\n"):
    """s_client that verifies the server and fails on any verification error."""
    return box.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                   "-CAfile", ca, "-verify_return_error", "-verify_hostname", "localhost", "-brief",
                   *extra, input=data, env=env, timeout=60)


def gnutls_client(box, port, ca, *extra, env=None, data="hello\n"):
    return box.run("gnutls-cli", "--x509cafile", str(ca), "-p", str(port), *extra, "localhost",
                   input=data, env=env, timeout=60)


def handshake_summary(proc):
    """The protocol s_client -brief reports ("TLSv1.3"), or None if it did not connect."""
    for line in proc.stderr.splitlines():
        if line.startswith("Protocol version:"):
            return line.split(":", 1)[1].strip()
    return None
