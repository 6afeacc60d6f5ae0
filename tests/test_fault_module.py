"""hsmtls-fault (fault/, docs/fault.md) through real programs on the session sandbox:
OpenSC's pkcs11-tool, the hsmtls CLI and demo, and a PKCS#11 driver in this file (run as
its own process, `python3 tests/test_fault_module.py MODULE COMMAND...`, calling the
module through ctypes) for what needs precise steps: sessions held across a fault, the
module finalised and initialised again, a fork, threads.

Timings are checked as lower bounds only."""
import ctypes as C
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

if __name__ != "__main__":
    import pytest

    from conftest import BIN, BUILD, PROVIDER, assert_no_sanitizer_report, base_env

    FAULT = BUILD / "lib" / "pkcs11" / "hsmtls-fault.so"

HEADER = pathlib.Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h")


def rv_names():
    names = {}
    for name, value in re.findall(r"#define\s+(CKR_\w+)\s+\(?(0x[0-9a-fA-F]+|\d+)UL?\)?", HEADER.read_text()):
        names.setdefault(int(value, 0), name)
    return names


# ---- the driver (runs in its own process) ----------------------------------------------

FUNCTIONS = """C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo
C_GetTokenInfo C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession
C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login
C_Logout C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue
C_SetAttributeValue C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt
C_EncryptUpdate C_EncryptFinal C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit
C_Digest C_DigestUpdate C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal
C_SignRecoverInit C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal
C_VerifyRecoverInit C_VerifyRecover C_DigestEncryptUpdate C_DecryptDigestUpdate
C_SignEncryptUpdate C_DecryptVerifyUpdate C_GenerateKey C_GenerateKeyPair C_WrapKey C_UnwrapKey
C_DeriveKey C_SeedRandom C_GenerateRandom C_GetFunctionStatus C_CancelFunction
C_WaitForSlotEvent""".split()
UL = C.c_ulong
PUL = C.POINTER(UL)


class Attribute(C.Structure):
    _fields_ = [("type", UL), ("value", C.c_void_p), ("len", UL)]


class Mechanism(C.Structure):
    _fields_ = [("mechanism", UL), ("parameter", C.c_void_p), ("len", UL)]


class InitArgs(C.Structure):
    _fields_ = [("mutex", C.c_void_p * 4), ("flags", UL), ("reserved", C.c_void_p)]


class FunctionList(C.Structure):
    _fields_ = [("major", C.c_ubyte), ("minor", C.c_ubyte)] + [(n, C.c_void_p) for n in FUNCTIONS]


PROTOS = {
    "C_Initialize": [C.c_void_p], "C_Finalize": [C.c_void_p], "C_GetInfo": [C.c_char_p],
    "C_GetSlotList": [C.c_ubyte, PUL, PUL], "C_GetTokenInfo": [UL, C.c_char_p],
    "C_OpenSession": [UL, UL, C.c_void_p, C.c_void_p, PUL], "C_CloseSession": [UL],
    "C_CloseAllSessions": [UL], "C_Login": [UL, UL, C.c_char_p, UL],
    "C_FindObjectsInit": [UL, C.POINTER(Attribute), UL], "C_FindObjects": [UL, PUL, UL, PUL],
    "C_FindObjectsFinal": [UL], "C_SignInit": [UL, C.POINTER(Mechanism), UL],
    "C_Sign": [UL, C.c_char_p, UL, C.c_char_p, PUL],
    "C_GetAttributeValue": [UL, UL, C.POINTER(Attribute), UL],
}
CKM_SHA256_RSA_PKCS, CKM_ECDSA, CKA_CLASS, CKA_LABEL, CKO_PRIVATE_KEY = 0x40, 0x1041, 0, 3, 3


