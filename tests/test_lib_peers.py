"""libhsmtls against real peers through tests/c/test_lib_peer (a small libhsmtls server
and client that print what the library reports): channel bindings, custom DH
parameters, the session cache, post-handshake client authentication, TLS 1.2
renegotiation, and expired or untrusted chains with ignore-and-resume. Each case where a
key is involved runs with the file key and with the token key."""
import contextlib
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

import peers
from conftest import BIN, assert_no_sanitizer_report
from test_lib_cli import SOURCES, cert, key_ref

PEER = BIN / "test_lib_peer"
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21


def fields(text, name):
    """Every value of "name: value" lines, in order."""
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(name + ": ")]


def field(text, name):
    got = fields(text, name)
    assert got, f"no {name!r} line in:\n{text}"
    return got[0]


def stats(text):
    """The last session-cache counters the peer printed, as a dict."""
    return {k: int(v) for k, v in (kv.split("=") for kv in fields(text, "stats")[-1].split())}


class Server:
    """test_lib_peer serve; its output once it exited (after --naccept connections)."""

    def __init__(self, proc):
        self.proc = proc
        self.out = ""


@contextlib.contextmanager
def lib_server(box, label, *extra, source="file", naccept=1):
    port = peers.free_port()
    args = [PEER, "serve", port, cert(box, label), key_ref(box, label, source), "--naccept", naccept, *extra]
    proc = subprocess.Popen([str(a) for a in args], env=box.env_for(args[0]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(proc)
    seen = ""
    try:
        while not seen.endswith(f"listening: {port}\n"):  # no probe connection: it would count
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"server did not start: {seen}")
            seen += line
        yield port, server
    finally:
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        server.out = seen + rest
        assert "ERROR: AddressSanitizer" not in rest and "ERROR: LeakSanitizer" not in rest, rest
        assert "runtime error:" not in rest, rest


def lib_client(box, port, *args, timeout=60):
    proc = box.run(PEER, "connect", port, *args, timeout=timeout)
    assert_no_sanitizer_report(proc)
    return proc


def s_client(box, port, *extra, data="hello\n"):
    """openssl s_client in full output (it prints "Reused", the keying material and the
    server's temporary key there), verifying the server."""
    return box.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                   "-CAfile", box.dir / "ca.pem", "-verify_return_error", *extra, input=data, timeout=60)


def fingerprint(box, pem, digest):
    out = box.run("openssl", "x509", "-in", pem, "-noout", "-fingerprint", f"-{digest}", check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "")


