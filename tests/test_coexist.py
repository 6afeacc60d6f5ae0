"""hsmtls beside other PKCS#11 users in one process (issue 11), on the session sandbox's
SoftHSM2 module: GnuTLS's PKCS#11 (tests/c/test_coexist_gnutls.c) and libp11's engine
(tests/c/test_coexist_libp11.c) sign with the client token's key while libhsmtls makes
mutual handshakes with the server and client token keys, in several orders, and the
process exits cleanly. Also: `hsmtls demo` through OpenSC's pkcs11-spy initialises the
module once for the whole process."""
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


def gnutls_program():
    program = BIN / "test_coexist_gnutls"
    if not program.exists():
        has_dev = subprocess.run(["pkg-config", "--exists", "gnutls"]).returncode == 0 \
            if shutil.which("pkg-config") else False
        if not has_dev:
            pytest.skip("GnuTLS's development files are not installed (Debian: libgnutls28-dev): "
                        "test_coexist_gnutls is not built")
        pytest.fail(f"{program} is missing although pkg-config finds gnutls: build again")
    return program


def libp11_program():
    if not LIBP11_ENGINE.exists():
        pytest.skip(f"libp11's engine {LIBP11_ENGINE} is not installed (Debian: libengine-pkcs11-openssl)")
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
    log = tmp_path / "spy.log"
    proc = run_case(sandbox, libp11_program(), order,
                    env={"HSMTLS_PKCS11_MODULE": SPY, "PKCS11SPY": sandbox.env["HSMTLS_PKCS11_MODULE"],
                         "PKCS11SPY_OUTPUT": str(log)})
    spy = log.read_text()
    finalized = re.search(r"^\d+: C_Finalize\n(?:.*\n){0,6}?Returned:\s+0 CKR_OK", spy, re.M)
    assert finalized, "libp11 did not finalise the module: the case no longer tests what it says"
    assert re.search(r"^\d+: C_Initialize\n(?:.*\n){0,12}?Returned:\s+0 CKR_OK", spy[finalized.end():], re.M), \
        "nothing initialised the module again after libp11's C_Finalize"
    before, after = LIBP11_FINALIZE_ORDERS[order]
    assert "libp11 read the public key on token client (the certificate's)" in proc.stdout, proc.stdout
    lines = proc.stdout.splitlines()
    cut = next(i for i, line in enumerate(lines) if "ENGINE_finish and ENGINE_free done" in line)
    assert handshakes("\n".join(lines[:cut])) == before, proc.stdout
    later = "\n".join(lines[cut:])
    assert "FAILED" not in later, proc.stdout
    assert handshakes(later) == after, proc.stdout


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
