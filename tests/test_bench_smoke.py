"""Smoke test of hsmtls-bench-sign: a short run against the test sandbox prints its table
and its PKCS#11 call counts. Rates are not judged here (that is the benchmark's job);
the call counts are exact and are."""
import re

import pytest

from conftest import BIN, assert_no_sanitizer_report

BENCH = BIN / "hsmtls-bench-sign"

# key threads raw/s core/s soft/s core/raw% token/soft% calls/sig
ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)$", re.M)
LOAD = re.compile(r"^\s+per key load \((\S+), first lookup, after login\): (\d+) \(", re.M)
CACHED = re.compile(r"^\s+per key load \((\S+), cached second lookup\): (\d+) \(", re.M)


@pytest.fixture(scope="module")
def bench_run(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing: the build lacks bench/ (add_subdirectory(bench))")
    proc = sandbox.run(BENCH, "--seconds", "0.2", "--threads", "1", "--keys", "ec-p256",
                       timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_row_has_positive_rates_for_raw_core_and_software(bench_run):
    rows = ROW.findall(bench_run)
    assert len(rows) == 1, bench_run
    key, threads, raw, core, soft, core_raw, token_soft, _ = rows[0]
    assert (key, threads) == ("ec-p256", "1")
    assert int(raw) > 0 and int(core) > 0 and int(soft) > 0, bench_run
    assert float(core_raw) > 0 and float(token_soft) > 0, bench_run


def test_warm_signature_costs_exactly_two_calls(bench_run):
    calls_per_sig = ROW.findall(bench_run)[0][7]
    assert calls_per_sig == "2.000", bench_run


def test_key_load_costs_at_most_twelve_calls_and_a_cached_lookup_none(bench_run):
    load = LOAD.search(bench_run)
    cached = CACHED.search(bench_run)
    assert load and cached, bench_run
    assert load.group(1) == "rsa3072"  # the first key this run had not loaded
    assert 0 < int(load.group(2)) <= 12, bench_run
    assert int(cached.group(2)) == 0, bench_run


def test_missing_sandbox_environment_is_a_clear_error(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1",
                       env={"SOFTHSM2_CONF": None, "HSMTLS_PKCS11_MODULE": None,
                            "HSMTLS_SANDBOX": None})
    assert proc.returncode != 0
    assert "sandbox" in proc.stderr and "env.sh" in proc.stderr, proc.stderr
