#!/usr/bin/env python3
"""Import graph of the Rust core (core/src): fails if the modules or files import in a cycle.

Why: a cycle means no layer can be understood, tested or moved on its own (issue 13, item 4).
The core is layered bottom-up (time/error/types -> sse/provider/... -> router) and this script
keeps it that way.

How it reads the code (Python 3 stdlib only, no rustc):
  * every `use crate::...;` / `use super::...;` statement (brace trees expanded) and every
    inline `crate::a::b` / `super::x` path in code (comments and doc comments are ignored);
  * a path is resolved to the file that *defines* the item: `pub use` re-exports (the crate
    root's, a `mod.rs` facade's) are followed, so `crate::Error` points at error.rs, and a
    facade's own `pub use` lines and `mod x;` declarations are not edges;
  * file edges are collapsed to top-level module edges (`provider/mock/plan.rs` -> `provider`).

Exit status: 0 when both graphs are acyclic, 1 otherwise (every cycle found is printed).
  --graph      also print the module-level edges (with one example file edge each)
  --files      also print every file-level edge
  --no-tests   ignore test-only files (`tests.rs`) and `#[cfg(test)] mod tests { ... }` blocks
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_path(rel):
    """core/src-relative file path -> module segments (lib.rs -> [], a/mod.rs -> [a])."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    """Drop // and /* */ comments (keeps string contents, so `://` in URLs survives)."""
    out, i, n = [], 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1 : i + 2])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i)
            chunk = text[i : (n if j < 0 else j + 2)]
            out.append("\n" * chunk.count("\n"))
            i = n if j < 0 else j + 2
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i : i + 4]):
            # a char literal such as '"' must not open a string
            m = re.match(r"'(\\.|[^\\'])'", text[i : i + 4])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_blocks(text):
    """Remove `#[cfg(test)] mod name { ... }` blocks (brace-matched)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
        if not m:
            return text
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[: m.start()] + "\n" * text[m.start() : j].count("\n") + text[j:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]; `self` inside braces is its parent."""
    tree = re.sub(r"\s+as\s+", "@", tree)  # `Foo as Bar` -> `Foo@Bar`
    tree = re.sub(r"\s+", "", tree)
    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def rec(prefix, s):
        b = s.find("{")
        if b < 0:
            full = prefix + s
            if full.endswith("::self"):
                full = full[: -len("::self")]
            return [full]
        head, body = s[:b], s[b + 1 : s.rfind("}")]
        out = []
        for p in split_top(body):
            out += rec(prefix + head, p) if p else []
        return out

    return rec("", tree)


class File:
    def __init__(self, rel, text):
        self.rel = rel
        self.mod = module_path(rel)
        self.text = text
        # names this file defines itself
        self.defines = set(re.findall(
            r"\b(?:struct|enum|trait|fn|type|const|static|union|macro_rules!)\s+(" + IDENT + ")", text))
        self.defines |= set(re.findall(r"\bmod\s+(" + IDENT + r")\s*\{", text))
        self.reexports = {}      # name -> absolute path tuple it re-exports
        self.glob_reexports = [] # absolute module paths re-exported with `*`
        self.uses = []           # (line, absolute path tuple)


def absolutize(segs, here, inline_depth=0):
    """Resolve `crate::`/`super::`/`self::` relative paths to absolute segment tuples."""
    segs = list(segs)
    base = list(here)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        depth = inline_depth
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                if depth > 0:
                    depth -= 1
                else:
                    base = base[:-1]
            segs = segs[1:]
    else:
        # a plain `use child::X` inside a module (e.g. `pub use endpoint::Endpoint` in mod.rs)
        pass
    return tuple(base + segs)


def parse(files):
    mods = {f.mod: f for f in files}
    for f in files:
        text = f.text
        # `use` statements (possibly multi-line)
        for m in re.finditer(r"(?m)^[ \t]*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
            # any `pub`/`pub(crate)` use is a facade: importers are resolved through it
            is_pub = bool(m.group(1))
            line = text.count("\n", 0, m.start()) + 1
            inline_depth = inline_mod_depth(text, m.start())
            for path in expand_use_tree(m.group(2)):
                segs = [x for x in path.split("::") if x]
                alias = None
                if segs and "@" in segs[-1]:
                    segs[-1], alias = segs[-1].split("@", 1)
                if not segs:
                    continue
                first = segs[0]
                if first not in ("crate", "super", "self") and (f.mod + (first,)) not in mods:
                    continue  # external crate or std
                absp = absolutize(segs, f.mod, inline_depth)
                if is_pub and inline_depth == 0:
                    if absp[-1] == "*":
                        f.glob_reexports.append(absp[:-1])
                    else:
                        f.reexports[alias or absp[-1]] = absp
                else:
                    f.uses.append((line, absp))
        # inline paths in code, outside `use` statements
        code = re.sub(r"(?m)^[ \t]*(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", lambda m: "\n" * m.group(0).count("\n"), text)
        for m in re.finditer(r"\b(crate|super)((?:::(?:super|" + IDENT + "))+)", code):
            segs = [m.group(1)] + [s for s in m.group(2).split("::") if s]
            line = code.count("\n", 0, m.start()) + 1
            f.uses.append((line, absolutize(segs, f.mod, inline_mod_depth(code, m.start()))))
    return mods


def inline_mod_depth(text, pos):
    """How many inline `mod x { ... }` blocks enclose `pos` (for `super::` resolution)."""
    depth = 0
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text[:pos]):
        d, j = 1, m.end()
        while j < pos and d:
            d += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if d:
            depth += 1
    return depth