class Interactive:
    """A peer program fed line by line, its output collected as it comes."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen([str(a) for a in args], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.out = ""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.out += line

    def send(self, text):
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it ended: what it said tells why

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if re.search(pattern, self.out, re.M):
                    return True
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        return bool(re.search(pattern, self.out, re.M))

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        return self.out


def s_client_interactive(box, port, *extra):
    # -brief: the full mode dumps session tickets on stdout, through a buffer that
    # interleaves with the data it writes unbuffered
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", box.dir / "ca.pem", "-verify_return_error", "-brief", *extra]
    return Interactive(args, box.env_for("openssl"))


# ---- channel binding ----

@pytest.mark.parametrize("source", SOURCES)
def test_tls_unique_matches_python(sandbox, source):
    """Python's ssl computes tls-unique on its side of a TLS 1.2 connection."""
    ctx = ssl.create_default_context(cafile=str(sandbox.dir / "ca.pem"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with lib_server(sandbox, "ec-p256", "--tls1_2", source=source) as (port, server):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                theirs = tls.get_channel_binding("tls-unique").hex().upper()
                tls.sendall(b"hello\n")
                assert tls.recv(100) == b"hello\n"
                tls.unwrap()
    assert field(server.out, "version") == "TLSv1.2"
    assert len(theirs) == 24
    assert field(server.out, "binding tls-unique") == theirs, server.out
    assert field(server.out, "binding tls-server-end-point") == fingerprint(sandbox, cert(sandbox, "ec-p256"), "sha256")


SSL_OP_NO_EXTENDED_MASTER_SECRET = 1 << 0  # OpenSSL 3's ssl.h; Python's ssl has no name for it


def test_bindings_refused_without_extended_master_secret(sandbox):
    """A TLS 1.2 peer (Python's ssl) that does not offer RFC 7627's extended master
    secret: the server refuses tls-unique and tls-exporter (RFC 9266 section 3, triple
    handshake), though Python would hand out its tls-unique; tls-server-end-point
    stays."""
    ctx = ssl.create_default_context(cafile=str(sandbox.dir / "ca.pem"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
    with lib_server(sandbox, "ec-p256", "--tls1_2") as (port, server):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert len(tls.get_channel_binding("tls-unique")) == 12
                tls.sendall(b"hello\n")
                assert tls.recv(100) == b"hello\n"
                tls.unwrap()
    assert field(server.out, "version") == "TLSv1.2"
    for kind in ("tls-unique", "tls-exporter"):
        value = field(server.out, f"binding {kind}")
        assert value.startswith("error") and "no extended master secret" in value, server.out
    assert field(server.out, "binding tls-server-end-point") == fingerprint(sandbox, cert(sandbox, "ec-p256"), "sha256")


def test_tls_unique_client_matches_python_server(sandbox):
    """The client's side: Python's ssl serves, our client computes the same value."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert(sandbox, "rsa2048"), sandbox.dir / "soft" / "rsa2048.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got = {}

    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            got["unique"] = tls.get_channel_binding("tls-unique").hex().upper()
            tls.sendall(tls.recv(100))
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem")
    t.join(timeout=30)
    listener.close()
    assert proc.returncode == 0, proc.stdout
    assert field(proc.stdout, "reply") == "hello"
    assert field(proc.stdout, "binding tls-unique") == got["unique"], proc.stdout
    assert field(proc.stdout, "binding tls-server-end-point") == fingerprint(sandbox, cert(sandbox, "rsa2048"), "sha256")


def keying_material(text):
    m = re.search(r"Keying material: ([0-9A-F]+)", text)
    assert m, text
    return m.group(1)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_exporter_matches_openssl_client(sandbox, version, source):
    with lib_server(sandbox, "ec-p256", f"--tls1_{version[-1]}", source=source) as (port, server):
        proc = s_client(sandbox, port, "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32")
    assert proc.returncode == 0, proc.stderr
    assert field(server.out, "version") == f"TLSv{version}"
    assert field(server.out, "binding tls-exporter") == keying_material(proc.stdout), server.out
    unique = field(server.out, "binding tls-unique")
    if version == "1.3":
        assert unique.startswith("error") and "TLS 1.2 only" in unique
    else:
        assert re.fullmatch("[0-9A-F]{24}", unique)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_exporter_matches_openssl_server(sandbox, version, source):
    port = peers.free_port()
    # not -rev or -quiet: the keying material is in the connection report of the plain mode
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p384", source), cert(sandbox, "ec-p384"),
                                     "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32")
    args.remove("-quiet")
    with peers.serving(args, sandbox, port) as server:
        proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem", f"--tls1_{version[-1]}", "--no-replies")
        out, _ = server.communicate(timeout=30)
    assert proc.returncode == 0, proc.stdout
    assert field(proc.stdout, "binding tls-exporter") == keying_material(out), proc.stdout
    assert field(proc.stdout, "binding tls-server-end-point") == fingerprint(sandbox, cert(sandbox, "ec-p384"), "sha256")


# ---- DH parameters ----

@pytest.fixture(scope="module")
def dhparams(sandbox, tmp_path_factory):
    d = tmp_path_factory.mktemp("dh")
    # DSA-style generation: a 3072-bit prime in a second, unlike a safe prime
    sandbox.run("openssl", "dhparam", "-dsaparam", "-out", d / "dh3072.pem", "3072", check=True)
    sandbox.run("openssl", "dhparam", "-dsaparam", "-out", d / "dh512.pem", "512", check=True)
    sandbox.run("openssl", "dhparam", "-dsaparam", "-out", d / "dh1024.pem", "1024", check=True)
    return d


def temp_key(text):
    m = re.search(r"Server Temp Key: (.*)", text)
    assert m, text
    return m.group(1).strip()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("how,expect_bits,expect_name", [("default", 2048, "ffdhe2048"),
                                                         ("group", 4096, "ffdhe4096"),
                                                         ("file", 3072, "custom")])
def test_dhe_parameters_openssl_client(sandbox, dhparams, how, expect_bits, expect_name, source):
    extra = {"default": [], "group": ["--dh-group", "ffdhe4096"],
             "file": ["--dhparams", dhparams / "dh3072.pem"]}[how]
    suite = "DHE-RSA-AES128-GCM-SHA256"
    with lib_server(sandbox, "rsa2048", "--tls1_2", "--ciphers", suite, *extra, source=source) as (port, server):
        proc = s_client(sandbox, port, "-tls1_2", "-cipher", suite)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert temp_key(proc.stdout) == f"DH, {expect_bits} bits"
    assert field(server.out, "dh") == f"{expect_name} {expect_bits}"
    assert field(server.out, "cipher") == suite
    assert field(server.out, "ephemeral").endswith(f" {expect_bits}"), server.out


@pytest.mark.parametrize("bad,message", [("missing", "no such file"), ("cert", "no PEM DH PARAMETERS found"),
                                         ("small", "a 512-bit prime is too small (2048 bits at least)"),
                                         # upstream OpenSSL's security level 1 takes this one
                                         # (Debian's build, level 2, says "dh key too small")
                                         ("1024", "a 1024-bit prime is too small (2048 bits at least)")])
def test_dh_parameters_bad_file(sandbox, dhparams, bad, message):
    path = {"missing": dhparams / "nothing.pem", "cert": cert(sandbox, "rsa2048"),
            "small": dhparams / "dh512.pem", "1024": dhparams / "dh1024.pem"}[bad]
    proc = sandbox.run(PEER, "serve", peers.free_port(), cert(sandbox, "rsa2048"),
                       sandbox.dir / "soft" / "rsa2048.key", "--dhparams", path, timeout=30)
    assert proc.returncode == 1
    assert message in proc.stdout and str(path) in proc.stdout, proc.stdout


# ---- the session cache: resumption by session ID ----

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("cache", ["server", "off"])
def test_session_id_resumption_openssl_client(sandbox, tmp_path, cache, source):
    sess = tmp_path / "sess.pem"
    with lib_server(sandbox, "ec-p256", "--no-tickets", "--cache", cache, naccept=2,
                    source=source) as (port, server):
        first = s_client(sandbox, port, "-tls1_2", "-no_ticket", "-sess_out", sess)
        second = s_client(sandbox, port, "-tls1_2", "-no_ticket", *(["-sess_in", sess] if sess.exists() else []))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "New, TLSv1.2" in first.stdout
    if cache == "off":
        # no cache, no tickets: the server gives no session ID, nothing to keep
        assert re.search(r"Session-ID: *\n", first.stdout), first.stdout
        assert not sess.exists()
    assert fields(server.out, "reused") == (["0", "1"] if cache == "server" else ["0", "0"]), server.out
    counters = stats(server.out)
    if cache == "server":
        assert "Reused, TLSv1.2" in second.stdout, second.stdout
        assert counters["hits"] == 1 and counters["number"] == 1, counters
    else:
        assert "New, TLSv1.2" in second.stdout, second.stdout
        assert counters["hits"] == 0 and counters["number"] == 0, counters
    assert counters["accept_good"] == 2


# ---- post-handshake client authentication (TLS 1.3) ----

@pytest.mark.parametrize("source", SOURCES)
def test_post_handshake_auth_openssl_client(sandbox, source):
    """The server asks after the handshake; s_client answers with its key from a file or
    from the client token (through the provider, as openssl.cnf loads it)."""
    client_key = key_ref(sandbox, "client-p256", source)
    with lib_server(sandbox, "ec-p256", "--tls1_3", "--pha", "--ca", sandbox.dir / "ca.pem") as (port, server):
        c = s_client_interactive(sandbox, port, "-tls1_3", "-enable_pha", "-cert", cert(sandbox, "client-p256"),
                                 "-key", client_key)
        c.send("hello\n")
        assert c.wait_for(r"^hello$"), c.out
        c.send("again\n")
        assert c.wait_for(r"^again$"), c.out
        out = c.close()
    assert c.proc.returncode == 0, out
    lines = server.out.splitlines()
    # no certificate in the handshake; one after the request
    peer_at = next(i for i, line in enumerate(lines) if line.startswith("peer: "))
    assert lines[peer_at - 1] == "received: again", server.out
    assert field(server.out, "peer") == "CN=client-p256,O=hsmtls sandbox verified", server.out


def test_post_handshake_auth_client_that_does_not_offer_it(sandbox):
    with lib_server(sandbox, "ec-p256", "--tls1_3", "--pha", "--ca", sandbox.dir / "ca.pem") as (port, server):
        proc = s_client(sandbox, port, "-tls1_3", "-cert", cert(sandbox, "client-p256"),
                        "-key", sandbox.dir / "soft" / "client-p256.key")
    assert proc.returncode == 0
    assert "client must offer it" in field(server.out, "pha-error"), server.out
    assert not fields(server.out, "peer")


# ---- TLS 1.2 renegotiation ----

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("allowed", [True, False])
def test_renegotiation_by_openssl_client(sandbox, allowed, source):
    """s_client's R command against a libhsmtls server that allows it, or refuses."""
    extra = ["--renegotiation"] if allowed else []
    with lib_server(sandbox, "rsa2048", "--tls1_2", *extra, source=source) as (port, server):
        c = s_client_interactive(sandbox, port, "-tls1_2")
        c.send("hello\n")
        assert c.wait_for(r"^hello$"), c.out
        c.send("R\n")
        assert c.wait_for("RENEGOTIATING"), c.out
        c.send("again\n")
        renegotiated = c.wait_for(r"^again$", timeout=10)
        out = c.close()
    # OpenSSL counts a renegotiation begun, refused or not
    assert stats(server.out)["accept_renegotiate"] == 1, server.out
    if allowed:
        assert renegotiated, out + server.out
        assert "closed:" not in server.out
    else:
        assert not renegotiated
        assert "no renegotiation" in out, out
        assert "closed:" in server.out, server.out


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("allowed", [True, False])
def test_renegotiation_with_openssl_server(sandbox, allowed, source):
    """Our client renegotiates with s_server, which allows client renegotiation only
    when told (-client_renegotiation)."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "rsa2048", source), cert(sandbox, "rsa2048"), "-rev",
                                     "-tls1_2", *(["-client_renegotiation"] if allowed else []))
    with peers.serving(args, sandbox, port):
        proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--tls1_2", "--renegotiation",
                          "--renegotiate", "--send", "hello", "--send", "again")
    if allowed:
        assert proc.returncode == 0, proc.stdout
        assert fields(proc.stdout, "reply") == ["olleh", "niaga"]
        assert field(proc.stdout, "renegotiate-pending") == "0"
        assert stats(proc.stdout)["connect_renegotiate"] == 1, proc.stdout
        # a new handshake, so new Finished messages: tls-unique changes, the exporter too
        assert len(set(fields(proc.stdout, "binding tls-unique"))) == 2, proc.stdout
    else:
        assert proc.returncode == 1
        assert "no renegotiation" in proc.stdout, proc.stdout


# ---- expired and untrusted chains: errors named, ignored, resumed ----

@pytest.fixture(scope="module")
def expired_cert(sandbox, tmp_path_factory):
    """certs/ec-p256.pem's key (so the token key serves it too) in a certificate from the
    sandbox CA whose validity ended in 2020, signed with SHA-384."""
    d = tmp_path_factory.mktemp("expired")
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    cnf = d / "ca.cnf"
    cnf.write_text(f"""[ ca ]
default_ca = CA_default
[ CA_default ]
database = {d / 'index.txt'}
new_certs_dir = {d}
serial = {d / 'serial'}
certificate = {sandbox.dir / 'ca.pem'}
private_key = {sandbox.dir / 'ca.key'}
default_md = sha384
policy = policy_any
copy_extensions = copy
[ policy_any ]
organizationName = optional
organizationalUnitName = optional
commonName = supplied
""")
    csr = d / "expired.csr"
    sandbox.run("openssl", "req", "-new", "-key", sandbox.dir / "soft" / "ec-p256.key", "-subj",
                "/O=hsmtls sandbox/OU=expired/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-out", csr, check=True)
    pem = d / "expired.pem"
    sandbox.run("openssl", "ca", "-config", cnf, "-batch", "-notext", "-in", csr, "-out", pem,
                "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", check=True)
    return pem


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("ignore", [True, False])
def test_expired_server_certificate(sandbox, expired_cert, ignore, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p256", source), expired_cert, "-rev")
    with peers.serving(args, sandbox, port):
        proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--interrupt",
                          *(["--ignore", str(X509_V_ERR_CERT_HAS_EXPIRED)] if ignore else []))
    err = field(proc.stdout, "verify-error")
    assert err.startswith(f"{X509_V_ERR_CERT_HAS_EXPIRED} 0 depth 0 (CN=localhost,OU=expired,O=hsmtls sandbox): "
                          "certificate has expired"), proc.stdout
    assert err.endswith("| cert CN=localhost,OU=expired,O=hsmtls sandbox")
    assert "paused: TLS handshake: paused on 1 verification error(s)" in proc.stdout
    if ignore:
        assert proc.returncode == 0, proc.stdout
        assert field(proc.stdout, "reply") == "olleh"
        assert field(proc.stdout, "peer") == "CN=localhost,OU=expired,O=hsmtls sandbox NOT verified"
        # the expired certificate is signed with SHA-384: its end point is hashed so
        assert field(proc.stdout, "binding tls-server-end-point") == fingerprint(sandbox, expired_cert, "sha384")
    else:
        assert proc.returncode == 1
        assert "certificate has expired" in field(proc.stdout, "handshake-error"), proc.stdout


@pytest.mark.parametrize("source", SOURCES)
def test_expired_server_certificate_without_pause(sandbox, expired_cert, source):
    """VERIFY mode without interrupting: the handshake fails, the message names the
    error and the certificate."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p256", source), expired_cert, "-rev")
    with peers.serving(args, sandbox, port):
        proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem")
    assert proc.returncode == 1
    assert "depth 0 (CN=localhost,OU=expired,O=hsmtls sandbox): certificate has expired" in field(proc.stdout, "handshake-error")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("ignore", [True, False])
def test_untrusted_server_chain(sandbox, ignore, source):
    """The client trusts another CA (an unrelated self-signed certificate)."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p256", source), cert(sandbox, "ec-p256"), "-rev")
    code = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    leaf = X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
    with peers.serving(args, sandbox, port):
        proc = lib_client(sandbox, port, "--ca", cert(sandbox, "ed25519"), "--interrupt",
                          *(["--ignore", str(code), "--ignore", str(leaf)] if ignore else []))
    errors = fields(proc.stdout, "verify-error")
    subject = "CN=localhost,OU=ec-p256,O=hsmtls sandbox"
    assert errors[0] == f"{code} 0 depth 0 ({subject}): unable to get local issuer certificate | cert {subject}"
    assert errors[1] == f"{leaf} 0 depth 0 ({subject}): unable to verify the first certificate | cert {subject}"
    if ignore:
        assert proc.returncode == 0 and field(proc.stdout, "reply") == "olleh", proc.stdout
    else:
        assert proc.returncode == 1 and "unable to get local issuer" in field(proc.stdout, "handshake-error")


# ---- host names in the common name only ----

@pytest.fixture(scope="module")
def cn_only_cert(sandbox, tmp_path_factory):
    """certs/ec-p256.pem's key in a certificate from the sandbox CA naming localhost in
    its subject's CN only, with no subjectAltName."""
    d = tmp_path_factory.mktemp("cn")
    csr, pem = d / "cn.csr", d / "cn.pem"
    sandbox.run("openssl", "req", "-new", "-key", sandbox.dir / "soft" / "ec-p256.key", "-subj",
                "/O=hsmtls sandbox/OU=cn-only/CN=localhost", "-out", csr, check=True)
    sandbox.run("openssl", "x509", "-req", "-in", csr, "-CA", sandbox.dir / "ca.pem", "-CAkey",
                sandbox.dir / "ca.key", "-days", "2", "-out", pem, check=True)
    text = sandbox.run("openssl", "x509", "-in", pem, "-noout", "-text", check=True).stdout
    assert "Subject Alternative Name" not in text
    return pem


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("fallback", [False, True])
def test_common_name_fallback(sandbox, cn_only_cert, fallback, source):
    """RFC 6125: off by default, the CN does not name the host; on, it does."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, key_ref(sandbox, "ec-p256", source), cn_only_cert, "-rev")
    with peers.serving(args, sandbox, port):
        proc = lib_client(sandbox, port, "--ca", sandbox.dir / "ca.pem", *(["--cn-fallback"] if fallback else []))
    if fallback:
        assert proc.returncode == 0 and field(proc.stdout, "reply") == "olleh", proc.stdout
        assert field(proc.stdout, "peer") == "CN=localhost,OU=cn-only,O=hsmtls sandbox verified"
    else:
        assert proc.returncode == 1
        assert "hostname mismatch" in field(proc.stdout, "handshake-error"), proc.stdout
