"""Smoke test of hsmtls-bench-remote: a short run (0.3 s per variant, latency 0 and 1 ms,
ec-p256, no peer provider) against the sandbox's token behind `p11-kit server` prints a
row per latency and variant: the hsmtls provider with its lanes, with HSMTLS_P11_LANES=1,
and the software key, each with a positive handshake rate. Rates are not judged beyond
that (that is the benchmark's job); what is exact is: the key came through the provider
named, HSMTLS_P11_LANES=1 makes one connection, and no handshake failed."""
import os
import re
import shutil

import pytest

from conftest import BIN, P11_KIT_CLIENT, assert_no_sanitizer_report

BENCH = BIN / "hsmtls-bench-remote"

# latency key variant keyprov hs/s srv-us/hs p11-us/hs rpc/hs conns failed /peer /lanes=1
NUM = r"(\d+|-)"
ROW = re.compile(r"^(\d+ms)\s+(\S+)\s+(hsmtls|hsmtls-lanes=1|pkcs11-provider|software)\s+(\S+)"
                 r"\s+(\d+)\s+(\d+)\s+" + NUM + r"\s+([\d.]+|-)\s+" + NUM + r"\s+(\d+)"
                 r"\s+([\d.]+%|-)\s+([\d.]+%|-)$", re.M)


def needs_p11_kit():
    if not shutil.which("p11-kit") or not os.path.exists(P11_KIT_CLIENT):
        pytest.skip(f"p11-kit's server and client are needed (the p11-kit program and "
                    f"{P11_KIT_CLIENT}: Debian's p11-kit and p11-kit-modules)")


def server_env(sandbox):
    """The sanitizer preload (sanitizer builds only) for the system's p11-kit, which loads
    this build's hsmtls-fault: passed as HSMTLS_BENCH_SERVER_<NAME>."""
    extra = {k: v for k, v in sandbox.env_for("p11-kit").items() if sandbox.env.get(k) != v}
    return {f"HSMTLS_BENCH_SERVER_{k}": v for k, v in extra.items()}


@pytest.fixture(scope="module")
def bench_run(sandbox):
    needs_p11_kit()
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing: the build lacks bench/remote.cmake")
    proc = sandbox.run(BENCH, "--seconds", "0.3", "--latency", "0,1", "--keys", "ec-p256",
                       env=server_env(sandbox), timeout=60)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_rows_for_each_latency_and_variant_have_positive_rates(bench_run):
    rows = ROW.findall(bench_run)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (lat, "ec-p256", variant) for lat in ("0ms", "1ms")
        for variant in ("hsmtls", "hsmtls-lanes=1", "software")], bench_run
    for lat, _, variant, keyprov, rate, cpu, _, calls, conns, failed, vs_peer, _ in rows:
        assert int(rate) > 0, bench_run
        assert int(failed) == 0, bench_run
        assert vs_peer == "-", bench_run  # no --peer-provider
        if variant == "software":
            assert keyprov == "default" and conns == "-", bench_run
        else:
            assert keyprov == "hsmtls", bench_run  # the token key, through the provider
            assert int(conns) >= 1 and float(calls) > 0, bench_run


def test_one_lane_is_one_connection(bench_run):
    for row in ROW.findall(bench_run):
        if row[2] == "hsmtls-lanes=1":
            assert row[8] == "1", bench_run


def test_header_names_machine_openssl_latency_and_threads(bench_run):
    assert re.search(r"^machine: \d+ CPUs online \(nproc\); OpenSSL 3", bench_run, re.M), bench_run
    assert "latency per C_Sign: 0 ms, 1 ms" in bench_run, bench_run
    assert "4 threads accepting" in bench_run and "clients: 4 threads" in bench_run, bench_run


def test_missing_sandbox_environment_is_a_clear_error(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1",
                       env={"SOFTHSM2_CONF": None, "HSMTLS_PKCS11_MODULE": None,
                            "HSMTLS_SANDBOX": None})
    assert proc.returncode == 2, proc.stderr
    assert "sandbox" in proc.stderr and "env.sh" in proc.stderr, proc.stderr
