"""Smoke test of hsmtls-bench-sign: a short run against the test sandbox prints its
signature table (raw, core, provider, software), its PKCS#11 call counts through the
core and through the provider, and its TLS handshake table (openssl s_server with the
token key and with the software key). Rates are not judged here beyond being positive
(that is the benchmark's job); the call counts are exact and are."""
import re

import pytest

from conftest import BIN, assert_no_sanitizer_report

BENCH = BIN / "hsmtls-bench-sign"

# key threads raw/s core/s prov/s soft/s core/raw% prov/raw% token/soft% calls/sig
ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%"
                 r"\s+([\d.]+)%\s+([\d.]+)$", re.M)
LOAD = re.compile(r"^\s+per key load \((\S+), first lookup, after login\): (\d+) \(", re.M)
CACHED = re.compile(r"^\s+per key load \((\S+), cached second lookup\): (\d+) \(", re.M)
PROVIDER = re.compile(r"^PKCS#11 calls through the provider.*?(?=^\S|\Z)", re.M | re.S)
PROV_SIG = re.compile(r"^\s+per warm signature \((\S+), EVP_DigestSign\): ([\d.]+) \(", re.M)
PROV_LOAD = re.compile(r"^\s+per key load \((\S+), after login\): (\d+) \(", re.M)
# key version token/s soft/s token/soft% token/ideal calls/hs
TLS_ROW = re.compile(r"^(\S+)\s+(TLSv1\.[23])\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+(\S+)\s+([\d.]+)$",
                     re.M)


def server_env(sandbox):
    """What a system `openssl` needs beyond the sandbox environment (the sanitizer
    preload in a sanitizer build), passed to the bench's s_server children only."""
    extra = {k: v for k, v in sandbox.env_for("openssl").items() if sandbox.env.get(k) != v}
    return {f"HSMTLS_BENCH_SERVER_{k}": v for k, v in extra.items()}


