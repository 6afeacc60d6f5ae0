"""hsmtls beside other PKCS#11 users in one process (issue 11), on the session sandbox's
SoftHSM2 module: GnuTLS's PKCS#11 (tests/c/test_coexist_gnutls.c) and libp11's engine
(tests/c/test_coexist_libp11.c) sign with the client token's key while libhsmtls makes
mutual handshakes with the server and client token keys, in several orders, and the
process exits cleanly; and all three at once (tests/c/test_coexist_both.c), libp11
finalising the module while GnuTLS holds it. Also: `hsmtls demo` through OpenSC's
pkcs11-spy initialises the module once for the whole process."""
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BIN, assert_no_sanitizer_report, c_cases
from test_demo import demo_alone, sections

LIBP11_ENGINE = pathlib.Path("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so")
SPY = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so"

# The orders are the programs' cases (PROGRAM --list). Per order: the hsmtls handshakes
# that must complete and the other library's signatures that must verify, as the
# programs print them (an order without an entry here fails, saying so).
GNUTLS_ORDERS = {"gnutls-first": (3, 1), "hsmtls-first": (3, 1), "interleaved": (5, 2)}
LIBP11_ORDERS = {"engine-first": (2, 2), "hsmtls-first": (2, 2), "finish-middle": (3, 1),
                 "engine-first-finish-middle": (3, 1)}
# libp11 finalises the module under libhsmtls: the handshakes after it may fail, but only
# clearly. (before the C_Finalize: handshakes that must complete; after it: handshakes.)
LIBP11_FINALIZE_ORDERS = {"finalize-middle": (1, 2), "engine-first-finalize-middle": (1, 2)}
# GnuTLS holds the module while libp11 finalises it (test_coexist_both): (before libp11's
# C_Finalize: handshakes that must complete; after it: handshakes that must complete).
BOTH_ORDERS = {"gnutls-holds-finalize-middle": (1, 3)}


def gnutls_program(name="test_coexist_gnutls"):
    """A program built only with GnuTLS's development files (test_coexist_gnutls,
    test_coexist_both)."""
    program = BIN / name
    if not program.exists():
        has_dev = subprocess.run(["pkg-config", "--exists", "gnutls"]).returncode == 0 \
            if shutil.which("pkg-config") else False
        if not has_dev:
            pytest.skip("GnuTLS's development files are not installed (Debian: libgnutls28-dev): "
                        f"{name} is not built")
        pytest.fail(f"{program} is missing although pkg-config finds gnutls: build again")
    return program


def require_libp11_engine():
    if not LIBP11_ENGINE.exists():
        pytest.skip(f"libp11's engine {LIBP11_ENGINE} is not installed (Debian: libengine-pkcs11-openssl)")


def libp11_program():
    require_libp11_engine()
    return BIN / "test_coexist_libp11"


def expected(table, order):
    assert order in table, f"order {order!r}: say in tests/test_coexist.py what it must print"
    return table[order]


def libp11_orders(finalize):
    """test_coexist_libp11's cases: those where libp11 finalises the module, or the others."""
    return [p for p in c_cases("test_coexist_libp11") if (p.values[0] in LIBP11_FINALIZE_ORDERS) == finalize]


def run_case(sandbox, program, *args, env=None):
    """One case in a process of its own: the programs load every part they use
    themselves, so no openssl.cnf loads the provider a second way."""
    proc = sandbox.run(program, sandbox.dir, *args, env={"OPENSSL_CONF": None, **(env or {})}, timeout=120)
    out = proc.stdout + proc.stderr
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out}"
    assert re.search(r"^\d+ passed, 0 failed$", proc.stdout, re.M), out
    assert f"# done {' '.join(args)}\n" in proc.stdout, out
    return proc


def handshakes(out, outcome="ok"):
    return len(re.findall(rf"^# [^\n]*: hsmtls handshake {re.escape(outcome)}", out, re.M))