class Driver:
    def __init__(self, module):
        lib = C.CDLL(module)
        lst = C.POINTER(FunctionList)()
        lib.C_GetFunctionList(C.byref(lst))
        self.f = {n: C.CFUNCTYPE(UL, *PROTOS[n])(getattr(lst.contents, n)) for n in PROTOS}
        self.names = rv_names()
        self.slot = None
        self.sessions, self.keys = [], []
        self.t0 = time.monotonic()

    def rv(self, value):
        return self.names.get(value, hex(value))

    def slots(self, present):
        n = UL(0)
        rv = self.f["C_GetSlotList"](present, None, C.byref(n))
        if rv:
            return self.rv(rv)
        ids = (UL * max(n.value, 1))()
        rv = self.f["C_GetSlotList"](present, ids, C.byref(n))
        return self.rv(rv) if rv else list(ids[:n.value])

    def token_label(self, slot):
        info = C.create_string_buffer(1024)
        rv = self.f["C_GetTokenInfo"](slot, info)
        return self.rv(rv) if rv else info.raw[:32].decode().strip()

    def find_slot(self, label):
        for slot in self.slots(1):
            if self.token_label(slot) == label:
                return slot
        raise SystemExit(f"no token {label}")

    def open(self):
        h = UL(0)
        rv = self.f["C_OpenSession"](self.slot, 6, None, None, C.byref(h))
        if rv == 0:
            self.sessions.append(h.value)
        return self.rv(rv)

    def find(self, s, label):
        cls = UL(CKO_PRIVATE_KEY)
        lab = C.create_string_buffer(label.encode(), len(label))
        tmpl = (Attribute * 2)(Attribute(CKA_CLASS, C.cast(C.byref(cls), C.c_void_p), C.sizeof(cls)),
                               Attribute(CKA_LABEL, C.cast(lab, C.c_void_p), len(label)))
        rv = self.f["C_FindObjectsInit"](s, tmpl, 2)
        if rv:
            return self.rv(rv)
        h, n = UL(0), UL(0)
        rv = self.f["C_FindObjects"](s, C.byref(h), 1, C.byref(n))
        self.f["C_FindObjectsFinal"](s)
        if rv or n.value != 1:
            return self.rv(rv) if rv else "none"
        self.keys.append(h.value)
        return "CKR_OK"

    def sign(self, s, k, mechanism=CKM_SHA256_RSA_PKCS, data=b"hello"):
        mech = Mechanism(mechanism, None, 0)
        rv = self.f["C_SignInit"](s, C.byref(mech), k)
        if rv:
            return self.rv(rv)
        out, n = C.create_string_buffer(1024), UL(1024)
        return self.rv(self.f["C_Sign"](s, data, len(data), out, C.byref(n)))

    def attr(self, s, k):
        a = Attribute(CKA_CLASS, None, 0)
        return self.rv(self.f["C_GetAttributeValue"](s, k, C.byref(a), 1))

    def run(self, cmd):
        """One command; returns what it printed (a result or a list)."""
        op, *args = cmd.split(":")
        ix = [int(a) for a in args if a.lstrip("-").isdigit()]
        if op == "init":  # CKF_OS_LOCKING_OK: several threads call (SoftHSM2 locks nothing without it)
            self.init_args = InitArgs(flags=2)
            return self.rv(self.f["C_Initialize"](C.cast(C.byref(self.init_args), C.c_void_p)))
        if op == "fin":  # the handles stay in the lists, to be tried after
            return self.rv(self.f["C_Finalize"](None))
        if op == "getinfo":
            return self.rv(self.f["C_GetInfo"](C.create_string_buffer(512)))
        if op == "slot":  # the token labelled args[0]
            self.slot = self.find_slot(args[0])
            return "CKR_OK"
        if op == "present":
            r = self.slots(1)
            return r if isinstance(r, str) else len(r)
        if op == "all":
            r = self.slots(0)
            return r if isinstance(r, str) else len(r)
        if op == "tokeninfo":
            r = self.token_label(self.slot)
            return r if r.startswith("CKR_") else "CKR_OK"
        if op == "open":
            return self.open()
        if op == "close":
            return self.rv(self.f["C_CloseSession"](self.sessions[ix[0]]))
        if op == "closeall":
            return self.rv(self.f["C_CloseAllSessions"](self.slot))
        if op == "login":
            pin = args[1].encode() if len(args) > 1 else b"1234"
            return self.rv(self.f["C_Login"](self.sessions[ix[0]], 1, pin, len(pin)))
        if op == "find":  # find:SESSION:LABEL
            return self.find(self.sessions[ix[0]], args[1])
        if op == "sign":  # sign:SESSION:KEY
            return self.sign(self.sessions[ix[0]], self.keys[ix[1]])
        if op == "attr":
            return self.attr(self.sessions[ix[0]], self.keys[ix[1]])
        if op == "keys":
            return self.keys
        if op == "timed":  # timed:COMMAND...: the command and how long it took
            start = time.monotonic()
            r = self.run(":".join(args))
            return [r, round(time.monotonic() - start, 3)]
        if op == "at":  # at:SECONDS: waits until that long after the driver started
            time.sleep(max(0.0, self.t0 + float(args[0]) - time.monotonic()))
            return round(time.monotonic() - self.t0, 3)
        if op == "sleep":
            time.sleep(float(args[0]))
            return "slept"
        if op == "fork":  # a child initialises again and signs on a session of its own
            pid = os.fork()
            if pid == 0:
                self.sessions, self.keys = [], []
                got = [self.run(c) for c in ("init", "open", "login:0", "find:0:rsa2048", "sign:0:0")]
                # SoftHSM2 2.6 keeps the parent's login across fork (it has no fork
                # handling of its own), so the child may be logged in already.
                if got[2] == "CKR_USER_ALREADY_LOGGED_IN":
                    got[2] = "CKR_OK"
                print(json.dumps(["child", got]), flush=True)
                os._exit(0 if got == ["CKR_OK"] * 5 else 1)
            _, status = os.waitpid(pid, 0)
            return "child ok" if status == 0 else f"child failed {status}"
        if op == "anchor":  # a session opened on the real module itself, which the fault
            # module does not know of: the token stays logged in while ours are lost
            lib = C.CDLL(os.environ["HSMTLS_FAULT_MODULE"])
            lst = C.POINTER(FunctionList)()
            lib.C_GetFunctionList(C.byref(lst))
            h = UL(0)
            opened = C.CFUNCTYPE(UL, *PROTOS["C_OpenSession"])(lst.contents.C_OpenSession)
            return self.rv(opened(self.slot, 6, None, None, C.byref(h)))
        if op == "threads":  # threads:N:ROUNDS: N threads sign on their own sessions
            return self.threads(ix[0], ix[1])
        raise SystemExit(f"unknown command {cmd}")

    def threads(self, n, rounds):
        results, lock = {}, threading.Lock()

        def worker():
            with lock:
                if self.open() != "CKR_OK":
                    return
                s = self.sessions[-1]
            k = self.keys[0]
            for _ in range(rounds):
                r = self.sign(s, k, CKM_ECDSA, bytes(32))
                with lock:
                    results[r] = results.get(r, 0) + 1
                if r == "CKR_SESSION_HANDLE_INVALID":  # lost: a new session
                    h = UL(0)
                    if self.f["C_OpenSession"](self.slot, 6, None, None, C.byref(h)) == 0:
                        s = h.value
            self.f["C_CloseSession"](s)

        ts = [threading.Thread(target=worker) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results


def driver_main(module, commands):
    d = Driver(module)
    for cmd in commands:
        if cmd == "wait":  # says so first: the test sends the line after reading this
            print(json.dumps([cmd, "ready"]), flush=True)
            sys.stdin.readline()
            continue
        print(json.dumps([cmd, d.run(cmd)]), flush=True)


if __name__ == "__main__":
    driver_main(sys.argv[1], sys.argv[2:])
    sys.exit(0)


# ---- the tests ---------------------------------------------------------------------------

def fault_env(sandbox, plan="", **extra):
    """The module's variables. No OPENSSL_CONF: SoftHSM2 initialises OpenSSL, which would
    load the hsmtls provider into it (the CLI and demo need none)."""
    env = {"HSMTLS_FAULT_MODULE": sandbox.env["HSMTLS_PKCS11_MODULE"], "HSMTLS_FAULT": plan, "OPENSSL_CONF": None}
    env.update(extra)
    return env


def drive(sandbox, plan, *commands, env=None, timeout=60):
    """Runs the driver on the fault module; returns [(command, result)]."""
    proc = sandbox.run("/usr/bin/python3", __file__, FAULT, *commands,
                       env={**fault_env(sandbox, plan), **(env or {})}, timeout=timeout)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [tuple(json.loads(line)) for line in proc.stdout.splitlines()]


def results(steps):
    return [r for _, r in steps]


def log_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def last_counts(path):
    """The last `sessions: opened N closed M open K` of the log, as (N, M, K)."""
    counts = re.findall(r"sessions: opened (\d+) closed (\d+) open (\d+)", path.read_text())
    assert counts, path.read_text()
    return tuple(int(x) for x in counts[-1])


SETUP = ["init", "slot:server", "open", "login:0", "find:0:rsa2048"]


@pytest.fixture(scope="module")
def fault(build):
    if not FAULT.exists():
        pytest.fail(f"{FAULT} is missing: build {BUILD} first")
    return FAULT


def pkcs11_tool(sandbox, *args, plan="", **extra):
    return sandbox.run("pkcs11-tool", "--module", FAULT, *args, env=fault_env(sandbox, plan, **extra))


def test_exports_only_the_function_list(fault):
    syms = subprocess.run(["nm", "-D", "--defined-only", str(fault)], capture_output=True, text=True,
                          check=True).stdout.split()
    assert [s for s in syms if s.startswith("C_")] == ["C_GetFunctionList"], syms
    needed = subprocess.run(["readelf", "-d", str(fault)], capture_output=True, text=True, check=True).stdout
    assert "hsmtls-pkcs11" not in needed and "libp11-kit" not in needed, needed


def test_passthrough_lists_and_signs_like_the_real_module(sandbox, fault, tmp_path):
    proc = pkcs11_tool(sandbox, "-L")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"token label\s+: server", proc.stdout) and re.search(r"token label\s+: client", proc.stdout)
    data = tmp_path / "data"
    data.write_bytes(b"the same bytes twice")
    sigs = []
    for module, env in ((sandbox.env["HSMTLS_PKCS11_MODULE"], {"OPENSSL_CONF": None}), (fault, fault_env(sandbox))):
        out = tmp_path / f"sig{len(sigs)}"
        proc = sandbox.run("pkcs11-tool", "--module", module, "--token-label", "server", "--login", "--pin", "1234",
                           "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "-i", data, "-o", out,
                           env=env)
        assert proc.returncode == 0, proc.stderr
        sigs.append(out.read_bytes())
    # RSA PKCS#1 v1.5 signatures are deterministic: the same key signed the same bytes.
    assert len(sigs[0]) == 256 and sigs[0] == sigs[1]


