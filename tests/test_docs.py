"""The docs: every public C function has a comment, docs/api.md is what docs/gen-api.py
makes of them, and every command the docs show runs.

The convention (docs/README.md says it for writers):
- ```sh blocks are commands. Per file, all of them run in order in one bash with
  `set -euo pipefail`, in a scratch directory, with $HSMTLS_SRC (the source tree),
  $HSMTLS_BUILD (the build under test, its bin/ first on PATH), $PORT and $PORT2 (free TCP
  ports), BENCH_SECONDS=0.2, BENCH_ROUNDS=1 and
  BENCH_IDLE=20 (benchmarks run briefly), HSMTLS_PROVIDER
  (this build's provider) and the session sandbox's env.sh sourced ($HSMTLS_SANDBOX, SOFTHSM2_CONF,
  HSMTLS_PKCS11_MODULE, OPENSSL_CONF). HOME is a scratch home whose
  ~/.cache/hsmtls/sandbox is that sandbox. A file fails as a whole, naming its failing
  command with its line and the output.
- ```text blocks are output (or URIs, transcripts): shown, not run.
- ```c, ```ini, ```nginx, ```cmake, ```conf blocks are files: each must appear word for
  word in a sh block of the same page (the heredoc that writes it), so what a page shows
  is what ran. docs/api.md, generated from the headers, is the exception.
- Any other fence (```bash, a bare ```) is refused: say which kind it is.
Background servers in sh blocks end with `&`, are waited for, and killed at the end;
whatever is left is killed with the script's process group."""
import importlib.util
import os
import re
import signal
import subprocess

import pytest

import peers
from conftest import BUILD, PROVIDER, ROOT, base_env, sanitized, sanitizer_preload

GEN = ROOT / "docs" / "gen-api.py"
REGENERATE = "/usr/bin/python3 docs/gen-api.py"

# Pages whose commands run. Every docs/*.md is picked up by itself.
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")) + [
    "README.md", "provider/README.md", "softhsm/README.md", "engine/README.md",
]

# sh blocks that are not run here, by page and first line, and why. A stale entry (no
# block starts so) fails, so this list cannot rot.
EXEMPT = {
    ("README.md", "apt-get update && apt-get install -y build-essential cmake pkg-config libssl-dev \\"):
        "installs system packages as root from the network; CI's image runs exactly this",
    ("README.md", "./run-demo"): "run as a user runs it by tests/test_front_door.py",
    ("README.md", "./run-tests"): "it is CI itself: builds both builds and runs this suite",
    ("README.md", ". ~/.cache/hsmtls/sandbox/env.sh     # SOFTHSM2_CONF, HSMTLS_PKCS11_MODULE, OPENSSL_CONF"):
        "interactive (asks for a PIN, runs a server in the foreground); the same commands run "
        "in docs/quickstart.md, docs/pins.md (--login) and docs/provider.md (s_server -key pkcs11:)",
    ("README.md", "cmake -S . -B build && cmake --build build -j        # programs land in build/bin/"):
        "builds in the shared source tree; the build under test was made by these commands",
    ("docs/quickstart.md", "cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo"):
        "builds in the source tree; the build under test was made by these commands",
    ("docs/quickstart.md", "./run-demo"): "run as a user runs it by tests/test_front_door.py",
    ("docs/fuzzing.md", "build-fuzz/bin/fuzz_keyfile_der -minimize_crash=1 -max_total_time=60 crash-HASH"):
        "needs a crashing input, and there is none to give (a finding is fixed and its input "
        "joins the corpus); replaying an input, the step before, runs",
}

