"""DTLS (issue 6): the library's API test, `hsmtls dtls-serve` and `hsmtls dtls-connect`
against openssl s_client/s_server -dtls1_2, gnutls-cli --udp and each other, with the
server key in a file and on the token; mutual DTLS with the client key on the client
token; several clients on one socket; a lossy relay; the MTU hint; the cookie exchange
and bad datagrams."""
import contextlib
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

import peers
from conftest import BIN, assert_no_sanitizer_report, c_cases

SOURCES = ["file", "token"]


def key_ref(box, label, source, pin=True):
    if source == "file":
        return str(box.dir / "soft" / f"{label}.key")
    token = "client" if label.startswith("client") else "server"
    return f"pkcs11:token={token};object={label};type=private" + ("?pin-value=1234" if pin else "")


def cert(box, label):
    return str(box.dir / "certs" / f"{label}.pem")


def assert_clean_text(text):
    assert "ERROR: AddressSanitizer" not in text and "ERROR: LeakSanitizer" not in text, text
    assert "runtime error:" not in text, text


@contextlib.contextmanager
def dtls_serve(box, tmp_path, label="ec-p256", *extra, source="file"):
    """`hsmtls dtls-serve` on a free loopback port; yields (port, proc, read_log). The
    server is ended with SIGTERM and must exit cleanly."""
    port = peers.free_port()
    args = [BIN / "hsmtls", "dtls-serve", "--port", port, "--cert", cert(box, label),
            "--key", key_ref(box, label, source), *extra]
    log = tmp_path / f"dtls-serve-{port}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(a) for a in args], env=box.env_for(args[0]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            ready = proc.stdout.readline()
            assert ready.startswith("listening on"), (ready, log.read_text())
            yield port, proc, log.read_text
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.communicate(timeout=30)
    text = log.read_text()
    assert_clean_text(text)
    assert proc.returncode == 0, text


def dtls_connect(box, port, *args, data="hello\n", timeout=60, host="127.0.0.1"):
    proc = box.run(BIN / "hsmtls", "dtls-connect", f"{host}:{port}", *args, input=data, timeout=timeout)
    assert_no_sanitizer_report(proc)
    return proc


def ca(box):
    return str(box.dir / "ca.pem")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", c_cases("test_dtls"))