def test_the_hsmtls_cli_reaches_tokens_through_it(sandbox, fault):
    proc = sandbox.hsmtls("tokens", env={"HSMTLS_PKCS11_MODULE": str(fault), **fault_env(sandbox)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "server" in proc.stdout and "client" in proc.stdout and "hsmtls-fault.so" in proc.stdout, proc.stdout


def test_error_at_the_nth_call_and_every_kth(sandbox, fault, tmp_path):
    log = tmp_path / "log"
    steps = drive(sandbox, "C_Sign:error=CKR_DEVICE_ERROR@n=2", *SETUP, "sign:0:0", "sign:0:0", "sign:0:0",
                  "sign:0:0", env={"HSMTLS_FAULT_LOG": str(log)})
    assert results(steps)[-4:] == ["CKR_OK", "CKR_DEVICE_ERROR", "CKR_OK", "CKR_OK"], steps
    faults = [l for l in log_lines(log) if "C_Sign: CKR_DEVICE_ERROR (rule 1)" in l]
    assert len(faults) == 1, log.read_text()
    steps = drive(sandbox, "C_Sign:error=0x30@every=2", *SETUP, *["sign:0:0"] * 4)
    assert results(steps)[-4:] == ["CKR_OK", "CKR_DEVICE_ERROR", "CKR_OK", "CKR_DEVICE_ERROR"], steps
    # '*' counts every call but the ones around initialisation (C_GetInfo is not one):
    # `present` makes two C_GetSlotList calls, so the third call is the second's first.
    steps = drive(sandbox, "*:error=CKR_FUNCTION_FAILED@n=3", "init", "getinfo", "present", "present", "present")
    r = results(steps)
    assert r[:2] == ["CKR_OK", "CKR_OK"] and r[3] == "CKR_FUNCTION_FAILED", steps
    assert isinstance(r[2], int) and r[2] == r[4] >= 2, steps


def test_an_error_ends_the_operation_as_pkcs11_says(sandbox, fault):
    """After an injected error in C_Sign the same session starts a new signature (the
    real module's operation was ended), as after a real error."""
    steps = drive(sandbox, "C_Sign:error=CKR_DEVICE_MEMORY@n=1", *SETUP, "sign:0:0", "sign:0:0")
    assert results(steps)[-2:] == ["CKR_DEVICE_MEMORY", "CKR_OK"], steps


def test_login_failure(sandbox, fault):
    steps = drive(sandbox, "C_Login:error=CKR_PIN_INCORRECT@n=1", "init", "slot:server", "open", "login:0",
                  "login:0", "find:0:rsa2048", "sign:0:0")
    assert results(steps)[3:] == ["CKR_PIN_INCORRECT", "CKR_OK", "CKR_OK", "CKR_OK"], steps


def test_delay_jitter_and_hang_take_at_least_their_time(sandbox, fault, tmp_path):
    log = tmp_path / "log"
    steps = drive(sandbox, "C_Sign:delay=300ms;C_SignInit:delay=100ms~100ms;C_Login:hang=1s",
                  "init", "slot:server", "open", "timed:login:0", "find:0:rsa2048", "timed:sign:0:0",
                  env={"HSMTLS_FAULT_LOG": str(log)})
    login, sign = dict(steps)["timed:login:0"], dict(steps)["timed:sign:0:0"]
    assert login[0] == "CKR_OK" and login[1] >= 1.0, steps
    assert sign[0] == "CKR_OK" and sign[1] >= 0.4, steps  # SignInit 100-200 ms, Sign 300 ms
    text = log.read_text()
    assert "C_Login: hang 1000.0ms (rule 3)" in text and "C_Sign: delay 300.0ms (rule 1)" in text, text
    jitter = float(re.search(r"C_SignInit: delay ([\d.]+)ms", text).group(1))
    assert 100.0 <= jitter <= 200.0, text


def test_time_window(sandbox, fault):
    steps = drive(sandbox, "C_Sign:error=CKR_DEVICE_ERROR@from=1.5s,for=1.5s", *SETUP,
                  "sign:0:0", "at:0.3", "sign:0:0", "at:1.8", "sign:0:0", "at:3.5", "sign:0:0")
    signs, at = [], None
    for cmd, r in steps:
        if cmd.startswith("at:"):
            at = r
        elif cmd == "sign:0:0" and at is not None:
            signs.append((at, r))
    # The module's clock starts in C_Initialize, after the driver's: a call at driver
    # time t is at module time at most t. Only calls clearly inside or outside count.
    for t, r in signs:
        if t <= 1.3:
            assert r == "CKR_OK", steps
        elif 1.9 <= t <= 2.9:
            assert r == "CKR_DEVICE_ERROR", steps
    assert signs[-1][1] == "CKR_OK", steps  # at 3.5 s or later the window is over


class Controlled:
    """The driver running while the test writes the control file between its phases."""

    def __init__(self, sandbox, plan, commands, tmp_path, env=None):
        self.control = tmp_path / "control"
        self.control.write_text("")
        self.log = tmp_path / "log"
        env = {**fault_env(sandbox, plan, HSMTLS_FAULT_CONTROL=str(self.control), HSMTLS_FAULT_LOG=str(self.log)),
               **(env or {})}
        self.proc = subprocess.Popen(["/usr/bin/python3", __file__, str(FAULT), *commands],
                                     env=sandbox.env_for("python3", env), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.steps = []

    def until_wait(self):
        """Reads results up to the next `wait`; returns them."""
        got = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"driver ended: {self.steps + got} {self.proc.stderr.read()}")
            cmd, r = json.loads(line)
            if cmd == "wait":
                break
            got.append((cmd, r))
        self.steps += got
        return results(got)

    def state(self, word):
        self.control.write_text(word)
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self):
        out, err = self.proc.communicate(timeout=60)
        got = [tuple(json.loads(line)) for line in out.splitlines()]
        self.steps += got
        assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err
        assert self.proc.returncode == 0, err
        return results(got)


def test_token_remove_and_return(sandbox, fault, tmp_path):
    d = Controlled(sandbox, "token:remove@state=remove",
                   [*SETUP, "present", "all", "sign:0:0", "wait",
                    "present", "all", "tokeninfo", "sign:0:0", "open", "wait",
                    "present", "sign:0:0", "open", "login:1", "find:1:rsa2048", "sign:1:1", "fin"], tmp_path)
    before = d.until_wait()
    assert before[-3:-1] == [4, 4] or (before[-3] >= 2 and before[-2] >= before[-3]), before
    assert before[-1] == "CKR_OK"
    present, total = before[-3], before[-2]
    time.sleep(0.1)  # the control file is read at most every 50 ms
    d.state("remove")
    assert d.until_wait() == [0, total, "CKR_TOKEN_NOT_PRESENT", "CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT"]
    time.sleep(0.1)
    d.state("")
    # Back: the old session and its login are gone; a new session must log in again.
    assert d.finish() == [present, "CKR_SESSION_HANDLE_INVALID", "CKR_OK", "CKR_OK", "CKR_OK", "CKR_OK", "CKR_OK"]
    text = d.log.read_text()
    assert "token removed (1 sessions lost)" in text and "CKR_DEVICE_REMOVED" in text, text
    assert last_counts(d.log) == (2, 2, 0)


def test_device_down_stays_down_until_initialised_again(sandbox, fault, tmp_path):
    d = Controlled(sandbox, "device:down@state=down",
                   [*SETUP, "sign:0:0", "wait",
                    "sign:0:0", "present", "getinfo", "open", "wait",
                    "sign:0:0", "present", "getinfo", "fin", "init", "present",
                    "sign:0:0", "open", "login:1", "find:1:rsa2048", "sign:1:1", "fin"], tmp_path)
    assert d.until_wait()[-1] == "CKR_OK"
    time.sleep(0.1)
    d.state("down")
    assert d.until_wait() == ["CKR_DEVICE_ERROR"] * 4
    time.sleep(0.1)
    d.state("")
    after = d.finish()
    # The device is back, but the module answers CKR_DEVICE_ERROR until C_Finalize +
    # C_Initialize; then it works, and the session from before is gone.
    assert after[:5] == ["CKR_DEVICE_ERROR"] * 3 + ["CKR_OK", "CKR_OK"], after
    assert isinstance(after[5], int) and after[5] >= 2, after
    assert after[6:] == ["CKR_SESSION_HANDLE_INVALID"] + ["CKR_OK"] * 5, after
    assert "device down" in d.log.read_text()
    assert last_counts(d.log) == (2, 2, 0)


def test_sessions_invalidate(sandbox, fault, tmp_path):
    d = Controlled(sandbox, "sessions:invalidate@state=flip",
                   [*SETUP, "open", "sign:0:0", "sign:1:0", "wait",
                    "sign:0:0", "sign:1:0", "close:0", "open", "login:2", "find:2:rsa2048", "sign:2:1",
                    "fin"], tmp_path)
    assert d.until_wait()[-2:] == ["CKR_OK", "CKR_OK"]
    time.sleep(0.1)
    d.state("flip")
    after = d.finish()
    # Both sessions lost (and their login: the new session logs in again).
    assert after == ["CKR_SESSION_HANDLE_INVALID"] * 3 + ["CKR_OK"] * 4 + ["CKR_OK"], after
    text = d.log.read_text()
    assert re.search(r"sessions invalidated: 2 \(rule 1\)", text), text
    assert last_counts(d.log) == (3, 3, 0)


def test_sessions_invalidated_under_threads_leak_nothing(sandbox, fault, tmp_path):
    log = tmp_path / "log"
    # The anchor (a session of the real module's own) keeps the token logged in while
    # every session of ours is lost.
    steps = drive(sandbox, "sessions:invalidate@every=25", "init", "slot:server", "open", "login:0",
                  "find:0:ec-p256", "anchor", "threads:8:40", "close:0", "fin",
                  env={"HSMTLS_FAULT_LOG": str(log)}, timeout=120)
    assert dict(steps)["anchor"] == "CKR_OK", steps
    got = dict(steps)["threads:8:40"]
    assert set(got) <= {"CKR_OK", "CKR_SESSION_HANDLE_INVALID"}, got
    assert got.get("CKR_OK", 0) > 0 and got.get("CKR_SESSION_HANDLE_INVALID", 0) > 0, got
    assert sum(got.values()) == 8 * 40
    opened, closed, still_open = last_counts(log)
    assert opened == closed and still_open == 0, log.read_text()[-2000:]


def test_objects_stale(sandbox, fault, tmp_path):
    d = Controlled(sandbox, "objects:stale@state=stale",
                   [*SETUP, "find:0:rsa2048", "keys", "sign:0:0", "wait",
                    "sign:0:0", "attr:0:0", "find:0:rsa2048", "sign:0:2", "keys", "fin"], tmp_path)
    before = d.until_wait()
    first = before[-2]
    assert first[0] == first[1] and before[-1] == "CKR_OK", before  # the same object, the same handle
    time.sleep(0.1)
    d.state("stale")
    after = d.finish()
    assert after[:4] == ["CKR_KEY_HANDLE_INVALID", "CKR_OBJECT_HANDLE_INVALID", "CKR_OK", "CKR_OK"], after
    assert after[4][2] not in after[4][:2], after  # found again: a new handle
    assert "object handle stale" in d.log.read_text()


def test_control_file_switches_other_processes(sandbox, fault, tmp_path):
    """One file, read by each process on its own: pkcs11-tool started after each write
    sees the state, and so does the hsmtls CLI."""
    control = tmp_path / "control"
    plan = "token:remove@state=remove"
    env = {"HSMTLS_FAULT_CONTROL": str(control)}
    control.write_text("remove\n")
    proc = pkcs11_tool(sandbox, "-L", plan=plan, **env)
    assert "token label" not in proc.stdout, proc.stdout
    proc = sandbox.hsmtls("tokens", env={"HSMTLS_PKCS11_MODULE": str(fault), **fault_env(sandbox, plan, **env)})
    assert '"server"' not in proc.stdout and "label" not in proc.stdout.lower().replace("labels", ""), proc.stdout
    control.write_text("")
    proc = pkcs11_tool(sandbox, "-L", plan=plan, **env)
    assert re.search(r"token label\s+: server", proc.stdout), proc.stdout
    control.unlink()  # a missing file is no state
    proc = pkcs11_tool(sandbox, "-L", plan=plan, **env)
    assert re.search(r"token label\s+: server", proc.stdout), proc.stdout


def test_fork_child_initialises_again(sandbox, fault):
    steps = drive(sandbox, "", *SETUP, "sign:0:0", "fork", "sign:0:0", "fin")
    assert [r for c, r in steps if c != "child"][-4:] == ["CKR_OK", "child ok", "CKR_OK", "CKR_OK"], steps


def test_bad_plans_are_refused_in_one_line(sandbox, fault):
    cases = [
        ("C_Sign:delay=1ms;C_Sing:error=CKR_DEVICE_ERROR",
         'hsmtls-fault: HSMTLS_FAULT rule 2 "C_Sing:error=CKR_DEVICE_ERROR": unknown function "C_Sing"'),
        ("C_Sign:error=CKR_NO_SUCH", 'rule 1 "C_Sign:error=CKR_NO_SUCH": unknown return code "CKR_NO_SUCH"'),
        ("C_Sign:delay=5parsecs", 'rule 1 "C_Sign:delay=5parsecs": delay=5parsecs: bad duration'),
        ("token:remove@soon=1", 'unknown condition "soon"'),
    ]
    for plan, message in cases:
        proc = pkcs11_tool(sandbox, "-L", plan=plan)
        assert proc.returncode != 0
        lines = [l for l in proc.stderr.splitlines() if l.startswith("hsmtls-fault:")]
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert "CKR_ARGUMENTS_BAD" in proc.stderr, proc.stderr
    proc = sandbox.run("pkcs11-tool", "--module", fault, "-L", env={"HSMTLS_FAULT_MODULE": None})
    assert proc.returncode != 0 and "hsmtls-fault: HSMTLS_FAULT_MODULE is not set" in proc.stderr, proc.stderr
    proc = sandbox.run("pkcs11-tool", "--module", fault, "-L", env={"HSMTLS_FAULT_MODULE": str(fault)})
    assert proc.returncode != 0 and "is hsmtls-fault itself" in proc.stderr, proc.stderr


def demo(sandbox, plan, log):
    env = base_env()
    env.update({"HSMTLS_PROVIDER": str(PROVIDER), "HSMTLS_FAULT_LOG": str(log)})
    proc = subprocess.run([str(BIN / "hsmtls"), "demo", "--sandbox", str(sandbox.dir), "--fault", plan], env=env,
                          capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(proc)
    return proc


@pytest.mark.parametrize("plan", ["C_Sign:delay=20ms", "C_Sign:error=CKR_SESSION_HANDLE_INVALID@n=1"])
def test_demo_survives_latency_and_a_one_off_error(sandbox, fault, tmp_path, plan):
    log = tmp_path / "log"
    proc = demo(sandbox, plan, log)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"fault plan: {plan} (hsmtls-fault in front of " in proc.stdout, proc.stdout
    assert proc.stdout.count('signatures   token "server" 1, token "client" 1') == 2, proc.stdout
    text = log.read_text()
    assert ("C_Sign: delay 20.0ms" in text) if "delay" in plan else ("C_Sign: CKR_SESSION_HANDLE_INVALID" in text)


def test_demo_fault_needs_a_plan(sandbox):
    proc = demo(sandbox, "C_Sign:delay=20parsecs", pathlib.Path("/dev/null"))
    assert proc.returncode != 0
    assert 'hsmtls-fault: HSMTLS_FAULT rule 1 "C_Sign:delay=20parsecs"' in proc.stderr, proc.stderr
