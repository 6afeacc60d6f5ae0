"""`hsmtls serve` and `hsmtls connect` (libhsmtls) against real peers: openssl s_client /
s_server, gnutls-cli, Python's ssl, and each other. Keys from files, and from the tokens
when the build has the provider."""
import contextlib
import socket
import ssl
import subprocess
import threading

import pytest

import peers
from conftest import BIN, assert_no_sanitizer_report

SOURCES = ["file", "token"]
VERSIONS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}
LABELS = ["rsa2048", "ec-p256", "ed25519"]


def key_ref(box, label, source):
    if source == "file":
        return str(box.dir / "soft" / f"{label}.key")
    token = "client" if label.startswith("client") else "server"
    return f"pkcs11:token={token};object={label};type=private?pin-value=1234"


def cert(box, label):
    return str(box.dir / "certs" / f"{label}.pem")


@contextlib.contextmanager
def hsmtls_serve(box, tmp_path, label, *extra, source="file", naccept=None):
    """`hsmtls serve` on a free loopback port; yields (port, proc, read_log)."""
    port = peers.free_port()
    args = [BIN / "hsmtls", "serve", "--port", port, "--bind", "127.0.0.1", "--cert", cert(box, label),
            "--key", key_ref(box, label, source), *extra]
    if naccept:
        args += ["--naccept", naccept]
    log = tmp_path / f"serve-{port}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(a) for a in args], env=box.env_for(args[0]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            peers.wait_for_port(port, proc)
            yield port, proc, log.read_text
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.communicate(timeout=30)
    text = log.read_text()
    assert "ERROR: AddressSanitizer" not in text and "ERROR: LeakSanitizer" not in text, text
    assert "runtime error:" not in text, text


def connect(box, port, *args, data="hello\n", env=None):
    proc = box.run(BIN / "hsmtls", "connect", f"127.0.0.1:{port}", *args, input=data, env=env, timeout=60)
    assert_no_sanitizer_report(proc)
    return proc