def resolve(path, mods, seen=None):
    """Absolute path -> the file (module tuple) that defines its first item, following re-exports."""
    seen = seen or set()
    if path in seen:
        return None
    seen.add(path)
    # longest prefix that is a file
    for k in range(len(path), -1, -1):
        if path[:k] in mods:
            f = mods[path[:k]]
            rest = path[k:]
            if not rest or rest[0] == "*":
                return f.mod
            name = rest[0]
            if name in f.defines:
                return f.mod
            if name in f.reexports:
                target = f.reexports[name] + tuple(rest[1:])
                r = resolve(target, mods, seen)
                return r if r is not None else f.mod
            for g in f.glob_reexports:
                r = resolve(g + tuple(rest), mods, seen)
                if r is not None and (name in mods[r].defines or name in mods[r].reexports or mods[r].glob_reexports):
                    return r
            return f.mod
    return None


def find_cycles(nodes, edges):
    """Tarjan SCCs with more than one node (or a self loop), each with one concrete cycle."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def a_cycle(comp, edges):
    """One concrete cycle through the component's first node (BFS back to it)."""
    comp = set(comp)
    start = min(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in comp and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def main(argv):
    no_tests = "--no-tests" in argv
    files = []
    for dirpath, _, names in os.walk(ROOT):
        for n in sorted(names):
            if not n.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, n), ROOT).replace(os.sep, "/")
            if no_tests and (n == "tests.rs" or n.endswith("_tests.rs")):
                continue
            text = strip_comments(open(os.path.join(dirpath, n), encoding="utf-8").read())
            if no_tests:
                text = drop_test_blocks(text)
            files.append(File(rel, text))
    mods = parse(files)

    def rel_of(mod):
        return mods[mod].rel

    def top(mod):
        return mod[0] if mod else "(root)"

    file_edges, why = defaultdict(set), {}
    for f in files:
        for line, path in f.uses:
            target = resolve(path, mods)
            if target is None or target == f.mod:
                continue
            file_edges[f.mod].add(target)
            why.setdefault((f.mod, target), f"{f.rel}:{line} -> {'::'.join(path)}")
    mod_edges, mod_why = defaultdict(set), {}
    for a, bs in file_edges.items():
        for b in bs:
            if top(a) != top(b) and a and b:
                mod_edges[top(a)].add(top(b))
                mod_why.setdefault((top(a), top(b)), why[(a, b)])

    tops = sorted({top(m) for m in mods if m})
    n_file_edges = sum(len(v) for v in file_edges.values())
    print(f"core/src: {len(files)} files, {n_file_edges} file edges; {len(tops)} top-level modules, "
          f"{sum(len(v) for v in mod_edges.values())} module edges")
    if "--graph" in argv:
        for a in tops:
            for b in sorted(mod_edges.get(a, ())):
                print(f"  {a} -> {b}    (e.g. {mod_why[(a, b)]})")
    if "--files" in argv:
        for a in sorted(file_edges):
            for b in sorted(file_edges[a]):
                print(f"  {rel_of(a)} -> {rel_of(b)}")

    failed = False
    for comp in find_cycles(tops, mod_edges):
        failed = True
        cyc = a_cycle(comp, mod_edges)
        print(f"\nMODULE CYCLE ({len(comp)} modules: {', '.join(comp)}):")
        for a, b in zip(cyc, cyc[1:]):
            print(f"  {a} -> {b}    ({mod_why[(a, b)]})")
    for comp in find_cycles(list(mods), file_edges):
        failed = True
        cyc = a_cycle(comp, file_edges)
        print(f"\nFILE CYCLE ({len(comp)} files: {', '.join(rel_of(m) for m in comp)}):")
        for a, b in zip(cyc, cyc[1:]):
            print(f"  {why[(a, b)]}")
    if failed:
        print("\nimport-graph: cycles found (move the shared type down a layer; see scripts/import-graph.py)")
        return 1
    print("import-graph: no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
