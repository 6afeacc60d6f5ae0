#!/usr/bin/python3
"""Writes docs/api.md, the libhsmtls C API reference, from the comments in the public
headers (lib/include/hsmtls/*.h).

    /usr/bin/python3 docs/gen-api.py            # rewrite docs/api.md
    /usr/bin/python3 docs/gen-api.py --check    # exit 1 if docs/api.md is stale or a
                                                # public function has no comment

A public function is documented by the comment directly above it or directly above the
contiguous group of declarations it belongs to (no blank line between). Types, enums
and #define constants are shown with the group they sit in. tests/test_docs.py runs
the same checks."""
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADERS = ROOT / "lib" / "include" / "hsmtls"
OUT = ROOT / "docs" / "api.md"
REGENERATE = "/usr/bin/python3 docs/gen-api.py"

# The order a reader meets them in; headers not listed follow in name order.
ORDER = ["error.h", "config.h", "cert.h", "key.h", "conn.h", "dtls.h", "dtls_verifier.h"]


def strip_comments(lines):
    """Each line's code with /* */ and // comments removed (state carried across lines)."""
    out, in_comment = [], False
    for line in lines:
        code, i = [], 0
        while i < len(line):
            if in_comment:
                end = line.find("*/", i)
                if end < 0:
                    i = len(line)
                else:
                    in_comment, i = False, end + 2
            elif line.startswith("/*", i):
                in_comment, i = True, i + 2
            elif line.startswith("//", i):
                i = len(line)
            elif line[i] == '"':  # a string literal may hold "/*"
                end = i + 1
                while end < len(line) and line[end] != '"':
                    end += 2 if line[end] == "\\" else 1
                code.append(line[i:end + 1])
                i = end + 1
            else:
                code.append(line[i])
                i += 1
        out.append("".join(code))
    return out


class Item:
    def __init__(self, kind, lines, first):
        self.kind = kind      # "blank", "comment", "code", "pp", "boiler"
        self.lines = lines
        self.line = first     # 1-based line number of the first line

    @property
    def text(self):
        return "\n".join(self.lines)


def parse(text):
    """Splits a header into blank lines, leading comments, statements and preprocessor
    lines, in order."""
    lines = text.split("\n")
    codes = strip_comments(lines)
    items, i = [], 0
    while i < len(lines):
        line, code = lines[i], codes[i].strip()
        if not line.strip():
            items.append(Item("blank", [line], i + 1))
            i += 1
        elif not code:  # a comment on lines of its own
            start = i
            while i < len(lines) and lines[i].strip() and not codes[i].strip():
                i += 1
                if lines[i - 1].rstrip().endswith("*/"):
                    break
            items.append(Item("comment", lines[start:i], start + 1))
        elif code.startswith("#"):
            start = i
            while codes[i].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
            i += 1
            block = lines[start:i]
            kind = "pp" if re.match(r"#\s*define\s+(?!HSMTLS_\w+_H\b)", code) else "boiler"
            items.append(Item(kind, block, start + 1))
        elif code in ('extern "C" {', "}"):
            items.append(Item("boiler", [line], i + 1))
            i += 1
        else:  # a statement: until braces and parentheses close and a ';' ends it
            start, depth = i, 0
            while True:
                c = codes[i]
                depth += c.count("{") + c.count("(") - c.count("}") - c.count(")")
                i += 1
                head = " ".join(codes[start:i]).strip()
                body_done = c.rstrip().endswith("}") and not re.match(r"(typedef|enum|struct|union)\b", head)
                if depth <= 0 and (c.rstrip().endswith(";") or body_done) or i >= len(lines):
                    break  # a declaration, or an inline function's body
            items.append(Item("code", lines[start:i], start + 1))
    return items


FUNC = re.compile(r"\b(hsmtls_\w+)\s*\(")


def function_name(item):
    """The function a statement declares, or None (types, enums, variables)."""
    if item.kind != "code":
        return None
    code = " ".join(strip_comments(item.lines)).strip()
    if code.startswith("typedef") or re.match(r"(enum|struct|union)\b[^(]*\{", code):
        return None
    m = FUNC.search(code)
    return m.group(1) if m else None


