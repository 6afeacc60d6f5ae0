"""Lanes (pkcs11/lanes.c): the core opens several connections to p11-kit's client module,
whose every connection is served by one single-threaded process, and spreads threads
over them (tests/c/test_lanes.c). Against the sandbox's server token exported by
`p11-kit server`, directly and through hsmtls-fault with a slow C_Sign."""
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, BUILD, P11_KIT_CLIENT, accepts_connections, assert_no_sanitizer_report

FAULT = BUILD / "lib" / "pkcs11" / "hsmtls-fault.so"
DELAY_MS = 300


def serve(sandbox, sock, provider, extra_env=None):
    env = sandbox.env_for("p11-kit", extra_env)
    log = open(sock.parent / "server.log", "w")
    proc = subprocess.Popen(["p11-kit", "server", "-f", "-s", "--provider", provider, "-n", str(sock),
                             "pkcs11:token=server"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while not accepts_connections(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"p11-kit server did not start: {(sock.parent / 'server.log').read_text()}")
        time.sleep(0.05)
    return proc, log


@pytest.fixture(scope="module")
def slow_remote(sandbox, tmp_path_factory):
    """The server token through hsmtls-fault (every C_Sign DELAY_MS late) under p11-kit server."""
    sock = tmp_path_factory.mktemp("slow-remote") / "p11.sock"
    proc, log = serve(sandbox, sock, str(FAULT), {"HSMTLS_FAULT_MODULE": sandbox.env["HSMTLS_PKCS11_MODULE"],
                                                   "HSMTLS_FAULT": f"C_Sign:delay={DELAY_MS}ms"})
    yield {"HSMTLS_PKCS11_MODULE": P11_KIT_CLIENT, "P11_KIT_SERVER_ADDRESS": f"unix:path={sock}"}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()


def run(sandbox, case, env):
    proc = sandbox.run(BIN / "test_lanes", sandbox.dir, case, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    assert_no_sanitizer_report(proc)
    return proc


@pytest.mark.c_case("test_lanes", "spread")
@pytest.mark.parametrize("lanes", [4, 1, 2])
def test_threads_spread_over_connections(sandbox, remote, lanes):
    """Four threads sign right, each signature counted once, one login per connection;
    4 connections by default for p11-kit's client, as many as HSMTLS_P11_LANES says."""
    env = dict(remote, HSMTLS_TEST_LANES=str(lanes))
    if lanes != 4:
        env["HSMTLS_P11_LANES"] = str(lanes)
    run(sandbox, "spread", env)


@pytest.mark.c_case("test_lanes", "single")
def test_one_thread_opens_no_more_connections(sandbox, remote):
    """A program that signs on one thread (the CLI, s_server, an nginx worker) keeps
    the one connection."""
    run(sandbox, "single", remote)


@pytest.mark.c_case("test_lanes", "spread")
def test_local_module_has_one_connection(sandbox):
    """A local module is one instance however often it is loaded: no lanes, whatever is asked."""
    run(sandbox, "spread", {"HSMTLS_P11_LANES": "4", "HSMTLS_TEST_LANES": "1"})


@pytest.mark.c_case("test_lanes", "overlap")
@pytest.mark.parametrize("lanes", [4, 1])
def test_slow_token_signs_on_all_connections_at_once(sandbox, slow_remote, lanes):
    """Behind a token whose signature takes 300 ms, four threads' signatures overlap over
    four connections (about one delay in all) and wait in line over one (four delays)."""
    env = dict(slow_remote, HSMTLS_TEST_LANES=str(lanes), HSMTLS_TEST_DELAY_MS=str(DELAY_MS),
               HSMTLS_P11_LANES=str(lanes))
    run(sandbox, "overlap", env)
