"""Smoke test of hsmtls-bench-sign: a short run against the test sandbox prints its
signature table (raw on the token object, raw on a session copy of it, core, provider,
software; the peer provider only with --peer-provider, not given here), its PKCS#11
call counts through the core and through the provider (one shared core library, counted
in process), and its TLS handshake table (openssl s_server with the token key and with
the software key, with each server's CPU time per handshake). Rates are not judged here
beyond being positive (that is the benchmark's job); the call counts are exact and are."""
import re

import pytest

from conftest import BIN, assert_no_sanitizer_report

BENCH = BIN / "hsmtls-bench-sign"

# key threads raw/s copy/s core/s prov/s peer/s soft/s copy/raw core/copy prov/copy
# prov/peer calls/sig core-key
NUM = r"(\d+|-)"
PCT = r"([\d.]+%|-)"
ROW = re.compile(r"^(\S+)\s+(\d+)" + 6 * (r"\s+" + NUM) + 4 * (r"\s+" + PCT) +
                 r"\s+([\d.]+)\s+(copy|token|-)$", re.M)
LOAD = re.compile(r"^\s+per key load through the core \((\S+), first lookup\): (\d+) \(", re.M)
CACHED = re.compile(r"^\s+per key load through the core \((\S+), cached second lookup\): (\d+) \(",
                    re.M)
PROV_SIG = re.compile(r"^\s+per warm signature through the provider \((\S+), EVP_DigestSign\): "
                      r"([\d.]+) \(", re.M)
PROV_LOAD = re.compile(r"^\s+per key load through the provider \((\S+), (first load|same URI "
                       r"again)\): (\d+) \(", re.M)
COPIES = re.compile(r"^\s+C_CopyObject through the core in this run: (\d+) for (\d+) keys? "
                    r"signed with \((.*)\)$", re.M)
# key version ours/s soft/s peer/s ours/soft peer/soft us:ours us:soft us:peer +us:ours
# +us:peer calls/hs
TLS_ROW = re.compile(r"^(\S+)\s+(TLSv1\.[23])" + 3 * (r"\s+" + NUM) + 2 * (r"\s+" + PCT) +
                     3 * (r"\s+" + NUM) + 2 * (r"\s+(-?\d+|-)") + r"\s+([\d.]+)$", re.M)


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


def test_row_has_positive_rates_for_raw_copy_core_provider_and_software(bench_run):
    rows = ROW.findall(bench_run)
    assert len(rows) == 1, bench_run
    (key, threads, raw, copy, core, prov, peer, soft, copy_raw, core_copy, prov_copy, prov_peer,
     _, _) = rows[0]
    assert (key, threads) == ("ec-p256", "1")
    for rate in (raw, copy, core, prov, soft):
        assert rate != "-" and int(rate) > 0, bench_run
    for ratio in (copy_raw, core_copy, prov_copy):
        assert ratio != "-" and float(ratio.rstrip("%")) > 0, bench_run
    # No --peer-provider: no peer column, no ratio to it.
    assert (peer, prov_peer) == ("-", "-"), bench_run


def test_the_output_says_whether_the_core_signed_with_a_copy(bench_run):
    core_key = ROW.findall(bench_run)[0][13]
    assert core_key in ("copy", "token"), bench_run
    if core_key == "copy":  # the core's key cache (on by default) copied the key once
        assert "(copies per key: ec-p256 1)" in bench_run, bench_run


def test_warm_signature_through_the_core_costs_exactly_two_calls(bench_run):
    calls_per_sig = ROW.findall(bench_run)[0][12]
    assert calls_per_sig == "2.000", bench_run


def test_key_load_through_the_core_costs_at_most_twelve_calls_and_a_cached_lookup_none(bench_run):
    load = LOAD.search(bench_run)
    cached = CACHED.search(bench_run)
    assert load and cached, bench_run
    assert load.group(1) == "rsa3072"  # the first key this run had not loaded
    assert 0 < int(load.group(2)) <= 12, bench_run
    assert int(cached.group(2)) == 0, bench_run


def test_warm_signature_through_the_provider_costs_exactly_two_calls(bench_run):
    assert PROV_SIG.findall(bench_run) == [("ec-p256", "2.000")], bench_run


def test_key_load_through_the_provider_costs_at_most_twelve_calls_after_login(bench_run):
    loads = PROV_LOAD.findall(bench_run)
    # The second key this run had not loaded (the first went through the core).
    assert [(label, what) for label, what, _ in loads] == \
        [("ec-p384", "first load"), ("ec-p384", "same URI again")], bench_run
    assert 0 < int(loads[0][2]) <= 12 and int(loads[1][2]) == 0, bench_run


def test_at_most_one_copy_object_per_key(bench_run):
    copies = COPIES.search(bench_run)
    assert copies, bench_run
    assert int(copies.group(2)) == 1 and int(copies.group(1)) <= 1, bench_run
    assert copies.group(3) == "copies per key: ec-p256 " + copies.group(1), bench_run


def test_handshake_rows_are_positive_for_tls13_and_tls12(bench_run):
    rows = TLS_ROW.findall(bench_run)
    assert [(row[0], row[1]) for row in rows] == \
        [("ec-p256", "TLSv1.3"), ("ec-p256", "TLSv1.2")], bench_run
    for (_, _, ours, soft, peer, ours_soft, peer_soft, us_ours, us_soft, us_peer, _, plus_peer,
         _) in rows:
        assert int(ours) > 0 and int(soft) > 0 and float(ours_soft.rstrip("%")) > 0, bench_run
        # The servers' CPU per handshake: read from /proc in clock ticks, so only its
        # presence is checked over a 0.2 s run.
        assert us_ours != "-" and us_soft != "-", bench_run
        assert (peer, peer_soft, us_peer, plus_peer) == ("-", "-", "-", "-"), bench_run


def test_token_server_makes_two_pkcs11_calls_per_handshake(bench_run):
    # One signature per full handshake (CertificateVerify, or ServerKeyExchange in
    # TLS 1.2 with ECDHE): C_SignInit + C_Sign in the s_server that holds the token key.
    assert [row[-1] for row in TLS_ROW.findall(bench_run)] == ["2.000", "2.000"], bench_run


def test_no_tls_skips_the_handshakes(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1", "--threads", "1", "--keys", "ec-p256",
                       "--no-tls", timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert len(ROW.findall(proc.stdout)) == 1, proc.stdout
    assert "TLS handshakes" not in proc.stdout and not TLS_ROW.search(proc.stdout), proc.stdout


def test_without_the_key_cache_the_core_signs_with_the_token_object(sandbox):
    if not BENCH.exists():
        pytest.fail(f"{BENCH} is missing")
    proc = sandbox.run(BENCH, "--seconds", "0.1", "--threads", "1", "--keys", "ec-p256",
                       "--no-tls", env={"HSMTLS_KEY_CACHE": "0"}, timeout=120)
    assert_no_sanitizer_report(proc)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    rows = ROW.findall(proc.stdout)
    assert len(rows) == 1 and rows[0][13] == "token", proc.stdout
    assert int(rows[0][3]) > 0, proc.stdout  # the bench's own copy still signs
    copies = COPIES.search(proc.stdout)
    assert copies and copies.group(1) == "0", proc.stdout


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