def test_lib_dtls_api(sandbox, case, source):
    """tests/c/test_dtls.c's cases, with the server key in a file and on the token."""
    proc = sandbox.run(BIN / "test_dtls", sandbox.dir, case, key_ref(sandbox, "ec-p256", source), timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout


@pytest.mark.parametrize("source", SOURCES)
def test_serve_openssl_client(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        proc = sandbox.run("openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                           "-CAfile", ca(sandbox), "-verify_return_error", "-verify_hostname", "localhost",
                           "-brief", input="hello over dtls\n", timeout=60)
        # s_client ends at stdin's end, maybe before the echo: it must have verified us
        assert "Verification: OK" in proc.stderr, proc.stderr
        assert "Protocol version: DTLSv1.2" in proc.stderr, proc.stderr
        # (the server counts echoes only in its closing line: wait for the peer's end,
        # after which nothing more is echoed)
        deadline = time.monotonic() + 10
        while ": closed" not in log() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "DTLSv1.2" in log() and "1 hello-verify-requests" in log(), log()


@pytest.mark.parametrize("source", SOURCES)
def test_serve_gnutls_client(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        # GnuTLS needs no openssl.cnf here (and must not get the sanitizer preload)
        proc = sandbox.run("gnutls-cli", "--udp", "--x509cafile", ca(sandbox), "-p", str(port),
                           "--verify-hostname", "localhost", "127.0.0.1", input="hello gnutls\n",
                           env={"OPENSSL_CONF": None, "LD_PRELOAD": None}, timeout=60)
        assert "Handshake was completed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "1 handshakes" in log(), log()


def udp_bound(port):
    """Whether a UDP socket is bound to 127.0.0.1:port (Linux's /proc/net/udp)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == local for line in table.readlines()[1:])


@contextlib.contextmanager
def openssl_dtls_server(box, source, *extra, stdin=None):
    """`openssl s_server -dtls1_2` with the ec-p256 key (the token's PIN from openssl.cnf)
    on a free loopback port, its stdin from a shell command, or (None) a pipe that stays
    open until the block ends (s_server ends a connection at its stdin's end); yields
    (port, result) with result["out"], what it printed, filled in when the block ends."""
    port = peers.free_port()
    key = key_ref(box, "ec-p256", source, pin=False)
    command = (f"openssl s_server -dtls1_2 -accept 127.0.0.1:{port} -key '{key}' "
               f"-cert {cert(box, 'ec-p256')} -quiet {' '.join(extra)}")
    server = subprocess.Popen(
        command if stdin is None else f"({stdin}) | {command}", shell=True, env=box.env_for("openssl"),
        stdin=subprocess.PIPE if stdin is None else None, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    result = {"stdin": server.stdin}
    try:
        deadline = time.monotonic() + 10
        while not udp_bound(port) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        yield port, result
    finally:
        result["out"], _ = server.communicate(timeout=30)


@pytest.mark.parametrize("source", SOURCES)
def test_connect_openssl_server(sandbox, tmp_path, source):
    with openssl_dtls_server(sandbox, source, "-listen", "-naccept", "1") as (port, result):
        # s_server sends what waits on its stdin as soon as the client is there (one
        # datagram); the client then lingers for replies that will not come
        result["stdin"].write("from-openssl\n")
        result["stdin"].flush()
        proc = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost", "--linger", "2",
                            data="line one\nline two\n")
        assert proc.returncode == 0, proc.stderr
        assert "DTLSv1.2" in proc.stderr and "verified" in proc.stderr, proc.stderr
        assert "from-openssl" in proc.stdout, proc.stdout
    assert "line one" in result["out"] and "line two" in result["out"], result["out"]


@pytest.mark.parametrize("source", SOURCES)
def test_ours_both_ways(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        proc = dtls_connect(sandbox, port, "--ca", ca(sandbox), host="localhost", data="one\ntwo\nthree\n")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "one\ntwo\nthree\n"
        assert "verified" in proc.stderr
    assert "1 handshakes" in log() and "3 echoed" in log(), log()


@pytest.mark.parametrize("source", SOURCES)
def test_mutual_dtls_client_key_on_token(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", "--ca", ca(sandbox), "--verify-client",
                    source=source) as (port, _, log):
        proc = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost",
                            "--cert", cert(sandbox, "client-p256"),
                            "--key", key_ref(sandbox, "client-p256", "token"),
                            data="mutual\n")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "mutual\n"
        # without a client certificate: refused
        refused = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost",
                               "--timeout", "10", data="x\n")
        assert refused.returncode != 0 and refused.stdout == ""
    assert "client-p256" in log() and "verified" in log(), log()
    assert "handshake failed" in log(), log()


@pytest.mark.parametrize("source", SOURCES)
def test_several_clients_at_once(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        results = {}

        def client(i):
            lines = "".join(f"client {i} line {j}\n" for j in range(3))
            results[i] = (lines, dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost",
                                              data=lines))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (lines, proc) in results.items():
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == lines
    assert "6 handshakes" in log() and "18 echoed" in log(), log()


class Relay:
    """A UDP relay on loopback between one client and the server that can drop,
    duplicate and reorder datagrams (a bounded number of each), records the largest
    datagram each way, and can inject datagrams as if from the client."""

    def __init__(self, server_port, lossy=False, seed=7):
        self.server = ("127.0.0.1", server_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(self.server)
        self.client = None
        self.lossy = lossy
        self.rng = random.Random(seed)
        self.budget = {"drop": 6, "dup": 4, "reorder": 3}
        self.done = {"drop": 0, "dup": 0, "reorder": 0}
        self.largest = {"up": 0, "down": 0}
        self.captured = []  # client to server, in order
        self.held = {"up": None, "down": None}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def send(self, way, data):
        if way == "up":
            self.back.send(data)
        elif self.client:
            self.front.sendto(data, self.client)

    def forward(self, way, data):
        self.largest[way] = max(self.largest[way], len(data))
        if way == "up":
            self.captured.append(data)
        if self.lossy:
            roll = self.rng.random()
            if roll < 0.25 and self.done["drop"] < self.budget["drop"]:
                self.done["drop"] += 1
                return
            if roll < 0.40 and self.done["dup"] < self.budget["dup"]:
                self.done["dup"] += 1
                self.send(way, data)
            elif roll < 0.55 and self.done["reorder"] < self.budget["reorder"] and self.held[way] is None:
                self.done["reorder"] += 1
                self.held[way] = data  # goes out after the next one
                return
        self.send(way, data)
        if self.held[way] is not None:
            held, self.held[way] = self.held[way], None
            self.send(way, held)

    def run(self):
        while not self.stop.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            if not ready:
                for way in ("up", "down"):  # nothing follows a held datagram: let it go
                    if self.held[way] is not None:
                        held, self.held[way] = self.held[way], None
                        self.send(way, held)
            for s in ready:
                try:
                    if s is self.front:
                        data, addr = s.recvfrom(65536)
                        self.client = addr
                        self.forward("up", data)
                    else:
                        self.forward("down", s.recv(65536))
                except OSError:
                    pass

    def inject(self, data):
        self.back.send(data)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.front.close()
        self.back.close()


@pytest.mark.parametrize("source", SOURCES)
def test_lossy_relay_and_mtu_hint(sandbox, tmp_path, source):
    with dtls_serve(sandbox, tmp_path, "ec-p256", "--mtu", "400", source=source) as (port, _, log):
        for seed in (1, 2):
            relay = Relay(port, lossy=True, seed=seed)
            try:
                proc = dtls_connect(sandbox, relay.port, "--ca", ca(sandbox), "--servername", "localhost",
                                    "--mtu", "400", "--timeout", "60", "--linger", "4", data="through the relay\n")
            finally:
                relay.close()
            assert proc.returncode == 0, proc.stderr + log()
            assert "verified" in proc.stderr
            assert sum(relay.done.values()) > 0, relay.done
            assert 0 < relay.largest["up"] <= 400 and 0 < relay.largest["down"] <= 400, relay.largest
    assert "2 handshakes" in log(), log()


def client_hello(cookie=b"", seq=0, msg_seq=0):
    """A minimal DTLS 1.2 ClientHello (ECDHE-ECDSA-AES128-GCM-SHA256, X25519/P-256)."""
    exts = b""
    exts += struct.pack("!HHH", 10, 6, 4) + struct.pack("!HH", 0x001d, 0x0017)   # supported_groups
    exts += struct.pack("!HHB", 11, 2, 1) + b"\x00"                                # ec_point_formats
    exts += struct.pack("!HHH", 13, 4, 2) + struct.pack("!H", 0x0403)              # signature_algorithms
    exts += struct.pack("!HH", 23, 0)                                               # extended master secret
    body = b"\xfe\xfd" + bytes(32) + b"\x00" + bytes([len(cookie)]) + cookie
    body += struct.pack("!H", 2) + struct.pack("!H", 0xC02B) + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = bytes([1]) + len(body).to_bytes(3, "big") + struct.pack("!H", msg_seq) + bytes(3) + \
        len(body).to_bytes(3, "big") + body
    return bytes([22]) + b"\xfe\xfd" + struct.pack("!H", 0) + seq.to_bytes(6, "big") + \
        struct.pack("!H", len(hs)) + hs


def hvr_cookie(data):
    assert data[0] == 22 and data[13] == 3, data  # handshake record, HelloVerifyRequest
    return data[13 + 12 + 3:13 + 12 + 3 + data[13 + 12 + 2]]


def test_hello_verify_request_keeps_no_state(sandbox, tmp_path):
    with dtls_serve(sandbox, tmp_path, "ec-p256", "--handshake-timeout", "1") as (port, _, log), \
            contextlib.ExitStack() as sockets:
        clients = []
        for i in range(20):
            s = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            s.settimeout(5)
            hello = client_hello(seq=i)
            s.sendto(hello, ("127.0.0.1", port))
            reply = s.recv(65536)
            assert len(reply) <= len(hello)
            assert len(hvr_cookie(reply)) > 0
            assert reply[5:11] == hello[5:11]  # the ClientHello's record sequence number
            # truncated ones and garbage get nothing at all
            for junk in (hello[:40], hello[:-5], os.urandom(100), b"\x16\xfe\xfd"):
                s.sendto(junk, ("127.0.0.1", port))
            clients.append(s)
        # (one wait for all 20 clients: an answer to any junk would be there by then)
        time.sleep(0.3)
        answered, _, _ = select.select(clients, [], [], 0)
        assert not answered, [s.recv(65536)[:20] for s in answered]
        assert "peer" not in log().replace("peers", ""), log()
        # A verified ClientHello makes state; the peer vanishing frees it after the timeout.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(client_hello(), ("127.0.0.1", port))
            cookie = hvr_cookie(s.recv(65536))
            s.sendto(client_hello(cookie, seq=1, msg_seq=1), ("127.0.0.1", port))
            flight = s.recv(65536)
            assert flight[0] == 22 and flight[13] == 2, flight[:20]  # ServerHello
        deadline = time.monotonic() + 10
        while "timed out" not in log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "handshake timed out" in log(), log()
    assert "0 handshakes" in log() and "1 timed out" in log() and "21 hello-verify-requests" in log(), log()


def test_bad_datagrams_do_not_disturb_peers(sandbox, tmp_path):
    with dtls_serve(sandbox, tmp_path, "ec-p256") as (port, _, log):
        relay = Relay(port)
        client = subprocess.Popen([str(BIN / "hsmtls"), "dtls-connect", f"127.0.0.1:{relay.port}", "--ca",
                                   ca(sandbox), "--servername", "localhost", "--linger", "3"],
                                  env=sandbox.env_for(BIN / "hsmtls"), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            client.stdin.write("first\n")
            client.stdin.flush()
            assert client.stdout.readline() == "first\n"
            app = relay.captured[-1]
            # from the client's own address: replays, truncations, garbage, a stale hello
            for bad in (app, app, app[:-1], app[:13], os.urandom(200), b"\x17\xfe\xfd" + os.urandom(60),
                        relay.captured[0], b""):
                relay.inject(bad)
            # and from elsewhere
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for bad in (app, os.urandom(300), relay.captured[0][:30]):
                    s.sendto(bad, ("127.0.0.1", port))
            time.sleep(0.3)
            client.stdin.write("second\n")
            client.stdin.flush()
            assert client.stdout.readline() == "second\n"
            client.stdin.close()
            client.wait(timeout=30)
            err = client.stderr.read()
            assert client.returncode == 0, err
            assert_clean_text(err)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            relay.close()
    assert "1 handshakes" in log() and "2 echoed" in log() and "0 failed" in log(), log()


def test_connect_refusals(sandbox):
    port = peers.free_port()  # nothing listens: the ICMP answers end it in seconds, not at --timeout
    start = time.monotonic()
    proc = dtls_connect(sandbox, port, "--no-verify", "--timeout", "50", data="")
    assert proc.returncode == 1 and "nothing listens" in proc.stderr, proc.stderr
    assert time.monotonic() - start < 30
    for target in ("224.0.0.1", "0.0.0.0", "255.255.255.255"):
        proc = dtls_connect(sandbox, 4433, host=target, data="")
        assert proc.returncode == 1 and "cannot be a DTLS peer" in proc.stderr, proc.stderr
    proc = sandbox.hsmtls("dtls-connect", "nowhere")
    assert proc.returncode == 2


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("label", ["rsa2048", "ec-p384"])
def test_other_server_keys(sandbox, tmp_path, label, source):
    # (Ed25519/Ed448 keys: OpenSSL 3.0 negotiates no DTLS 1.2 suite for them, s_server neither)
    with dtls_serve(sandbox, tmp_path, label, source=source) as (port, _, log):
        proc = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost", data=f"{label}\n")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{label}\n"
        assert f"OU={label}" in proc.stderr and "verified" in proc.stderr


# ---- resumption ----

def other(source):
    return "token" if source == "file" else "file"


@pytest.mark.parametrize("source", SOURCES)
def test_resume_ours_both_ways(sandbox, tmp_path, source):
    """The first association keeps its session, the second resumes it (both ends say
    so), a third without it does not."""
    sess = tmp_path / "sess.der"
    args = ["--ca", ca(sandbox), "--servername", "localhost"]
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        first = dtls_connect(sandbox, port, *args, "--sess-out", sess)
        second = dtls_connect(sandbox, port, *args, "--sess-in", sess, data="again\n")
        third = dtls_connect(sandbox, port, *args)
    assert first.returncode == 0 and "new session" in first.stderr, first.stderr
    assert "session kept in" in first.stderr and sess.stat().st_size > 50, first.stderr
    assert second.returncode == 0 and second.stdout == "again\n", second.stderr
    assert "resumed session" in second.stderr and "verified" in second.stderr, second.stderr
    assert third.returncode == 0 and "new session" in third.stderr, third.stderr
    assert log().count("resumed session") == 1 and log().count("new session") == 2, log()


@pytest.mark.parametrize("source", SOURCES)
def test_resume_openssl_server(sandbox, tmp_path, source):
    # without -listen s_server (3.0) takes a second client from another port
    sess = tmp_path / "sess.der"
    with openssl_dtls_server(sandbox, source, "-naccept", "2") as (port, result):
        args = ["--ca", ca(sandbox), "--servername", "localhost", "--linger", "1"]
        first = dtls_connect(sandbox, port, *args, "--sess-out", sess, data="first\n")
        second = dtls_connect(sandbox, port, *args, "--sess-in", sess, data="second\n")
    assert first.returncode == 0 and "new session" in first.stderr, first.stderr
    assert second.returncode == 0 and "resumed session" in second.stderr, second.stderr
    assert "first" in result["out"] and "second" in result["out"], result["out"]


@pytest.mark.parametrize("source", SOURCES)
def test_resume_openssl_client(sandbox, tmp_path, source):
    sess = tmp_path / "sess.pem"
    with dtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        def s_client(*extra):
            proc = sandbox.run("openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                               "-CAfile", ca(sandbox), "-verify_return_error", "-servername", "localhost",
                               *extra, input="hello\n", timeout=60)
            assert "Verify return code: 0 (ok)" in proc.stdout, proc.stdout + proc.stderr
            return proc.stdout
        first = s_client("-sess_out", sess)
        second = s_client("-sess_in", sess)
        deadline = time.monotonic() + 10
        while log().count("closed") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "\nNew, " in first and "\nReused, " in second, (first, second)
    assert log().count("resumed session") == 1, log()


def test_resume_refuses_a_tls_session(sandbox, tmp_path):
    """A TLS session file offered to DTLS: named as such, not silently a new session."""
    sess = tmp_path / "tls.der"
    tls_port = peers.free_port()
    args = peers.openssl_server_args(tls_port, sandbox.dir / "soft" / "ec-p256.key", cert(sandbox, "ec-p256"),
                                     "-rev")
    with peers.serving(args, sandbox, tls_port):
        proc = sandbox.hsmtls("connect", f"127.0.0.1:{tls_port}", "--ca", ca(sandbox), "--servername",
                              "localhost", "--tls1_2", "--sess-out", sess, input="x\n")
    assert proc.returncode == 0 and sess.exists(), proc.stderr
    proc = dtls_connect(sandbox, peers.free_port(), "--ca", ca(sandbox), "--sess-in", sess, data="")
    assert proc.returncode == 1 and "a TLS session" in proc.stderr, proc.stderr


# ---- SNI: the client's name, and the server switching configs by it ----

@pytest.mark.parametrize("source", SOURCES)
def test_sni_switching(sandbox, tmp_path, source):
    """The default pair's key from one source, the rsa.example pair's from the other."""
    sni = f"rsa.example:{cert(sandbox, 'rsa2048')}:{key_ref(sandbox, 'rsa2048', other(source))}"
    with dtls_serve(sandbox, tmp_path, "ec-p256", "--sni", sni, source=source) as (port, _, log):
        def s_client_subject(name):
            proc = sandbox.run("openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                               "-servername", name, "-CAfile", ca(sandbox), "-verify_return_error",
                               "-verify_hostname", "localhost", input="hello\n", timeout=60)
            assert "Verify return code: 0 (ok)" in proc.stdout, proc.stdout + proc.stderr
            return next(line for line in proc.stdout.splitlines() if line.startswith("subject="))
        assert "OU = rsa2048" in s_client_subject("rsa.example")
        assert "OU = rsa2048" in s_client_subject("RSA.example")
        assert "OU = ec-p256" in s_client_subject("localhost")
        assert "OU = ec-p256" in s_client_subject("unknown.example")
        # ours: the name is sent and, with checks on, held against the certificate
        checked = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "rsa.example", "--timeout", "10")
        unchecked = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "rsa.example", "--no-verify",
                                 data="switched\n")
        default = dtls_connect(sandbox, port, "--ca", ca(sandbox), "--servername", "localhost", data="default\n")
        by_address = dtls_connect(sandbox, port, "--ca", ca(sandbox), data="no name\n")
    assert checked.returncode == 1 and "hostname mismatch" in checked.stderr, checked.stderr
    assert "OU=rsa2048" in checked.stderr
    assert unchecked.returncode == 0 and unchecked.stdout == "switched\n", unchecked.stderr
    assert "OU=rsa2048" in unchecked.stderr and "NOT verified" in unchecked.stderr
    assert default.returncode == 0 and "OU=ec-p256" in default.stderr and "verified" in default.stderr
    assert by_address.returncode == 0 and "OU=ec-p256" in by_address.stderr, by_address.stderr
    text = log()
    assert "SNI rsa.example: certificate CN=localhost,OU=rsa2048" in text, text
    assert ("in a file" if source == "token" else "on a token") in text.split("SNI rsa.example: ")[1]
    assert text.count("SNI rsa.example\n") == 2 and "SNI RSA.example\n" in text, text
    # an IP address is no server name: none was sent
    assert text.count("; SNI ") == 6, text


def test_sni_bad_argument(sandbox):
    args = ["dtls-serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
            "--key", sandbox.dir / "soft" / "ec-p256.key", "--sni"]
    proc = sandbox.hsmtls(*args, "only-a-name")
    assert proc.returncode == 2 and "expected NAME:CERT:KEY" in proc.stderr, proc.stderr
    proc = sandbox.hsmtls(*args, f"x.example:{cert(sandbox, 'rsa2048')}:{sandbox.dir / 'soft' / 'ec-p256.key'}")
    assert proc.returncode == 1 and "does not match the certificate" in proc.stderr, proc.stderr