def python_client(box, port, lines, alpn=None, version=None):
    ctx = ssl.create_default_context(cafile=str(box.dir / "ca.pem"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            want = "".join(lines).encode()
            tls.sendall(want)
            got = b""
            while len(got) < len(want):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                got += chunk
            result = got.decode(), tls.version(), tls.selected_alpn_protocol()
            tls.unwrap()  # close_notify both ways: the server answers ours with its own
            return result


# ---- libhsmtls server ----

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", LABELS)
def test_serve_openssl_client(sandbox, tmp_path, label, version, source):
    with hsmtls_serve(sandbox, tmp_path, label, source=source) as (port, _, log):
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", VERSIONS[version])
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == f"TLSv{version}"
    assert "Verification: OK" in proc.stderr
    assert ("on a token" if source == "token" else "in a file") in log()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("label", LABELS)
def test_serve_python_client(sandbox, tmp_path, label, source):
    with hsmtls_serve(sandbox, tmp_path, label, "--alpn", "h2,http/1.1", source=source) as (port, _, log):
        got, version, alpn = python_client(sandbox, port, ["one\n", "two\n"], alpn=["http/1.1", "h2"])
        got12, version12, _ = python_client(sandbox, port, ["three\n"], version=ssl.TLSVersion.TLSv1_2)
    assert got == "one\ntwo\n" and version == "TLSv1.3" and alpn == "h2"
    assert got12 == "three\n" and version12 == "TLSv1.2"
    assert "ALPN h2" in log()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
def test_serve_gnutls_client(sandbox, tmp_path, version, source):
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, _log):
        proc = peers.gnutls_client(sandbox, port, sandbox.dir / "ca.pem", "--priority",
                                   "NORMAL:-VERS-ALL:+VERS-TLS" + version)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(TLS{version}" in proc.stdout and "Handshake was completed" in proc.stdout


def test_serve_many_clients_at_once(sandbox, tmp_path):
    """An idle client holds nobody up; twenty clients at once each get their own lines."""
    with hsmtls_serve(sandbox, tmp_path, "ec-p256") as (port, _, log):
        idle = socket.create_connection(("127.0.0.1", port))  # never says hello
        results, errors = {}, []

        def one(i):
            try:
                lines = [f"client {i} line {n}\n" for n in range(20)]
                results[i] = python_client(sandbox, port, lines)[0] == "".join(lines)
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        idle.close()
    assert not errors, errors
    assert len(results) == 20 and all(results.values()), results


def test_serve_ends_cleanly_after_naccept(sandbox, tmp_path):
    """--naccept: the server ends by itself, exit 0, nothing leaked (sanitizer build)."""
    with hsmtls_serve(sandbox, tmp_path, "rsa2048", naccept=2) as (port, proc, log):
        assert python_client(sandbox, port, ["bye\n"])[0] == "bye\n"
        assert proc.wait(timeout=30) == 0, log()
    assert "client 2: closed" in log() or "client 1: closed" in log(), log()


# ---- libhsmtls client ----

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("label", LABELS)
def test_connect_openssl_server(sandbox, label, version):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / f"{label}.key", cert(sandbox, label), "-rev")
    with peers.serving(args, sandbox, port):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost",
                       f"--tls{version.replace('.', '_')}", data="hello\nworld\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "olleh\ndlrow\n", proc.stdout + proc.stderr
    assert f"TLSv{version}" in proc.stderr and "verified" in proc.stderr
    assert "no client certificate" in proc.stderr


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
def test_serve_and_connect(sandbox, tmp_path, version, source):
    """libhsmtls on both ends: every byte of stdin comes back, the last reply too."""
    data = "".join(f"line {i} " + "x" * (i % 300) + "\n" for i in range(3000))
    with hsmtls_serve(sandbox, tmp_path, "ec-p384" if source == "file" else "ec-p256",
                      "--alpn", "x-echo", source=source) as (port, _, log):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost",
                       "--alpn", "x-echo", f"--tls{version.replace('.', '_')}", data=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data
    assert f"TLSv{version}" in proc.stderr and "ALPN x-echo" in proc.stderr


def test_connect_replies_arrive_while_stdin_is_open(sandbox, tmp_path):
    """Each reply reaches stdout as it arrives, not at the end: a line goes in, its echo
    comes out while stdin is still open."""
    with hsmtls_serve(sandbox, tmp_path, "ec-p256") as (port, _, _log):
        proc = subprocess.Popen([str(BIN / "hsmtls"), "connect", f"127.0.0.1:{port}", "--ca",
                                 str(sandbox.dir / "ca.pem"), "--servername", "localhost"],
                                env=sandbox.env_for(BIN / "hsmtls"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        try:
            for word in ("first", "second"):
                proc.stdin.write(word + "\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == word + "\n"
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            err = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
    assert "ERROR: AddressSanitizer" not in err and "ERROR: LeakSanitizer" not in err, err


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("client", ["client-rsa2048", "client-p256"])
def test_mutual_tls(sandbox, tmp_path, client, source):
    ca = sandbox.dir / "ca.pem"
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", "--ca", ca, "--verify-client") as (port, _, log):
        ok = connect(sandbox, port, "--ca", ca, "--servername", "localhost", "--cert", cert(sandbox, client),
                     "--key", key_ref(sandbox, client, source))
        refused = connect(sandbox, port, "--ca", ca, "--servername", "localhost")
        s_client = peers.openssl_client(sandbox, port, ca, "-cert", cert(sandbox, client),
                                        "-key", sandbox.dir / "soft" / f"{client}.key")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "hello\n"
    where = "on a token" if source == "token" else "in a file"
    assert f"client certificate CN={client}" in ok.stderr and where in ok.stderr, ok.stderr
    assert f"peer CN={client},O=hsmtls sandbox: verified" in log()
    assert refused.returncode == 1
    assert "certificate required" in refused.stderr, refused.stderr
    assert s_client.returncode == 0, s_client.stderr


def test_optional_client_certificate(sandbox, tmp_path):
    """--ca alone: a client without a certificate is served, one the CA did not issue is not."""
    ca = sandbox.dir / "ca.pem"
    key, crt = tmp_path / "self.key", tmp_path / "self.pem"
    sandbox.run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=stranger", "-days", "2", check=True)
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", "--ca", ca) as (port, _, log):
        anonymous = connect(sandbox, port, "--ca", ca, "--servername", "localhost")
        stranger = connect(sandbox, port, "--ca", ca, "--servername", "localhost", "--cert", crt, "--key", key)
    assert anonymous.returncode == 0 and anonymous.stdout == "hello\n", anonymous.stderr
    assert stranger.returncode == 1, stranger.stderr
    assert stranger.stdout == ""
    assert "self-signed certificate" in log() or "self signed certificate" in log(), log()


# ---- failures, each with a clear message and exit 1 ----

@pytest.fixture
def rev_server(sandbox):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "rsa2048.key", cert(sandbox, "rsa2048"),
                                     "-rev")
    args[args.index("-naccept") + 1] = "5"
    with peers.serving(args, sandbox, port):
        yield port


def test_connect_hostname_mismatch(sandbox, rev_server):
    proc = connect(sandbox, rev_server, "--ca", sandbox.dir / "ca.pem", "--servername", "www.example.com")
    assert proc.returncode == 1
    assert "verification error: depth 0 (CN=localhost,OU=rsa2048,O=hsmtls sandbox): hostname mismatch" in proc.stderr
    # with --no-verify the error is reported and the connection goes on
    proc = connect(sandbox, rev_server, "--ca", sandbox.dir / "ca.pem", "--servername", "www.example.com",
                   "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "olleh\n"
    assert "NOT verified" in proc.stderr and "hostname mismatch" in proc.stderr


def test_connect_untrusted_ca(sandbox, rev_server):
    proc = connect(sandbox, rev_server, "--servername", "localhost")  # system CAs only
    assert proc.returncode == 1
    assert "unable to get local issuer certificate" in proc.stderr, proc.stderr
    other = connect(sandbox, rev_server, "--ca", cert(sandbox, "ed25519"), "--servername", "localhost")
    assert other.returncode == 1
    assert "verification error: depth 0" in other.stderr


def test_connect_ip_address_is_checked(sandbox, rev_server):
    proc = connect(sandbox, rev_server, "--ca", sandbox.dir / "ca.pem")  # 127.0.0.1 is in the SANs
    assert proc.returncode == 0, proc.stderr


def test_wrong_key_for_cert(sandbox, tmp_path):
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
                          "--key", sandbox.dir / "soft" / "rsa2048.key")
    assert proc.returncode == 1
    assert "rsa2048.key does not match the certificate" in proc.stderr, proc.stderr
    proc = sandbox.hsmtls("connect", "127.0.0.1:1", "--cert", cert(sandbox, "client-p256"),
                          "--key", sandbox.dir / "soft" / "client-rsa2048.key")
    assert proc.returncode == 1
    assert "does not match the certificate" in proc.stderr, proc.stderr


@pytest.mark.parametrize("source", SOURCES)
def test_pin_source(sandbox, tmp_path, source):
    """The PIN (token) or passphrase (encrypted key file) from --pin-source; a wrong one is
    named as such and never printed."""
    pin = tmp_path / "pin.txt"
    if source == "file":
        key = tmp_path / "enc.key"
        sandbox.run("openssl", "pkey", "-in", sandbox.dir / "soft" / "ec-p256.key", "-aes256",
                    "-passout", "pass:s3cret", "-out", key, check=True)
        right, wrong = "s3cret", "nope-nope"
    else:
        key, right, wrong = "pkcs11:token=server;object=ec-p256;type=private", "1234", "9999"
    args = ["--cert", cert(sandbox, "ec-p256"), "--key", key]
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), *args)
    assert proc.returncode == 1 and "no PIN/passphrase callback" in proc.stderr, proc.stderr
    pin.write_text(wrong + "\n")
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), *args, "--pin-source", pin)
    assert proc.returncode == 1, proc.stderr
    assert f"wrong {'passphrase' if source == 'file' else 'PIN'} in the pin-source file" in proc.stderr
    assert wrong not in proc.stderr
    pin.write_text(right + "\n")
    port = peers.free_port()
    serve = [BIN / "hsmtls", "serve", "--port", port, "--bind", "127.0.0.1", *args, "--pin-source", pin]
    with peers.serving(serve, sandbox, port):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost")
    assert proc.returncode == 0 and proc.stdout == "hello\n", proc.stderr


