"""The core against a token that fails on purpose: hsmtls-fault (fault/, docs/fault.md) in
front of the sandbox's SoftHSM2, one plan per failure class. tests/c/test_reliability.c
signs (RSA, ECDSA), decrypts, derives and logs in under each plan: every result must be
right, or a clear error where the plan leaves no way to a result. A token removed and
returned, and a device that goes down, are served across by `hsmtls serve` and by nginx
with two workers, with no restart or reload."""
import re
import time

import pytest

import peers
from conftest import BIN, BUILD, assert_no_sanitizer_report

FAULT = BUILD / "lib" / "pkcs11" / "hsmtls-fault.so"
KEY_URI = "pkcs11:token=server;object=ec-p256;type=private"

# Each failure class the core classifies, injected now and then into sign, decrypt,
# derive and login (the ops case checks every result).
RECOVERED = {
    "session-lost": "C_Sign:error=CKR_SESSION_HANDLE_INVALID@every=3;"
                    "C_Decrypt:error=CKR_SESSION_CLOSED@every=2;C_DeriveKey:error=CKR_USER_NOT_LOGGED_IN@n=2",
    "sessions-invalidated": "sessions:invalidate@every=13",
    "handle-stale": "C_SignInit:error=CKR_KEY_HANDLE_INVALID@every=4;"
                    "C_DecryptInit:error=CKR_KEY_HANDLE_INVALID@n=2;C_DeriveKey:error=CKR_OBJECT_HANDLE_INVALID@n=3",
    "objects-stale": "objects:stale@n=5;objects:stale@n=60",
    "device-error": "C_Sign:error=CKR_DEVICE_ERROR@every=5;C_Decrypt:error=CKR_DEVICE_ERROR@n=2;"
                    "C_DeriveKey:error=CKR_DEVICE_ERROR@n=4",
    "device-down": "device:down@every=40",
    "transient": "C_Sign:error=CKR_DEVICE_MEMORY@every=3;C_OpenSession:error=CKR_SESSION_COUNT@n=3",
    "login-busy": "C_Login:error=CKR_GENERAL_ERROR@n=1",
    "slow": "*:delay=1ms~1ms",
}

# Plans that leave no way to a signature: the error names the reason.
# Plans that leave no way to a signature: the error names the reason. The states begin
# after a first signature (the case writes the control file).
FAILING = {
    "function-failed": ("C_Sign:error=CKR_FUNCTION_FAILED", "CKR_FUNCTION_FAILED"),
    "removed": ("token:remove@state=gone", "unreachable"),
    "down-for-good": ("device:down@state=gone;C_Initialize:error=CKR_DEVICE_ERROR@state=gone",
                      "unreachable"),
}


def fault_env(sandbox, plan, log):
    return {"HSMTLS_PKCS11_MODULE": str(FAULT), "HSMTLS_FAULT_MODULE": sandbox.env["HSMTLS_PKCS11_MODULE"],
            "HSMTLS_FAULT": plan, "HSMTLS_FAULT_LOG": str(log)}


def run_case(sandbox, case, plan, tmp_path, **extra):
    log = tmp_path / "fault.log"
    proc = sandbox.run(BIN / "test_reliability", sandbox.dir, case,
                       env={**fault_env(sandbox, plan, log), **extra}, timeout=240)
    out = proc.stdout + proc.stderr
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out + "\n" + log.read_text()
    return proc, log.read_text()


@pytest.mark.c_case("test_reliability", "ops")
@pytest.mark.parametrize("name", sorted(RECOVERED))
def test_every_result_right_under(sandbox, tmp_path, name):
    proc, log = run_case(sandbox, "ops", RECOVERED[name], tmp_path)
    if name != "slow":
        # The plan really struck (so the case tests what it says).
        assert re.search(r"CKR_|invalid|stale|device down", log), log


@pytest.mark.c_case("test_reliability", "clear_errors")
@pytest.mark.parametrize("name", sorted(FAILING))
def test_clear_error_when_no_result_can_be(sandbox, tmp_path, name):
    plan, expect = FAILING[name]
    control = tmp_path / "control"
    control.write_text("")
    states = {"HSMTLS_FAULT_CONTROL": str(control), "HSMTLS_STATE": "gone"} if "@state" in plan else {}
    start = time.monotonic()
    run_case(sandbox, "clear_errors", plan, tmp_path, HSMTLS_EXPECT=expect, **states)
    assert time.monotonic() - start < 30


@pytest.mark.c_case("test_reliability", "threads")
def test_eight_threads_with_sessions_invalidated_under_them(sandbox, tmp_path):
    # Every 400th call: a dozen times in the run (a plan much denser than that counts the
    # recovery's own calls too, and then invalidates the sessions it just opened).
    proc, log = run_case(sandbox, "threads", "sessions:invalidate@every=400", tmp_path)
    assert "sessions invalidated" in log, log


def handshake_ok(sandbox, port):
    start = time.monotonic()
    proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", data="")
    return peers.handshake_summary(proc) is not None, time.monotonic() - start


def across(sandbox, port, control, state, server_log):
    """Serves; `state` in the control file for two seconds (handshakes fail within a
    second each, saying the token is unreachable); the first or second handshake after
    it works, and the next ones too."""
    assert handshake_ok(sandbox, port)[0], server_log()
    control.write_text(state)
    time.sleep(0.1)  # hsmtls-fault reads the control file at most every 50 ms
    end = time.monotonic() + 2
    failures = 0
    while time.monotonic() < end:
        ok, took = handshake_ok(sandbox, port)
        assert not ok, f"a handshake worked while the plan said {state}"
        assert took < 1.0, f"a handshake took {took:.2f} s to fail ({state})"
        failures += 1
        time.sleep(0.1)
    assert failures >= 2
    assert "unreachable" in server_log(), server_log()
    control.write_text("")
    time.sleep(0.3)  # hsmtls-fault has read it; the core's pause after its last try is over
    first, second = handshake_ok(sandbox, port)[0], handshake_ok(sandbox, port)[0]
    assert first or second, server_log()
    for _ in range(3):
        assert handshake_ok(sandbox, port)[0], server_log()


@pytest.mark.parametrize("state", ["remove", "down"])
def test_hsmtls_serve_across_a_failing_token(sandbox, tmp_path, state):
    control = tmp_path / "control"
    control.write_text("")
    plan = "token:remove@state=remove;device:down@state=down"
    env = {**fault_env(sandbox, plan, tmp_path / "fault.log"), "HSMTLS_FAULT_CONTROL": str(control)}
    port = peers.free_port()
    log = tmp_path / "server.log"
    with peers.hsmtls_serve(sandbox, port, KEY_URI, env, log):
        across(sandbox, port, control, state, log.read_text)


def test_nginx_two_workers_across_a_token_removal(sandbox, tmp_path):
    """The control file reaches both workers (and the master that loaded the key file
    before forking them): both serve again after the token returns, with no reload."""
    key = tmp_path / "key.pem"
    sandbox.hsmtls("keyfile", "--out", key, KEY_URI, check=True)
    control = tmp_path / "control"
    control.write_text("")
    env = {**fault_env(sandbox, "token:remove@state=remove", tmp_path / "fault.log"),
           "HSMTLS_FAULT_CONTROL": str(control)}
    port = peers.free_port()
    with peers.nginx_two_workers(sandbox, tmp_path, port, sandbox.dir / "certs" / "ec-p256.pem",
                                 key, env) as read_log:
        across(sandbox, port, control, "remove", read_log)
        peers.both_nginx_workers_answer(sandbox, port, read_log)