@pytest.fixture(scope="module")
def bench_run(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing: the build lacks bench/ (add_subdirectory(bench))")
    proc = sandbox.run(BENCH, "--seconds", "0.2", "--threads", "1", "--keys", "ec-p256",
                       env=server_env(sandbox), timeout=180)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_row_has_positive_rates_for_raw_core_provider_and_software(bench_run):
    rows = ROW.findall(bench_run)
    assert len(rows) == 1, bench_run
    key, threads, raw, core, prov, soft, core_raw, prov_raw, token_soft, _ = rows[0]
    assert (key, threads) == ("ec-p256", "1")
    assert int(raw) > 0 and int(core) > 0 and int(prov) > 0 and int(soft) > 0, bench_run
    assert float(core_raw) > 0 and float(prov_raw) > 0 and float(token_soft) > 0, bench_run


def test_warm_signature_through_the_core_costs_exactly_two_calls(bench_run):
    calls_per_sig = ROW.findall(bench_run)[0][9]
    assert calls_per_sig == "2.000", bench_run


def test_key_load_through_the_core_costs_at_most_twelve_calls_and_a_cached_lookup_none(bench_run):
    load = LOAD.search(bench_run)
    cached = CACHED.search(bench_run)
    assert load and cached, bench_run
    assert load.group(1) == "rsa3072"  # the first key this run had not loaded
    assert 0 < int(load.group(2)) <= 12, bench_run
    assert int(cached.group(2)) == 0, bench_run


def test_warm_signature_through_the_provider_costs_exactly_two_calls(bench_run):
    section = PROVIDER.search(bench_run)
    assert section, bench_run
    sigs = PROV_SIG.findall(section.group(0))
    assert sigs == [("ec-p256", "2.000")], bench_run


def test_key_load_through_the_provider_costs_at_most_twelve_calls_after_login(bench_run):
    section = PROVIDER.search(bench_run)
    assert section, bench_run
    loads = PROV_LOAD.findall(section.group(0))
    assert [label for label, _ in loads] == ["rsa3072"], bench_run
    assert 0 < int(loads[0][1]) <= 12, bench_run


def test_handshake_rows_are_positive_for_tls13_and_tls12(bench_run):
    rows = TLS_ROW.findall(bench_run)
    assert [(key, version) for key, version, *_ in rows] == \
        [("ec-p256", "TLSv1.3"), ("ec-p256", "TLSv1.2")], bench_run
    for _, _, token, soft, ratio, _, _ in rows:
        assert int(token) > 0 and int(soft) > 0 and float(ratio) > 0, bench_run


def test_token_server_makes_two_pkcs11_calls_per_handshake(bench_run):
    # One signature per full handshake (CertificateVerify, or ServerKeyExchange in
    # TLS 1.2 with ECDHE): C_SignInit + C_Sign in the s_server that holds the token key.
    assert [row[6] for row in TLS_ROW.findall(bench_run)] == ["2.000", "2.000"], bench_run


def test_no_tls_skips_the_handshakes(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1", "--threads", "1", "--keys", "ec-p256",
                       "--no-tls", timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert len(ROW.findall(proc.stdout)) == 1, proc.stdout
    assert "TLS handshakes" not in proc.stdout and not TLS_ROW.search(proc.stdout), proc.stdout


def test_missing_sandbox_environment_is_a_clear_error(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1",
                       env={"SOFTHSM2_CONF": None, "HSMTLS_PKCS11_MODULE": None,
                            "HSMTLS_SANDBOX": None})
    assert proc.returncode != 0
    assert "sandbox" in proc.stderr and "env.sh" in proc.stderr, proc.stderr


# hsmtls-bench-dtls: DTLS handshakes against openssl s_server -dtls1_2 -listen and
# hsmtls dtls-serve (token key and software key), and echoed datagrams over one
# association with each.
BENCH_DTLS = BIN / "hsmtls-bench-dtls"
# server key handshakes/s [token/soft%]
DTLS_HS_ROW = re.compile(r"^(openssl s_server|hsmtls dtls-serve)\s+(token|soft)\s+(\d+)"
                         r"(?:\s+([\d.]+)%)?\s*$", re.M)
# server datagrams/s MB/s stalls
DTLS_ECHO_ROW = re.compile(r"^(openssl s_server|hsmtls dtls-serve)\s+(\d+)\s+([\d.]+)\s+(\d+)\s*$",
                           re.M)


@pytest.fixture(scope="module")
def bench_dtls_run(sandbox):
    if not BENCH_DTLS.exists():
        pytest.fail(f"{BENCH_DTLS} is missing: the build lacks bench/ (add_subdirectory(bench))")
    proc = sandbox.run(BENCH_DTLS, "--seconds", "0.2", env=server_env(sandbox), timeout=180)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_dtls_handshake_rows_are_positive_for_both_servers_and_both_keys(bench_dtls_run):
    rows = DTLS_HS_ROW.findall(bench_dtls_run)
    assert [(server, key) for server, key, *_ in rows] == [
        ("openssl s_server", "token"), ("openssl s_server", "soft"),
        ("hsmtls dtls-serve", "token"), ("hsmtls dtls-serve", "soft")], bench_dtls_run
    for _, key, rate, ratio in rows:
        assert int(rate) > 0, bench_dtls_run
        if key == "token":
            assert float(ratio) > 0, bench_dtls_run


def test_dtls_echo_rows_are_positive_for_both_servers(bench_dtls_run):
    rows = DTLS_ECHO_ROW.findall(bench_dtls_run)
    assert [server for server, *_ in rows] == ["openssl s_server", "hsmtls dtls-serve"], \
        bench_dtls_run
    for _, datagrams, mbytes, _ in rows:
        assert int(datagrams) > 0 and float(mbytes) > 0, bench_dtls_run


def test_dtls_bench_without_sandbox_is_a_clear_error(sandbox):
    if not BENCH_DTLS.exists():
        pytest.fail(f"{BENCH_DTLS} is missing")
    proc = sandbox.run(BENCH_DTLS, "--seconds", "0.1",
                       env={"SOFTHSM2_CONF": None, "HSMTLS_PKCS11_MODULE": None,
                            "HSMTLS_SANDBOX": None})
    assert proc.returncode != 0
    assert "sandbox" in proc.stderr and "env.sh" in proc.stderr, proc.stderr