def run_through_spy(sandbox, program, order, log):
    """run_case with OpenSC's pkcs11-spy in front of the sandbox's module (every user in
    the process is given the spy's path), logging to `log`; returns the process and the
    log."""
    proc = run_case(sandbox, program, order,
                    env={"HSMTLS_PKCS11_MODULE": SPY, "PKCS11SPY": sandbox.env["HSMTLS_PKCS11_MODULE"],
                         "PKCS11SPY_OUTPUT": str(log)})
    return proc, log.read_text()


def assert_finalized_then_initialized(spy):
    """The spy's log shows a C_Finalize that returned CKR_OK (libp11's), then a
    C_Initialize that returned CKR_OK (the core starting the module again)."""
    finalized = re.search(r"^\d+: C_Finalize\n(?:.*\n){0,6}?Returned:\s+0 CKR_OK", spy, re.M)
    assert finalized, "libp11 did not finalise the module: the case no longer tests what it says"
    assert re.search(r"^\d+: C_Initialize\n(?:.*\n){0,12}?Returned:\s+0 CKR_OK", spy[finalized.end():], re.M), \
        "nothing initialised the module again after libp11's C_Finalize"


def split_at_engine_finish(out):
    """The program's output before and after libp11's ENGINE_finish."""
    lines = out.splitlines()
    cut = next(i for i, line in enumerate(lines) if "ENGINE_finish and ENGINE_free done" in line)
    return "\n".join(lines[:cut]), "\n".join(lines[cut:])


@pytest.mark.parametrize("mode", ["manual", "auto"])
@pytest.mark.parametrize("order", c_cases("test_coexist_gnutls", optional=True))
def test_gnutls_and_hsmtls_in_one_process(sandbox, order, mode):
    """manual: gnutls_pkcs11_add_provider(the sandbox's module); auto: p11-kit's registry,
    where Debian registers the same SoftHSM2 library. p11-kit finalises the module at
    gnutls_pkcs11_deinit() when its own C_Initialize was the first: hsmtls must still
    sign afterwards, with the configs it kept and with new ones."""
    proc = run_case(sandbox, gnutls_program(), order, mode)
    want_handshakes, want_signatures = expected(GNUTLS_ORDERS, order)
    assert "FAILED" not in proc.stdout, proc.stdout
    assert handshakes(proc.stdout) == want_handshakes, proc.stdout
    assert proc.stdout.count("GnuTLS signature on token client verified") == want_signatures, proc.stdout
    assert "gnutls_pkcs11_deinit and gnutls_global_deinit done" in proc.stdout, proc.stdout


@pytest.mark.parametrize("order", libp11_orders(finalize=False))
def test_libp11_engine_and_hsmtls_in_one_process(sandbox, order):
    """libp11's engine signs with the client key by EVP_DigestSign (a legacy EC_KEY whose
    method signs on the token); ENGINE_finish and ENGINE_free before exit, or between
    hsmtls handshakes."""
    proc = run_case(sandbox, libp11_program(), order)
    want_handshakes, want_signatures = expected(LIBP11_ORDERS, order)
    assert "FAILED" not in proc.stdout, proc.stdout
    assert handshakes(proc.stdout) == want_handshakes, proc.stdout
    assert proc.stdout.count("libp11 signature on token client verified") == want_signatures, proc.stdout
    assert "ENGINE_finish and ENGINE_free done" in proc.stdout, proc.stdout


