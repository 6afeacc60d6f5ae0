"""Real TLS peers for the tests: openssl s_server/s_client, gnutls-cli, on loopback.
Every server is bounded in time and accepts a bounded number of connections."""
import contextlib
import re
import signal
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


NGINX_TWO_WORKERS = """
daemon off;
master_process on;
worker_processes 2;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        # reuseport: the kernel spreads connections over both workers' sockets.
        listen 127.0.0.1:{port} ssl reuseport;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "hello from nginx worker $pid\\n"; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_two_workers(box, directory, port, cert, key, env):
    """nginx with a master and two workers (the key loaded by the master before it
    forks them), serving on port; yields a function that reads its error log."""
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_TWO_WORKERS.format(dir=directory, port=port, cert=cert, key=key))
    log = directory / "error.log"
    server = subprocess.Popen(["/usr/sbin/nginx", "-p", str(directory), "-c", str(conf)],
                              env=box.env_for("nginx", env), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        yield lambda: log.read_text() if log.exists() else ""
    finally:
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def both_nginx_workers_answer(box, port, read_log):
    """Handshakes until each of the two workers has answered one (at most 40): every one
    must work."""
    workers = set()
    for _ in range(40):
        proc = openssl_client(box, port, box.dir / "ca.pem", "-ign_eof", data="GET / HTTP/1.0\r\n\r\n")
        assert handshake_summary(proc), proc.stderr + read_log()
        workers.update(re.findall(r"hello from nginx worker (\d+)", proc.stdout))
        if len(workers) == 2:
            return
    raise AssertionError(f"only workers {workers} answered:\n{read_log()}")


@contextlib.contextmanager
def hsmtls_serve(box, port, key, env, log, naccept=400):
    """`hsmtls serve` with the sandbox's ec-p256 certificate and `key`, its output in log."""
    from conftest import BIN
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "hsmtls"), "serve", "--port", str(port), "--naccept", str(naccept),
             "--cert", str(box.dir / "certs" / "ec-p256.pem"), "--key", key,
             "--pin-source", str(box.dir / "pin.txt")],
            env=box.env_for(BIN / "hsmtls", env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, server)
            yield server
        finally:
            server.kill()
            server.wait()
