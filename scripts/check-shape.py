#!/usr/bin/env python3
"""House-rule check: no file in core/src over ~600 lines of code and no function over ~120.

Counts code lines (not blank, not `//` comments, not doc comments) and excludes `#[cfg(test)]
mod tests { ... }` blocks and files that are only tests (`tests.rs`): tests are long lists of
cases, not logic. Functions are found by brace matching from a `fn` signature, good enough for
rustfmt-shaped code. Exits non-zero, listing offenders, so CI keeps the shape true.

    python3 scripts/check-shape.py [--max-file 600] [--max-fn 120] [ROOT...]
"""
import argparse
import pathlib
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def strip(lines):
    """Drop test modules; return (code lines with their numbers)."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod\s+\w+\s*\{", lines[i + 1]):
            depth, i = 0, i + 1
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0:
                    break
            continue
        out.append((i + 1, line))
        i += 1
    return out


def is_code(line):
    s = line.strip()
    return bool(s) and not s.startswith("//")


def functions(code):
    """Yield (name, first line number, code-line count) for each fn with a body."""
    for k, (no, line) in enumerate(code):
        m = FN.match(line)
        if not m:
            continue
        depth, opened, n = 0, False, 0
        for _, l in code[k:]:
            if is_code(l):
                n += 1
            depth += l.count("{") - l.count("}")
            if "{" in l:
                opened = True
            if opened and depth <= 0:
                break
            if not opened and l.rstrip().endswith(";"):
                n = 0  # a declaration without a body (trait method)
                break
        if n:
            yield m.group(6), no, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-file", type=int, default=600)
    ap.add_argument("--max-fn", type=int, default=120)
    ap.add_argument("roots", nargs="*", default=["core/src"])
    a = ap.parse_args()
    bad = []
    for root in a.roots:
        for p in sorted(pathlib.Path(root).rglob("*.rs")):
            if p.name == "tests.rs":
                continue
            code = strip(p.read_text(encoding="utf-8").splitlines())
            n = sum(1 for _, l in code if is_code(l))
            if n > a.max_file:
                bad.append(f"{p}: {n} lines of code (max {a.max_file})")
            for name, no, size in functions(code):
                if size > a.max_fn:
                    bad.append(f"{p}:{no}: fn {name} is {size} lines of code (max {a.max_fn})")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} shape problem(s): split by concern (house rule 7)", file=sys.stderr)
        return 1
    print("shape ok: files and functions within limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
