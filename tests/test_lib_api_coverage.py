"""Every function declared in the public headers (lib/include/hsmtls/*.h) is called by
at least one C test (tests/c/*.c): a new getter or setter without a test fails here,
named."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADERS = ROOT / "lib" / "include" / "hsmtls"
C_TESTS = ROOT / "tests" / "c"


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
    text = "\n".join(strip_comments(p.read_text()) for p in sorted(C_TESTS.glob("*.c")))
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


def test_every_public_function_is_called_by_a_c_test():
    called = called_in_tests()
    missing = {}
    for header in sorted(HEADERS.glob("*.h")):
        names = [n for n in declared_functions(header) if n not in called]
        if names:
            missing[header.name] = names
    assert not missing, "public functions no C test in tests/c/*.c calls: " + "; ".join(
        f"{h}: {', '.join(n)}" for h, n in missing.items())