def test_missing_token_key_is_not_called_a_wrong_pin(sandbox, tmp_path):
    """A right PIN and a label that is not on the token: the message names the missing key
    and the labels the token holds, not the PIN."""
    pin = tmp_path / "pin.txt"
    pin.write_text("1234\n")
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
                          "--key", "pkcs11:token=server;object=no-such-key;type=private", "--pin-source", pin)
    assert proc.returncode == 1, proc.stderr
    assert "wrong PIN" not in proc.stderr and "no private key matches" in proc.stderr, proc.stderr
    assert '"ec-p256"' in proc.stderr and "1234" not in proc.stderr, proc.stderr


def test_missing_files_and_refused_connections(sandbox):
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
                          "--key", sandbox.dir / "soft" / "nothing.key")
    assert proc.returncode == 1 and "nothing.key: No such file or directory" in proc.stderr, proc.stderr
    proc = connect(sandbox, peers.free_port(), "--ca", sandbox.dir / "ca.pem")
    assert proc.returncode == 1 and "cannot connect" in proc.stderr, proc.stderr
    proc = sandbox.hsmtls("connect", "no-port-here")
    assert proc.returncode == 2
    proc = sandbox.hsmtls("serve", "--port", "1", "--cert", "x")
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_plain_tcp_peer_is_a_clear_error(sandbox, tmp_path):
    """Garbage from the peer: the server logs why and keeps serving others."""
    with hsmtls_serve(sandbox, tmp_path, "ec-p256") as (port, _, log):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with contextlib.suppress(OSError):
                s.recv(100)
        assert python_client(sandbox, port, ["still here\n"])[0] == "still here\n"
    assert "TLS handshake failed: " in log()


def test_peer_closing_mid_handshake(sandbox, tmp_path):
    """Half a ClientHello, then the socket closes: a clear line in the log, and the
    server goes on serving."""
    ctx = ssl.create_default_context(cafile=str(sandbox.dir / "ca.pem"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    with hsmtls_serve(sandbox, tmp_path, "ec-p256") as (port, _, log):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(hello[: len(hello) // 2])
        assert python_client(sandbox, port, ["after\n"])[0] == "after\n"
    assert "TLS handshake: the peer closed the connection without close_notify" in log(), log()