def doc_comment(items, index):
    """The comment above items[index] or above its contiguous group, or None."""
    j = index - 1
    while j >= 0 and items[j].kind in ("code", "pp"):
        j -= 1
    return items[j] if j >= 0 and items[j].kind == "comment" else None


def headers():
    found = {p.name: p for p in HEADERS.glob("*.h")}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [found[n] for n in names]


def functions():
    """[(header name, function, line, documented)] for every public function."""
    out = []
    for path in headers():
        items = parse(path.read_text())
        for k, item in enumerate(items):
            name = function_name(item)
            if name:
                out.append((path.name, name, item.line, doc_comment(items, k) is not None))
    return out


def undocumented():
    return [f"lib/include/hsmtls/{h}:{line}: {name}" for h, name, line, ok in functions() if not ok]


def comment_prose(item):
    """A comment's text as Markdown: the comment markers gone, list-like and indented
    lines kept on lines of their own."""
    body = []
    for k, line in enumerate(item.lines):
        s = line.strip()
        if k == 0:
            s = s[2:]
        if s.endswith("*/"):
            s = s[:-2]
        s = re.sub(r"^\* ?", "", s) if k else s.lstrip()
        body.append(s.rstrip())
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    out = []
    for s in body:
        s = s.strip()
        # "- item", "1. step" and "NAME   - meaning" lines start a line of their own.
        if out and out[-1] and re.match(r"(- |\d+\. |[A-Z_]{2,}\s+- )", s):
            out[-1] += "  "
        # C text, not markup.
        out.append(s.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*"))
    return "\n".join(out)


def render():
    out = [
        "# libhsmtls C API reference",
        "",
        "Generated from the comments in `lib/include/hsmtls/*.h` by `docs/gen-api.py`: do not",
        f"edit it by hand; after changing a header, run `{REGENERATE}`.",
        "`tests/test_docs.py` fails when a public function has no comment or this file is stale.",
        "",
        "Include the headers as `#include <hsmtls/NAME.h>`; link with `pkg-config --cflags --libs",
        "hsmtls` (see [quickstart.md](quickstart.md) for a first program).",
        "",
    ]
    sections = []
    for path in headers():
        items = parse(path.read_text())
        names = [function_name(it) for it in items if function_name(it)]
        sections.append((path.name, items, names))
    out.append("| Header | Functions |")
    out.append("|---|---|")
    for name, _, names in sections:
        anchor = re.sub(r"[^a-z0-9_-]", "", f"hsmtls/{name}".lower())  # GitHub's heading ids
        out.append(f"| [`hsmtls/{name}`](#{anchor}) | {len(names)} |")
    out.append("")
    for name, items, names in sections:
        out += [f"## hsmtls/{name}", ""]
        k = 0
        while k < len(items):
            item = items[k]
            if item.kind == "comment":
                prose = comment_prose(item)
                group = []
                j = k + 1
                while j < len(items) and items[j].kind in ("code", "pp"):
                    group.append(items[j])
                    j += 1
                if prose:
                    out += [prose, ""]
                if group:
                    out += ["```c"] + [ln for g in group for ln in g.lines] + ["```", ""]
                k = j
            elif item.kind in ("code", "pp"):
                group = []
                while k < len(items) and items[k].kind in ("code", "pp"):
                    group.append(items[k])
                    k += 1
                out += ["```c"] + [ln for g in group for ln in g.lines] + ["```", ""]
            else:
                k += 1
        out += ["Functions: " + ", ".join(f"`{n}`" for n in names) if names else "No functions.", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv):
    if argv[1:] == ["--check"]:
        missing = undocumented()
        stale = not OUT.exists() or OUT.read_text() != render()
        for m in missing:
            print(f"undocumented public function: {m}", file=sys.stderr)
        if stale:
            old = OUT.read_text().splitlines() if OUT.exists() else []
            sys.stderr.writelines(l + "\n" for l in difflib.unified_diff(
                old, render().splitlines(), "docs/api.md", "fresh", lineterm="", n=1))
            print(f"docs/api.md is stale: run {REGENERATE}", file=sys.stderr)
        return 1 if missing or stale else 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(render())
    for m in undocumented():
        print(f"warning: undocumented public function: {m}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
