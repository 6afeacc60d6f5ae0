"""Every function declared in the public headers of libhsmtls (lib/include/hsmtls/*.h)
and of the PKCS#11 core (pkcs11/include/hsmtls/*.h) is called by at least one C test
(tests/c/*.c, tests/unit/*.c): a new getter or setter without a test fails here, named.
The core's shared library exports exactly what its headers declare."""
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADERS = ROOT / "lib" / "include" / "hsmtls"
CORE_HEADERS = ROOT / "pkcs11" / "include" / "hsmtls"
C_TESTS = [ROOT / "tests" / "c", ROOT / "tests" / "unit"]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def declared_functions(header):
    """Names of the functions a header declares (not function-pointer typedefs)."""
    text = strip_comments(header.read_text())
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    names = []
    for stmt in re.split(r"[;{}]", text):
        stmt = stmt.strip()
        if not stmt or stmt.startswith("typedef") or stmt.startswith("extern"):
            continue
        m = re.search(r"\b(hsmtls_\w+)\s*\(", stmt)
        if m:
            names.append(m.group(1))
    return names


def called_in_tests():
    text = "\n".join(strip_comments(p.read_text()) for d in C_TESTS for p in sorted(d.glob("*.c")))
    return set(re.findall(r"\b(hsmtls_\w+)\s*\(", text))


def test_parser_finds_declarations():
    """The parser itself: it must see the functions it is meant to check, and never a
    callback typedef, or the test below could pass by seeing nothing."""
    conn = declared_functions(HEADERS / "conn.h")
    config = declared_functions(HEADERS / "config.h")
    assert "hsmtls_conn_new" in conn and "hsmtls_conn_verified_chain_cert" in conn
    assert "hsmtls_session_ticket_lifetime_hint" in conn
    assert "hsmtls_config_set_psk_client_cb" in config
    assert "hsmtls_read_cb" not in conn and "hsmtls_pin_cb" not in config
    assert len(config) > 60


@pytest.mark.parametrize("headers", [HEADERS, CORE_HEADERS], ids=["libhsmtls", "core"])
def test_every_public_function_is_called_by_a_c_test(headers):
    called = called_in_tests()
    missing = {}
    for header in sorted(headers.glob("*.h")):
        names = [n for n in declared_functions(header) if n not in called]
        if names:
            missing[header.name] = names
    assert not missing, "public functions no C test in tests/c or tests/unit calls: " + "; ".join(
        f"{h}: {', '.join(n)}" for h, n in missing.items())


def test_core_exports_exactly_its_public_headers(build):
    """The core's version script (pkcs11/libhsmtls-pkcs11.map) and the symbols the built
    library exports both match the functions its headers declare: an internal function
    cannot leak into the process-wide ABI, and a declared one cannot be missing."""
    declared = {n for h in CORE_HEADERS.glob("*.h") for n in declared_functions(h)}
    script = (ROOT / "pkcs11" / "libhsmtls-pkcs11.map").read_text()
    listed = set(re.findall(r"^\s+(hsmtls_\w+);", script, re.M))
    assert listed == declared, (sorted(listed - declared), sorted(declared - listed))
    lib = build.parent / "lib" / "libhsmtls-pkcs11.so.0"
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                        text=True, check=True).stdout
    exported = set(re.findall(r" T (\w+)@@HSMTLS_PKCS11_0$", nm, re.M))
    assert exported == declared, (sorted(exported - declared), sorted(declared - exported))
