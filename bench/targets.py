#!/usr/bin/env python3
"""Issue 18's targets, every language's overhead bench in one run, judged in one table.

    bash bench/targets.sh [--quick] [--skip swift,node,...] [--out DIR]

Runs, one after the other so they never share the cores: the Rust overhead and stream
benches, Python's split, stream and aiohttp comparisons and import time, Node's bench
(interleaved and with a 1 ms gap, against a raw `net` socket and undici) and stream bench,
and the Swift bench. Each bench's own output is kept in DIR (default
`bench/results-raw/targets-<time>/`) with the load average before and after it; `report.md`
there (also printed) has the machine, the versions and the targets table.

Every figure is read from a bench's printed Markdown (or JSON), so the benches stay the
single place where a quantity is defined; a table that is missing or renamed stops this
script with the bench's output saved, instead of a quietly wrong verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
REL = TARGET / "release"
PY = HERE / "python" / ".venv" / "bin" / "python"
MOCK = REL / "polyroute-mock-server"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Run:
    """The benches' outputs of this run, saved as they come."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.text: Dict[str, str] = {}
        self.loads: List[Tuple[str, str, str, float]] = []

    def step(self, name: str, cmd: Sequence[str], cwd: Path = REPO, env: Optional[Dict[str, str]] = None) -> str:
        print(f"-- {name}: {' '.join(str(c) for c in cmd)}", file=sys.stderr, flush=True)
        before, t0 = load(), time.monotonic()
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
        (self.out / f"{name}.txt").write_text(p.stdout + ("\n--- stderr\n" + p.stderr if p.stderr else ""))
        if p.returncode != 0:
            raise SystemExit(f"{name} failed (exit {p.returncode}); its output is in {self.out / (name + '.txt')}")
        self.loads.append((name, before, load(), time.monotonic() - t0))
        self.text[name] = p.stdout
        return p.stdout


# --- reading the benches' Markdown tables ------------------------------------------------


