"""The C test programs' cases are listed once, in each program's own table (`PROGRAM
--list`), and pytest discovers them (conftest.c_cases). Here: every program under tests/c
has such a table (or is a named exception), every case it lists is run by some pytest
test, and a case name that is not in the table fails loudly."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import BIN, BUILD, ROOT, base_env

C_DIR = ROOT / "tests" / "c"

# Programs under tests/c that are not case programs, and why.
NOT_CASE_PROGRAMS = {
    "test_lib_peer": "a TLS peer driven by options (serve/connect), run by test_lib_peers.py",
}
# Programs built only when an optional peer's development files are there.
OPTIONAL = {program: "built only with GnuTLS's development files (libgnutls28-dev)"
            for program in ("test_coexist_gnutls", "test_coexist_both")}


def require_built(program):
    if not (BIN / program).exists() and program in OPTIONAL:
        pytest.skip(f"{program} is not built: {OPTIONAL[program]}")
    assert (BIN / program).exists(), f"{BIN / program} is not built"


def c_programs():
    """The programs built from tests/c: every file there with a main()."""
    return sorted(p.stem for p in C_DIR.glob("*.c") if re.search(r"^int main\(", p.read_text(), re.M))


def case_programs():
    return [p for p in c_programs() if p not in NOT_CASE_PROGRAMS]


def listed(program):
    proc = subprocess.run([str(BIN / program), "--list"], capture_output=True, text=True, env=base_env(),
                          timeout=60)
    assert proc.returncode == 0, f"{program} --list exited {proc.returncode}: {proc.stderr}"
    return proc.stdout.split()


def test_exceptions_are_real():
    """A stale exception (no such program, or one that has a case table after all) fails."""
    for program in NOT_CASE_PROGRAMS:
        source = C_DIR / f"{program}.c"
        assert source.exists(), f"NOT_CASE_PROGRAMS names {program}, which tests/c does not have"
        assert "check_case" not in source.read_text(), f"{program} has a case table: drop the exception"


@pytest.mark.parametrize("program", case_programs())
def test_program_lists_its_cases(program):
    """Each program has a case table and lists it, one name a line, no name twice."""
    assert "check_case" in (C_DIR / f"{program}.c").read_text(), (
        f"tests/c/{program}.c has no check_case table: give it one (check.h), or name it in "
        "NOT_CASE_PROGRAMS with the reason")
    require_built(program)
    names = listed(program)
    assert names and len(names) == len(set(names)), names
    assert all(re.fullmatch(r"[a-z0-9_-]+", n) for n in names), names


@pytest.mark.parametrize("program", case_programs())
def test_unknown_case_fails_loudly(program, tmp_path):
    require_built(program)
    proc = subprocess.run([str(BIN / program), str(tmp_path), "no-such-case"],
                          capture_output=True, text=True, env=base_env(), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'no case "no-such-case"' in proc.stderr and "the cases are:" in proc.stderr, proc.stderr


def test_every_listed_case_is_run_by_pytest(tmp_path):
    """Collects the whole suite (as ./run-tests does) and compares the C cases its tests
    run (their c_case marks) with what each program lists."""
    out = tmp_path / "cases.json"
    env = dict(os.environ, HSMTLS_C_CASES_OUT=str(out), HSMTLS_BUILD_DIR=str(BUILD))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                           "-p", "no:cacheprovider", str(ROOT / "tests")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads(out.read_text())
    missing = {}
    for program in case_programs():
        if program in OPTIONAL and not (BIN / program).exists():
            continue  # test_program_lists_its_cases says so
        names = set(listed(program)) - set(run.get(program, []))
        if names:
            missing[program] = sorted(names)
    assert not missing, f"C cases no pytest test runs (use conftest.c_cases): {missing}"
    unknown = {p: c for p, c in run.items() if p not in case_programs() or not set(c) <= set(listed(p))}
    assert run, "no test carries a c_case mark: conftest.c_cases is not in use"
    assert not unknown, f"pytest runs cases the programs do not list: {unknown}"