FILE_LANGS = {"c", "ini", "nginx", "cmake", "conf"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")


def load_gen():
    spec = importlib.util.spec_from_file_location("gen_api", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_public_function_has_a_comment():
    missing = load_gen().undocumented()
    assert not missing, (
        "public functions without a comment directly above them or above their contiguous "
        "group of declarations:\n  " + "\n  ".join(missing))


def test_api_reference_is_fresh():
    gen = load_gen()
    fresh = gen.render()
    current = (ROOT / "docs" / "api.md").read_text() if (ROOT / "docs" / "api.md").exists() else ""
    assert current == fresh, f"docs/api.md differs from the headers: run {REGENERATE}"


def test_api_reference_lists_every_public_function():
    """The generator does not lose a declaration: every hsmtls_*( in a header that is a
    function declaration appears in docs/api.md."""
    api = (ROOT / "docs" / "api.md").read_text()
    declared = set()
    for h in (ROOT / "lib" / "include" / "hsmtls").glob("*.h"):
        text = re.sub(r"/\*.*?\*/", " ", h.read_text(), flags=re.S)
        text = re.sub(r"typedef[^;]*;", " ", text)
        declared |= set(re.findall(r"\b(hsmtls_\w+)\s*\(", text))
    listed = {name for _, name, _, _ in load_gen().functions()}
    assert declared == listed, f"generator missed {declared - listed}, invented {listed - declared}"
    assert all(f"`{name}`" in api for name in listed)


def test_generator_handles_what_headers_may_hold(tmp_path, monkeypatch):
    """Multi-line declarations, function-pointer typedefs, enums, #defines, trailing and
    multi-line comments, and an undocumented group are parsed as such."""
    gen = load_gen()
    (tmp_path / "x.h").write_text(
        "/* file comment */\n#ifndef HSMTLS_X_H\n#define HSMTLS_X_H\n\n"
        "/* Documented group: the callback and the setter. */\n"
        "typedef int (*hsmtls_x_cb)(void *arg,\n                          int n);\n"
        "int hsmtls_x_set_cb(hsmtls_x_cb cb,\n                    void *arg);\n"
        "enum hsmtls_x_kind hsmtls_x_kind_of(int n);  /* trailing */\n\n"
        "#define HSMTLS_X_MAX 5\n"
        "enum hsmtls_x_kind {\n    HSMTLS_X_A = 1, /* first,\n                       two lines */\n};\n"
        "int hsmtls_x_lonely(void);\n\n"
        "/* An inline helper. */\nstatic inline int hsmtls_x_twice(int n)\n{\n    return 2 * n;\n}\n"
        "int hsmtls_x_after(void);\n\n#endif\n")
    monkeypatch.setattr(gen, "HEADERS", tmp_path)
    got = {name: ok for _, name, _, ok in gen.functions()}
    assert got == {"hsmtls_x_set_cb": True, "hsmtls_x_kind_of": True, "hsmtls_x_lonely": False,
                   "hsmtls_x_twice": True, "hsmtls_x_after": True}
    assert gen.undocumented() == ["lib/include/hsmtls/x.h:17: hsmtls_x_lonely"]
    text = gen.render()
    assert "int hsmtls_x_set_cb(hsmtls_x_cb cb,\n                    void *arg);" in text
    assert "#define HSMTLS_X_MAX 5" in text and "Documented group" in text
    assert "HSMTLS_X_H" not in text


# ---- the commands -------------------------------------------------------------------

def blocks(path):
    """[(language, first line number of the content, content lines)] of a Markdown file."""
    out, lines, i = [], path.read_text().split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3)
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append((lang, start + 1, body))
        i += 1
    return out


def check_fences(page, found):
    problems = []
    sh_text = "\n".join("\n".join(b) for lang, _, b in found if lang == "sh")
    for lang, line, body in found:
        where = f"{page}:{line - 1}"
        if lang in ("sh", "text"):
            continue
        if lang in FILE_LANGS:
            if page != "docs/api.md" and "\n".join(body).strip() not in sh_text:
                problems.append(f"{where}: this ```{lang} file appears in no ```sh block of the page "
                                "(write it there with cat <<'EOF', or show that block instead)")
        else:
            problems.append(f"{where}: fence ```{lang or '(none)'}: use sh (run), text (output) or "
                            f"a file language ({', '.join(sorted(FILE_LANGS))})")
    return problems


def shell_wrappers(directory):
    """Programs in a directory put first on PATH. python3 is Debian's (the one on PATH
    may be another build). In a sanitizer build, system programs that load our
    instrumented provider or engine get the preload conftest computes, and cc
    instruments what the docs compile."""
    directory.mkdir()
    pre = sanitizer_preload()
    wraps = {"python3": ("/usr/bin/python3", {})}
    if pre:
        for prog in ("openssl", "pkcs11-tool", "softhsm2-util", "p11-kit"):
            wraps[prog] = (f"/usr/bin/{prog}", pre)
        wraps["python3"] = ("/usr/bin/python3", pre)
        wraps["nginx"] = ("/usr/sbin/nginx", pre)
        # curl and p11tool link GnuTLS and deadlock with libasan first: libc goes first
        # (test_engine.py). They load our provider through OpenSSL (libcurl's, or OpenSC's
        # module under p11-kit) when OPENSSL_CONF names it.
        gnutls_pre = {"LD_PRELOAD": "libc.so.6 " + pre["LD_PRELOAD"],
                      "ASAN_OPTIONS": "detect_leaks=0:verify_asan_link_order=0"}
        wraps["curl"] = ("/usr/bin/curl", gnutls_pre)
        wraps["p11tool"] = ("/usr/bin/p11tool", gnutls_pre)
    for prog, (real, env) in wraps.items():
        sets = " ".join(f"{k}='{v}'" for k, v in env.items())
        (directory / prog).write_text(f"#!/bin/sh\nexec env {sets} {real} \"$@\"\n")
        (directory / prog).chmod(0o755)
    if pre:  # programs the docs compile link the instrumented libhsmtls
        (directory / "cc").write_text('#!/bin/sh\nexec /usr/bin/cc -fsanitize=address,undefined "$@"\n')
        (directory / "cc").chmod(0o755)


def script_for(page, found):
    """The page's sh blocks as one bash script, and for each script line its page line."""
    lines = ["set -Eeuo pipefail",
             'trap \'echo "hsmtls-doc-failed $LINENO $?: $BASH_COMMAND" >&2\' ERR']
    where = [0, 0]
    for lang, line, body in found:
        if lang != "sh" or (page, body[0] if body else "") in EXEMPT:
            continue
        for k, text in enumerate(body):
            lines.append(text)
            where.append(line + k)
    return "\n".join(lines) + "\n", where


@pytest.mark.parametrize("page", PAGES)
def test_page_commands_run(page, sandbox, tmp_path):
    path = ROOT / page
    found = blocks(path)
    problems = check_fences(page, found)
    assert not problems, "\n".join(problems)
    script, where = script_for(page, found)
    if len(where) == 2:
        return  # no command to run (or all exempt): the fences were checked

    home = tmp_path / "home"
    (home / ".cache" / "hsmtls").mkdir(parents=True)
    (home / ".cache" / "hsmtls" / "sandbox").symlink_to(sandbox.dir)
    wrap = tmp_path / "wrap"
    shell_wrappers(wrap)
    work = tmp_path / "work"
    work.mkdir()
    env = base_env()
    env.pop("XDG_CACHE_HOME", None)
    env.update({"HOME": str(home), "HSMTLS_SRC": str(ROOT), "HSMTLS_BUILD": str(BUILD),
                "PORT": str(peers.free_port()), "PORT2": str(peers.free_port()),
                # Benchmarks run briefly: their commands read these (docs say the defaults).
                "BENCH_SECONDS": "0.2", "BENCH_ROUNDS": "1", "BENCH_IDLE": "20",
                "HSMTLS_BUILD_DIR": str(BUILD), "HSMTLS_PROVIDER": str(PROVIDER),
                "PATH": f"{wrap}:{BUILD / 'bin'}:{env['PATH']}"})
    preamble = f". '{sandbox.dir}/env.sh'\n"
    # Output to files, not pipes: a server a failed page leaves running would hold a pipe
    # open; the script's own exit is what is waited for.
    with open(tmp_path / "out", "w+") as fout, open(tmp_path / "err", "w+") as ferr:
        proc = subprocess.Popen(["bash", "-c", preamble + script], cwd=work, env=env, text=True,
                                stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr,
                                start_new_session=True)
        try:
            proc.wait(timeout=240)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        try:  # servers a page forgot, or left by a failure
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    if timed_out:
        pytest.fail(f"{page}: its commands ran over 240 s\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    if proc.returncode != 0:
        m = re.findall(r"hsmtls-doc-failed (\d+) (\d+): (.*)", err)
        if m:
            n, rc, cmd = m[0]
            n = int(n) - 2  # bash counts the preamble line and from 1
            line = where[n] if n < len(where) else "?"
            head = f"{page}:{line}: `{cmd}` exited {rc}"
        else:
            head = f"{page}: the commands exited {proc.returncode}"
        pytest.fail(f"{head}\nstdout (end):\n{out[-3000:]}\nstderr (end):\n{err[-4000:]}")
    report = out + err
    assert "ERROR: AddressSanitizer" not in report and "runtime error:" not in report, report[-4000:]


def test_exemptions_still_match():
    stale = []
    for page, first in EXEMPT:
        if not any(lang == "sh" and body and body[0] == first for lang, _, body in blocks(ROOT / page)):
            stale.append(f"{page}: no sh block starts with {first!r}")
    assert not stale, "\n".join(stale)


@pytest.mark.parametrize("page", PAGES)
def test_page_links_resolve(page):
    """Relative links of a page name files that exist (anchors and web links aside)."""
    path = ROOT / page
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page}: links to missing files: {broken}"