def table(text: str, title: str) -> List[List[str]]:
    """The rows (header first) of the table whose first header cell starts with `title`."""
    rows: List[List[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not rows and not cells[0].startswith(title):
                continue
            if not set(line) <= set("|-: "):
                rows.append(cells)
        elif rows:
            return rows
    raise LookupError(f"no table titled {title!r}")


def cell(text: str, title: str, row: str, col: str) -> float:
    """The number in row `row` (its first cell, exactly) under the header cell containing `col`."""
    rows = table(text, title)
    head = rows[0]
    ci = next((i for i, h in enumerate(head) if col in h), None)
    if ci is None:
        raise LookupError(f"table {title!r} has no column {col!r}: {head}")
    for r in rows[1:]:
        if r[0] == row:
            m = re.search(r"-?\d+(?:\.\d+)?", r[ci].replace("**", ""))
            if m is None:
                raise LookupError(f"table {title!r}, row {row!r}, column {col!r}: no number in {r[ci]!r}")
            return float(m.group())
    raise LookupError(f"table {title!r} has no row {row!r}")


def cpu_in(text: str, title: str, row: str, col: str) -> float:
    """From a Node throughput cell like `30395 (32 CPU-µs)`, the CPU figure."""
    rows = table(text, title)
    ci = next(i for i, h in enumerate(rows[0]) if col in h)
    for r in rows[1:]:
        if r[0] == row:
            return float(re.search(r"\((\d+(?:\.\d+)?) CPU", r[ci]).group(1))  # type: ignore[union-attr]
    raise LookupError(f"table {title!r} has no row {row!r}")


# --- the targets ---------------------------------------------------------------------------

Verdict = Tuple[str, str, Optional[bool]]


def fmt(x: float) -> str:
    return f"{x:+.0f}"


def within(values: Sequence[float], limit: float) -> bool:
    return all(v <= limit for v in values)


def rust(r: Run) -> List[Verdict]:
    t = r.text["rust-overhead"]
    added = [cell(t, o, "`Router::chat` (routing, breaker, budget, telemetry)", "added p50") for o in ("interleaved", "back to back", "idle gap")]
    c64 = "throughput at concurrency 64"
    ratio = cell(t, c64, "`Router::chat`", "ratio")
    cpu, raw_cpu = cell(t, c64, "`Router::chat`", "CPU"), cell(t, c64, "raw reqwest", "CPU")
    sync = [cell(t, o, "`Router::chat` under `inline::block_on` (calling thread)", "added p50") for o in ("sync callers, interleaved", "sync callers, idle gap")]
    s = r.text["rust-stream"]
    chunk = [cell(s, "burst:", "**added by the router per chunk, CPU µs**", "per extra chunk"), cell(s, "spaced:", "**added by the router per chunk, CPU µs**", "per extra chunk")]
    return [
        ("Rust `Router::chat` ≤ +10 µs p50 over raw reqwest (interleaved / back to back / 1 ms gap)", " / ".join(map(fmt, added)), within(added, 10)),
        ("Rust `Router::chat` ≥ 0.9× raw reqwest's throughput at c=64", f"{ratio:.2f}× ({cpu:.1f} CPU-µs per request, raw reqwest {raw_cpu:.1f})", ratio >= 0.9),
        ("Rust sync (`inline::block_on`) within 30 µs of a blocking socket (interleaved / gap)", " / ".join(map(fmt, sync)), within(sync, 30)),
        ("Rust stream ≤ 1 µs per chunk (CPU, burst / 1 ms apart)", " / ".join(f"{c:+.2f}" for c in chunk), within(chunk, 1)),
    ]


SPLIT_ORDERS = (
    "interleaved, shuffled each round, no gap",
    "interleaved, shuffled each round, idle gap",
    "blocks of 100 calls of one row, no gap",
    "blocks of 100 calls of one row, idle gap",
)


def python(r: Run) -> List[Verdict]:
    t = r.text["python-split"]
    sync = [cell(t, o, "`Router.chat`", "added p50") for o in SPLIT_ORDERS]
    asy = [cell(t, o, "`AsyncRouter.chat`", "added p50") for o in SPLIT_ORDERS]
    loop = [cell(t, o, "asyncio socket (`loop.sock_sendall` / `sock_recv`)", "added p50") for o in SPLIT_ORDERS]
    v = json.loads(r.text["python-vs-aiohttp"].strip().splitlines()[-1])
    ours, theirs = v["added_p50_us"]["polyroute"], v["added_p50_us"]["aiohttp"]
    c64 = v["c64"]
    x = c64["polyroute"]["rps"] / c64["aiohttp"]["rps"]
    s = r.text["python-stream"]
    rows = ("`Router.stream` events, CPU µs", "`Router.stream(...).chunks()`, CPU µs", "`AsyncRouter.stream` events, CPU µs")
    burst = [cell(s, "burst:", row, "added per chunk") for row in rows]
    spaced = [cell(s, "spaced:", row, "added per chunk") for row in rows]
    spaced_loop = cell(s, "spaced:", "asyncio floor (`loop.sock_recv`), CPU µs", "added per chunk")
    orders = "interleaved / gap / blocks / blocks with gap"
    return [
        (f"Python `Router.chat` within 30 µs of a blocking socket ({orders})", " / ".join(map(fmt, sync)), within(sync, 30)),
        (
            f"Python `AsyncRouter.chat` ≤ +40 µs, default loop ({orders}; the loop's own socket beside)",
            " / ".join(map(fmt, asy)) + f" (loop's socket {' / '.join(map(fmt, loop))}); own process, back to back: {fmt(ours)}",
            within(asy + [ours], 40),
        ),
        ("Python async's added ≤ a fifth of aiohttp's", f"{ours:.0f} / {theirs:.0f} µs = {ours / theirs:.2f}", ours <= theirs / 5),
        (
            "Python ≥ 1.5× aiohttp's throughput at c=64",
            f"{x:.2f}× ({c64['polyroute']['cpu_us']:.1f} CPU-µs per request, aiohttp {c64['aiohttp']['cpu_us']:.1f})",
            x >= 1.5,
        ),
        (
            "Python stream ≤ 5 µs per chunk (CPU; sync events / sync `chunks()` / async events)",
            f"burst {' / '.join(f'{b:+.1f}' for b in burst)}; 1 ms apart {' / '.join(f'{b:+.1f}' for b in spaced)} (async over its loop's own reader {spaced[2] - spaced_loop:+.1f})",
            within(burst + spaced[:2] + [spaced[2] - spaced_loop], 5),
        ),
        ("Python import < 30 ms (median of five)", f"{v['import_ms']:.1f} ms", v["import_ms"] < 30),
    ]


def node(r: Run) -> List[Verdict]:
    over = []
    for name in ("node-interleaved", "node-gap"):
        t = r.text[name]
        over.append(1000 * (cell(t, "client", "polyroute", "total p50") - cell(t, "client", "socket", "total p50")))
    t = r.text["node-interleaved"]
    undici = 1000 * (cell(t, "client", "polyroute", "total p50") - cell(t, "client", "undici", "total p50"))
    # Two tables start with a "client" column: the latency one comes first; the throughput
    # one is found by its second header cell.
    tput = next(t[i:] for i in range(len(t)) if t.startswith("| client | req/s @", i))
    p64, u64 = cell(tput, "client", "polyroute", "@ 64"), cell(tput, "client", "undici", "@ 64")
    p_cpu, u_cpu = cpu_in(tput, "client", "polyroute", "@ 64"), cpu_in(tput, "client", "undici", "@ 64")
    s = r.text["node-stream"]
    rows_s = ("`router.stream()` events, CPU µs", "`router.stream().chunks()`, CPU µs")
    chunk = [cell(s, o, row, "added per chunk") for o in ("burst:", "spaced:") for row in rows_s]
    return [
        ("Node ≤ +50 µs p50 over a raw `net` socket (interleaved / gap)", " / ".join(map(fmt, over)) + f" (over undici `request`: {fmt(undici)})", within(over, 50)),
        ("Node ≥ undici `request`'s throughput at c=64", f"{p64 / u64:.2f}× ({p_cpu:.0f} CPU-µs per request, undici {u_cpu:.0f})", p64 >= u64),
        ("Node stream ≤ 5 µs per chunk (CPU; events / `chunks()`, burst then 1 ms apart)", " / ".join(f"{c:+.1f}" for c in chunk), within(chunk, 5)),
    ]


def swift(r: Run) -> List[Verdict]:
    t = r.text["swift"]
    orders = ("interleaved, no gap", "interleaved, idle gap")
    typed = [cell(t, o, "`Router.chatBlocking(body:)`", "added p50") for o in orders]
    js = [cell(t, o, "`chatJsonBlocking`", "added p50") for o in orders]
    return [
        ("Swift sync within 30 µs of a blocking socket: typed `chatBlocking` / `chatJsonBlocking` (interleaved / gap)", f"{' / '.join(map(fmt, typed))}; {' / '.join(map(fmt, js))}", within(typed + js, 30)),
    ]


# --- the run -------------------------------------------------------------------------------


def versions() -> Dict[str, str]:
    def out(cmd: Sequence[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            return "?"

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "?")
    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0")
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB, {platform.system()} {platform.release()}",
        "rustc": out(["rustc", "--version"]),
        "python": out([str(PY), "--version"]),
        "node": out(["node", "--version"]),
        "commit": out(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check the harness (figures are noise)")
    ap.add_argument("--skip", default="", help="comma-separated: rust, python, node, swift")
    ap.add_argument("--out", type=Path, help="where the benches' outputs go")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    n = 300 if args.quick else 2000
    out = args.out or HERE / "results-raw" / time.strftime("targets-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    r = Run(out)
    first_load = load()
    verdicts: List[Verdict] = []
    parts: List[Tuple[str, Callable[[], None], Callable[[Run], List[Verdict]]]] = []

    def rust_steps() -> None:
        r.step("rust-overhead", [REL / "examples" / "bench_overhead", n])
        r.step("rust-stream", [REL / "examples" / "bench_stream", n // 2])

    def python_steps() -> None:
        r.step("python-split", [PY, "split.py", "--mock-server", MOCK, "--n", n], cwd=HERE / "python")
        r.step("python-stream", [PY, "stream.py", "--mock-server", MOCK, "--n", max(n // 7, 30)], cwd=HERE / "python")
        r.step("python-vs-aiohttp", [PY, "bench.py", "--mock-server", MOCK, "--vs-aiohttp"], cwd=HERE / "python", env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})

    def node_steps() -> None:
        base = ["bash", HERE / "node" / "run.sh", "--clients", "socket,undici,polyroute", "--latency-requests", n, "--ttft-requests", n // 4]
        r.step("node-interleaved", base + ["--order", "interleaved", "--concurrency", "1,64"])
        r.step("node-gap", base + ["--order", "gap", "--concurrency", "none"])
        r.step("node-stream", ["bash", HERE / "node" / "run.sh", "--stream"])

    def swift_steps() -> None:
        r.step("swift", ["bash", HERE / "swift" / "run.sh", 3 * n // 2])

    parts = [("rust", rust_steps, rust), ("python", python_steps, python), ("node", node_steps, node), ("swift", swift_steps, swift)]
    for name, steps, judge in parts:
        if name in skip:
            continue
        steps()
        verdicts += judge(r)
    v = versions()
    lines = [
        f"# Issue 18 targets, {time.strftime('%Y-%m-%d %H:%M %Z')}" + (" (--quick: figures are noise)" if args.quick else ""),
        "",
        f"Command: `bash bench/targets.sh{' --quick' if args.quick else ''}{' --skip ' + args.skip if skip else ''}`; commit {v['commit']}.",
        f"Machine: {v['machine']}. {v['rustc']}; {v['python']}; Node {v['node']}.",
        f"Load average (1/5/15 min): {first_load} at the start, {load()} at the end.",
        "",
        "| target | measured (µs unless said) | met? |",
        "|---|---|---|",
    ]
    for what, got, ok in verdicts:
        lines.append(f"| {what} | {got} | {'yes' if ok else '**no**'} |")
    lines += ["", "| bench | load before | load after | seconds |", "|---|---|---|---|"]
    lines += [f"| {name} | {b} | {a} | {s:.0f} |" for name, b, a, s in r.loads]
    lines += ["", f"Each bench's own tables: `{out}`."]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
