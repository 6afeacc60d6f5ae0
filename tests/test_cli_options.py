"""The TLS and DTLS verbs' options: numbers parsed strictly with an error that names the
option, one meaning of --naccept for serve and dtls-serve (1 or more; without it, no
limit), and the messages for session files that cannot be read or written (what the
system said, not a stale library error)."""
import contextlib
import socket
import subprocess

import pytest

import peers
from conftest import BIN, assert_no_sanitizer_report

SERVE = ["--port", "1", "--cert", "c.pem", "--key", "k.pem"]

BAD_NUMBERS = [
    ("serve", SERVE, "--naccept", "abc", "expected a whole number, 1 or more"),
    ("serve", SERVE, "--naccept", "0", "expected a whole number, 1 or more"),
    ("serve", SERVE, "--naccept", "2x", "expected a whole number, 1 or more"),
    ("serve", SERVE, "--max-clients", "0", "expected a whole number from 1 to 10000"),
    ("serve", SERVE, "--max-clients", "", "expected a whole number from 1 to 10000"),
    ("dtls-serve", SERVE, "--naccept", "0", "expected a whole number, 1 or more"),
    ("dtls-serve", SERVE, "--naccept", "-1", "expected a whole number, 1 or more"),
    ("dtls-serve", SERVE, "--max-peers", "many", "expected a whole number from 1 to 100000"),
    ("dtls-serve", SERVE, "--mtu", "1400b", "expected a whole number from 256 to 65536"),
    ("dtls-serve", SERVE, "--handshake-timeout", "0", "expected seconds, more than 0"),
    ("dtls-serve", SERVE, "--idle-timeout", "soon", "expected seconds, more than 0"),
    ("dtls-connect", ["127.0.0.1:1"], "--timeout", "0", "expected seconds, more than 0"),
    ("dtls-connect", ["127.0.0.1:1"], "--timeout", "nan", "expected seconds, more than 0"),
    ("dtls-connect", ["127.0.0.1:1"], "--linger", "-1", "expected seconds, 0 or more"),
    ("dtls-connect", ["127.0.0.1:1"], "--mtu", "100", "expected a whole number from 256 to 65536"),
]


def hsmtls(*args, timeout=30, input=None):
    proc = subprocess.run([str(BIN / "hsmtls"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, input=input)
    assert_no_sanitizer_report(proc)
    return proc


@pytest.mark.parametrize("verb,base,option,value,expected", BAD_NUMBERS,
                         ids=[f"{b[0]}{b[2]}={b[3]}" for b in BAD_NUMBERS])
def test_a_bad_number_is_a_usage_error_naming_the_option(build, verb, base, option, value, expected):
    # Rejected while parsing: before anything is loaded (the files do not exist) or bound.
    proc = hsmtls(verb, *base, option, value)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f'hsmtls {verb}: {option} "{value}": {expected}' in proc.stderr, proc.stderr


def test_good_numbers_pass_the_parser(build):
    # The same options with good values get past parsing: the missing files are next.
    for verb, args in (("serve", [*SERVE, "--naccept", "3", "--max-clients", "10"]),
                       ("dtls-serve", [*SERVE, "--naccept", "1", "--max-peers", "2", "--mtu", "1200",
                                       "--handshake-timeout", "2.5", "--idle-timeout", "30"])):
        proc = hsmtls(verb, *args)
        assert proc.returncode == 1 and "c.pem" in proc.stderr and "expected" not in proc.stderr, proc.stderr


@contextlib.contextmanager
def tls_server(box, tmp_path, *extra):
    """`hsmtls serve` with the sandbox's ec-p256 key file; yields (port, proc, read_log)."""
    port = peers.free_port()
    args = [BIN / "hsmtls", "serve", "--bind", "127.0.0.1", "--port", port, "--cert", box.dir / "certs/ec-p256.pem",
            "--key", box.dir / "soft/ec-p256.key", *extra]
    log = tmp_path / f"serve-{port}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(a) for a in args], env=box.env_for(args[0]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            peers.wait_for_port(port, proc)  # one connection, closed at once
            yield port, proc, log.read_text
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text


def connect(box, port, *args, data="hello\n"):
    proc = box.run(BIN / "hsmtls", "connect", f"127.0.0.1:{port}", "--ca", box.dir / "ca.pem", "--servername",
                   "localhost", *args, input=data, timeout=60)
    assert_no_sanitizer_report(proc)
    return proc


def test_serve_without_naccept_has_no_limit(sandbox, tmp_path):
    with tls_server(sandbox, tmp_path) as (port, proc, log):
        for _ in range(3):
            got = connect(sandbox, port)
            assert got.returncode == 0 and got.stdout == "hello\n", got.stdout + got.stderr
        assert proc.poll() is None, log()  # still serving after the probe and three clients


def test_serve_naccept_counts_connections(sandbox, tmp_path):
    with tls_server(sandbox, tmp_path, "--naccept", "2") as (port, proc, log):
        got = connect(sandbox, port)  # the second, after wait_for_port's probe
        assert got.returncode == 0 and got.stdout == "hello\n", got.stdout + got.stderr
        assert proc.wait(timeout=30) == 0, log()


def test_a_session_file_that_cannot_be_written_says_why(sandbox, tmp_path):
    target = tmp_path / "no-such-dir" / "sess.der"
    with tls_server(sandbox, tmp_path) as (port, _, _):
        proc = connect(sandbox, port, "--sess-out", target)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"hsmtls connect: cannot keep the session in {target}: No such file or directory" in proc.stderr, \
        proc.stderr


def test_dtls_session_file_that_cannot_be_written_says_why(sandbox, tmp_path):
    target = tmp_path / "no-such-dir" / "sess.der"
    port = peers.free_port()
    args = [BIN / "hsmtls", "dtls-serve", "--port", port, "--cert", sandbox.dir / "certs/ec-p256.pem",
            "--key", sandbox.dir / "soft/ec-p256.key", "--naccept", "1", "--idle-timeout", "2"]
    server = subprocess.Popen([str(a) for a in args], env=sandbox.env_for(args[0]), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith("listening on"), server.stderr.read()
        proc = sandbox.run(BIN / "hsmtls", "dtls-connect", f"127.0.0.1:{port}", "--ca", sandbox.dir / "ca.pem",
                           "--servername", "localhost", "--sess-out", target, input="", timeout=60)
        assert_no_sanitizer_report(proc)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"hsmtls dtls-connect: cannot keep the session in {target}: No such file or directory" \
            in proc.stderr, proc.stderr
        # --naccept 1: the one handshake done and its peer gone (idle), the server ends.
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.terminate()
        _, err = server.communicate(timeout=30)
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err


@pytest.mark.parametrize("verb", ["connect", "dtls-connect"])
def test_a_session_file_that_cannot_be_read_says_why(sandbox, tmp_path, verb):
    # A directory opens but does not read: the system's reason, not a parser's.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # connect reaches a socket before it reads the file
        port = listener.getsockname()[1]
        for source, why in ((tmp_path, "Is a directory"), (tmp_path / "none", "No such file or directory")):
            proc = sandbox.run(BIN / "hsmtls", verb, f"127.0.0.1:{port}", "--sess-in", source, input="",
                               timeout=60)
            assert_no_sanitizer_report(proc)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert f"hsmtls {verb}: {source}: {why}" in proc.stderr, proc.stderr