@pytest.mark.parametrize("order", libp11_orders(finalize=True))
def test_libp11_finalizing_the_module_under_hsmtls(sandbox, order, tmp_path):
    """libp11 calls C_Finalize at ENGINE_finish when it holds no private key (a public key
    read only), whoever initialised the module: hsmtls still holds sessions and keys. The
    core sees CKR_CRYPTOKI_NOT_INITIALIZED, starts the module again (it is down: nobody
    else loses anything), logs in again from the PIN it kept and finds its keys again, so
    every handshake after it completes. Run through pkcs11-spy, whose log shows that
    libp11's C_Finalize really happened and that the core initialised the module again."""
    proc, spy = run_through_spy(sandbox, libp11_program(), order, tmp_path / "spy.log")
    assert_finalized_then_initialized(spy)
    before, after = LIBP11_FINALIZE_ORDERS[order]
    assert "libp11 read the public key on token client (the certificate's)" in proc.stdout, proc.stdout
    earlier, later = split_at_engine_finish(proc.stdout)
    assert handshakes(earlier) == before, proc.stdout
    assert "FAILED" not in later, proc.stdout
    assert handshakes(later) == after, proc.stdout


@pytest.mark.parametrize("order", c_cases("test_coexist_both", optional=True))
def test_libp11_finalizing_the_module_gnutls_holds(sandbox, order, tmp_path):
    """GnuTLS (gnutls_pkcs11_init manual, gnutls_pkcs11_add_provider) holds the module
    through p11-kit when libp11's ENGINE_finish calls the module's own C_Finalize. p11-kit
    still counts it initialised for GnuTLS, so the core's C_Initialize through p11-kit
    reaches nothing: the core asks the module (C_GetInfo answers
    CKR_CRYPTOKI_NOT_INITIALIZED) and initialises it directly
    (hsmtls_p11_module_restart_if_lost), and every hsmtls handshake after it completes,
    before and after GnuTLS's deinit. Through pkcs11-spy, whose log shows libp11's
    C_Finalize and the C_Initialize after it.

    GnuTLS's own signatures after the C_Finalize are not asserted (the program tolerates
    their failure): with GnuTLS 3.7 the key it kept fails (its session and object handles
    are from before; C_SignInit answers CKR_OBJECT_HANDLE_INVALID), a key it imports again
    signs. Its stale session handle can by then name one of hsmtls's sessions, which
    GnuTLS closes at deinit: the handshake after GnuTLS's deinit must complete anyway."""
    program = gnutls_program("test_coexist_both")
    require_libp11_engine()
    proc, spy = run_through_spy(sandbox, program, order, tmp_path / "spy.log")
    assert_finalized_then_initialized(spy)
    before, after = expected(BOTH_ORDERS, order)
    assert "libp11 read the public key on token client (the certificate's)" in proc.stdout, proc.stdout
    earlier, later = split_at_engine_finish(proc.stdout)
    assert "FAILED" not in earlier, proc.stdout
    assert earlier.count("GnuTLS signature on token client verified") == 1, proc.stdout
    assert handshakes(earlier) == before, proc.stdout
    assert handshakes(later) == after and "hsmtls handshake FAILED" not in later, proc.stdout
    assert "gnutls_pkcs11_deinit and gnutls_global_deinit done" in later, proc.stdout


def test_demo_initializes_the_module_once_per_process(sandbox, tmp_path):
    """`hsmtls demo --module <pkcs11-spy>` with the spy in front of the sandbox's SoftHSM2:
    the CLI, libhsmtls and the provider it loads share one PKCS#11 state, so the spy sees
    one C_Initialize for the whole process, and each token still signs once per
    handshake."""
    log = tmp_path / "spy.log"
    proc = demo_alone("--sandbox", sandbox.dir, "--module", SPY,
                      env={"PKCS11SPY": sandbox.env["HSMTLS_PKCS11_MODULE"], "PKCS11SPY_OUTPUT": str(log)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = sections(proc.stdout)
    assert set(found) == {"TLS", "DTLS"}, proc.stdout
    for lines in found.values():
        assert lines[-1] == '  signatures   token "server" 1, token "client" 1', lines
    spy = log.read_text()
    assert "C_Sign" in spy, "the demo did not go through the spy"
    initializes = re.findall(r"^\d+: C_Initialize$", spy, re.M)
    assert len(initializes) == 1, f"{len(initializes)} C_Initialize calls in one process (want 1)"
