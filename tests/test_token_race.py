"""Several processes logging in to one SoftHSM2 token at once, as servers started together
do (docs/performance.md's benchmarks). SoftHSM2 2.6 rewrites token.object on every
C_Login (truncated under a lock, written after it): a process whose C_Initialize, slot
listing or C_Login reads the file in that gap loses the token ("no token matches",
CKR_USER_PIN_NOT_INITIALIZED, CKR_GENERAL_ERROR). The core retries with pauses and
re-initialises the module (docs/pkcs11-core.md, "Several processes on one SoftHSM2
token"). Before that, 8 processes at once failed in about one round of three."""
import subprocess
import time

from conftest import BIN, assert_no_sanitizer_report, sanitized

PIN = "1234"
# Processes per round and rounds: the old core failed about 25% of processes here.
PARALLEL = 8
ROUNDS = 4 if sanitized() else 12


def start(box, args):
    return subprocess.Popen([str(a) for a in args], env=box.env_for(args[0]), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_parallel_logins_find_the_token(sandbox, tmp_path):
    digest = tmp_path / "digest"
    digest.write_bytes(bytes(range(32)))
    lookup = ["objects", f"pkcs11:token=server?pin-value={PIN}"]
    sign = ["openssl", "pkeyutl", "-sign", "-in", digest,
            "-inkey", f"pkcs11:token=server;object=ec-p256;type=private?pin-value={PIN}"]
    failures, runs = [], 0
    for _ in range(ROUNDS):
        # The CLI's core and the provider's (as in `openssl s_server`) side by side.
        procs = [start(sandbox, [BIN / "hsmtls", *lookup] if i % 4 else
                       [*sign, "-out", tmp_path / f"sig{i}"]) for i in range(PARALLEL)]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            runs += 1
            assert_no_sanitizer_report(subprocess.CompletedProcess(proc.args, 0, out, err))
            if proc.returncode != 0:
                failures.append(err.strip())
            elif proc.args[0].endswith("hsmtls"):
                assert "label=ec-p256" in out, out
    assert not failures, f"{len(failures)} of {runs} processes failed:\n" + "\n".join(failures)


def test_missing_token_still_fails_soon(sandbox):
    """The retries are bounded: a token that is not there is reported after about 1 s."""
    began = time.monotonic()
    r = sandbox.hsmtls("objects", f"pkcs11:token=no-such-token?pin-value={PIN}")
    elapsed = time.monotonic() - began
    assert r.returncode != 0
    assert 'no token matches "pkcs11:token=no-such-token' in r.stderr, r.stderr
    assert '"server"' in r.stderr, r.stderr
    assert elapsed < (15 if sanitized() else 5), elapsed
