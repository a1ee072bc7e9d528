#!/usr/bin/env python3
"""Issue 18's targets, every language's overhead bench in one run, judged in one table.

    bash bench/targets.sh [--runs N] [--quick] [--skip swift,node,...] [--out DIR]

Runs, one after the other so they never share the cores: the Rust overhead and stream
benches, Python's split, stream and aiohttp comparisons and import time, Node's bench
(interleaved and with a 1 ms gap, against a raw `net` socket and undici) and stream bench,
and the Swift bench. Each bench's own output is kept in DIR (default
`bench/results-raw/targets-<time>/runK/`) with the load average before and after it;
`report.md` there (also printed) has the machine, the versions and the targets table.

With `--runs N` everything runs N times and each figure is the median of its N values,
with its range beside it and, per target, in how many runs it was met: on this VM a figure
moves by 5–15 µs from one run to the next, which flips single-run verdicts near a line.

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
import statistics
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

    def step(self, name: str, cmd: Sequence[object], cwd: Path = REPO, env: Optional[Dict[str, str]] = None) -> str:
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


def cell(text: str, title: str, row: str, col: str, number: str = r"(-?\d+(?:\.\d+)?)") -> float:
    """The number in row `row` (its first cell, exactly) under the header cell containing `col`;
    `number` picks it out of the cell (its first group), e.g. the CPU in `30395 (32 CPU-µs)`."""
    rows = table(text, title)
    head = rows[0]
    ci = next((i for i, h in enumerate(head) if col in h), None)
    if ci is None:
        raise LookupError(f"table {title!r} has no column {col!r}: {head}")
    for r in rows[1:]:
        if r[0] == row:
            m = re.search(number, r[ci].replace("**", ""))
            if m is None:
                raise LookupError(f"table {title!r}, row {row!r}, column {col!r}: no number in {r[ci]!r}")
            return float(m.group(1))
    raise LookupError(f"table {title!r} has no row {row!r}")


CPU = r"\((\d+(?:\.\d+)?) CPU"


# --- the targets ---------------------------------------------------------------------------


class Row:
    """One target: its figures from one run, how they read, and the test they must pass.
    Runs combine figure by figure (median), so a verdict is not one run's luck."""

    def __init__(self, what: str, nums: Sequence[float], text: Callable[[Sequence[float]], str], ok: Callable[[Sequence[float]], bool]) -> None:
        self.what, self.nums, self.text, self.ok = what, list(nums), text, ok


def signed(xs: Sequence[float], digits: int = 0) -> str:
    return " / ".join(f"{x:+.{digits}f}" for x in xs)


def at_most(limit: float) -> Callable[[Sequence[float]], bool]:
    return lambda xs: all(x <= limit for x in xs)


def rust(r: Run) -> List[Row]:
    t = r.text["rust-overhead"]
    added = [cell(t, o, "`Router::chat` (routing, breaker, budget, telemetry)", "added p50") for o in ("interleaved", "back to back", "idle gap")]
    c64 = "throughput at concurrency 64"
    tput = [cell(t, c64, "`Router::chat`", "ratio"), cell(t, c64, "`Router::chat`", "CPU"), cell(t, c64, "raw reqwest", "CPU")]
    sync = [cell(t, o, "`Router::chat` under `inline::block_on` (calling thread)", "added p50") for o in ("sync callers, interleaved", "sync callers, idle gap")]
    s = r.text["rust-stream"]
    chunk = [cell(s, o, "**added by the router per chunk, CPU µs**", "per extra chunk") for o in ("burst:", "spaced:")]
    return [
        Row("Rust `Router::chat` ≤ +10 µs p50 over raw reqwest (interleaved / back to back / 1 ms gap)", added, signed, at_most(10)),
        Row(
            "Rust `Router::chat` ≥ 0.9× raw reqwest's throughput at c=64",
            tput,
            lambda x: f"{x[0]:.2f}× ({x[1]:.1f} CPU-µs per request, raw reqwest {x[2]:.1f})",
            lambda x: x[0] >= 0.9,
        ),
        Row("Rust sync (`inline::block_on`) within 30 µs of a blocking socket (interleaved / gap)", sync, signed, at_most(30)),
        Row("Rust stream ≤ 1 µs per chunk (CPU, burst / 1 ms apart)", chunk, lambda x: signed(x, 2), at_most(1)),
    ]


SPLIT_ORDERS = (
    "interleaved, shuffled each round, no gap",
    "interleaved, shuffled each round, idle gap",
    "blocks of 100 calls of one row, no gap",
    "blocks of 100 calls of one row, idle gap",
)
ORDERS = "interleaved / gap / blocks / blocks with gap"


def python(r: Run) -> List[Row]:
    t = r.text["python-split"]
    sync = [cell(t, o, "`Router.chat`", "added p50") for o in SPLIT_ORDERS]
    asy = [cell(t, o, "`AsyncRouter.chat`", "added p50") for o in SPLIT_ORDERS]
    loop = [cell(t, o, "asyncio socket (`loop.sock_sendall` / `sock_recv`)", "added p50") for o in SPLIT_ORDERS]
    v = json.loads(r.text["python-vs-aiohttp"].strip().splitlines()[-1])
    ours, theirs = v["added_p50_us"]["polyroute"], v["added_p50_us"]["aiohttp"]
    c64 = v["c64"]
    s = r.text["python-stream"]
    rows = ("`Router.stream` events, CPU µs", "`Router.stream(...).chunks()`, CPU µs", "`AsyncRouter.stream` events, CPU µs")
    burst = [cell(s, "burst:", row, "added per chunk") for row in rows]
    spaced = [cell(s, "spaced:", row, "added per chunk") for row in rows]
    spaced_loop = cell(s, "spaced:", "asyncio floor (`loop.sock_recv`), CPU µs", "added per chunk")
    return [
        Row(f"Python `Router.chat` within 30 µs of a blocking socket ({ORDERS})", sync, signed, at_most(30)),
        Row(
            f"Python `AsyncRouter.chat` ≤ +40 µs, default loop ({ORDERS}; then its own process, back to back; the loop's own socket beside)",
            asy + [ours] + loop,
            lambda x: f"{signed(x[:5])} (loop's socket {signed(x[5:])})",
            lambda x: at_most(40)(x[:5]),
        ),
        Row("Python async's added ≤ a fifth of aiohttp's", [ours, theirs], lambda x: f"{x[0]:.0f} / {x[1]:.0f} µs = {x[0] / x[1]:.2f}", lambda x: x[0] <= x[1] / 5),
        Row(
            "Python ≥ 1.5× aiohttp's throughput at c=64",
            [c64["polyroute"]["rps"] / c64["aiohttp"]["rps"], c64["polyroute"]["cpu_us"], c64["aiohttp"]["cpu_us"]],
            lambda x: f"{x[0]:.2f}× ({x[1]:.1f} CPU-µs per request, aiohttp {x[2]:.1f})",
            lambda x: x[0] >= 1.5,
        ),
        Row(
            "Python stream ≤ 5 µs per chunk (CPU; sync events / sync `chunks()` / async events; async 1 ms apart over its loop's own reader)",
            burst + spaced[:2] + [spaced[2] - spaced_loop],
            lambda x: f"burst {signed(x[:3], 1)}; 1 ms apart {signed(x[3:], 1)}",
            at_most(5),
        ),
        Row("Python import < 30 ms (median of five)", [v["import_ms"]], lambda x: f"{x[0]:.1f} ms", lambda x: x[0] < 30),
    ]


def node(r: Run) -> List[Row]:
    over = []
    for name in ("node-interleaved", "node-gap"):
        t = r.text[name]
        over.append(1000 * (cell(t, "client", "polyroute", "total p50") - cell(t, "client", "socket", "total p50")))
    t = r.text["node-interleaved"]
    over.append(1000 * (cell(t, "client", "polyroute", "total p50") - cell(t, "client", "undici", "total p50")))
    # Two tables start with a "client" column: the latency one comes first; the throughput
    # one is found by its second header cell.
    tput = next(t[i:] for i in range(len(t)) if t.startswith("| client | req/s @", i))
    c64 = [cell(tput, "client", "polyroute", "@ 64") / cell(tput, "client", "undici", "@ 64"), cell(tput, "client", "polyroute", "@ 64", CPU), cell(tput, "client", "undici", "@ 64", CPU)]
    s = r.text["node-stream"]
    rows_s = ("`router.stream()` events, CPU µs", "`router.stream().chunks()`, CPU µs")
    chunk = [cell(s, o, row, "added per chunk") for o in ("burst:", "spaced:") for row in rows_s]
    return [
        Row(
            "Node ≤ +50 µs p50 over a raw `net` socket (interleaved / gap; over undici `request` beside)",
            over,
            lambda x: f"{signed(x[:2])} (over undici: {signed(x[2:])})",
            lambda x: at_most(50)(x[:2]),
        ),
        Row("Node ≥ undici `request`'s throughput at c=64", c64, lambda x: f"{x[0]:.2f}× ({x[1]:.0f} CPU-µs per request, undici {x[2]:.0f})", lambda x: x[0] >= 1),
        Row("Node stream ≤ 5 µs per chunk (CPU; events / `chunks()`, burst then 1 ms apart)", chunk, lambda x: signed(x, 1), at_most(5)),
    ]


def swift(r: Run) -> List[Row]:
    t = r.text["swift"]
    orders = ("interleaved, no gap", "interleaved, idle gap")
    typed = [cell(t, o, "`Router.chatBlocking(body:)`", "added p50") for o in orders]
    js = [cell(t, o, "`chatJsonBlocking`", "added p50") for o in orders]
    return [
        Row(
            "Swift sync within 30 µs of a blocking socket: typed `chatBlocking` / `chatJsonBlocking` (interleaved / gap)",
            typed + js,
            lambda x: f"{signed(x[:2])}; {signed(x[2:])}",
            at_most(30),
        ),
    ]


def combine(runs: List[List[Row]]) -> List[Tuple[str, str, str, bool]]:
    """Per target: the median of each figure over the runs, its verdict, and each figure's
    range over the runs (empty for one run)."""
    out = []
    for rows in zip(*runs):
        med = [statistics.median(r.nums[i] for r in rows) for i in range(len(rows[0].nums))]
        lo = [min(r.nums[i] for r in rows) for i in range(len(med))]
        hi = [max(r.nums[i] for r in rows) for i in range(len(med))]
        spread = "" if len(rows) == 1 else " / ".join(f"{a:.3g}…{b:.3g}" for a, b in zip(lo, hi))
        verdicts = [r.ok(r.nums) for r in rows]
        met = rows[0].ok(med)
        seen = "" if len(rows) == 1 else f" ({sum(verdicts)} of {len(rows)} runs)"
        out.append((rows[0].what, rows[0].text(med), ("yes" if met else "**no**") + seen, spread))
    return out


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


def run_once(r: Run, n: int, skip: "set[str]") -> List[Row]:
    """Every bench once, in order; the targets as this run measured them."""

    def rust_steps() -> None:
        r.step("rust-overhead", [REL / "examples" / "bench_overhead", n])
        r.step("rust-stream", [REL / "examples" / "bench_stream", n // 2])

    def python_steps() -> None:
        r.step("python-split", [PY, "split.py", "--mock-server", MOCK, "--n", n], cwd=HERE / "python")
        r.step("python-stream", [PY, "stream.py", "--mock-server", MOCK, "--n", max(n // 7, 30)], cwd=HERE / "python")
        r.step("python-vs-aiohttp", [PY, "bench.py", "--mock-server", MOCK, "--vs-aiohttp"], cwd=HERE / "python", env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})

    def node_steps() -> None:
        def run(clients: str) -> List[object]:
            return ["bash", HERE / "node" / "run.sh", "--clients", clients, "--latency-requests", n, "--ttft-requests", n // 4]

        r.step("node-interleaved", run("socket,undici,polyroute") + ["--order", "interleaved", "--concurrency", "1,64"])
        # The gap order without undici: only the socket and polyroute figures are read from it,
        # and undici in the rotation moved them apart (socket −6…−8 µs, polyroute +6…+7, the
        # mock server ~50 µs slower on polyroute's requests; issue 18, twenty-first round).
        r.step("node-gap", run("socket,polyroute") + ["--order", "gap", "--concurrency", "none"])
        r.step("node-stream", ["bash", HERE / "node" / "run.sh", "--stream"])

    def swift_steps() -> None:
        r.step("swift", ["bash", HERE / "swift" / "run.sh", 3 * n // 2])

    parts: List[Tuple[str, Callable[[], None], Callable[[Run], List[Row]]]] = [
        ("rust", rust_steps, rust),
        ("python", python_steps, python),
        ("node", node_steps, node),
        ("swift", swift_steps, swift),
    ]
    rows: List[Row] = []
    for name, steps, judge in parts:
        if name not in skip:
            steps()
            rows += judge(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check the harness (figures are noise)")
    ap.add_argument("--runs", type=int, default=1, help="run every bench this many times; each figure is the median (default 1)")
    ap.add_argument("--skip", default="", help="comma-separated: rust, python, node, swift")
    ap.add_argument("--out", type=Path, help="where the benches' outputs go")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    n = 300 if args.quick else 2000
    out = args.out or HERE / "results-raw" / time.strftime("targets-%Y%m%d-%H%M%S")
    first_load = load()
    runs, loads = [], []
    for k in range(max(args.runs, 1)):
        r = Run(out / f"run{k + 1}")
        r.out.mkdir(parents=True, exist_ok=True)
        runs.append(run_once(r, n, skip))
        loads += [(k + 1, *step) for step in r.loads]
    v = versions()
    cmd = "bash bench/targets.sh" + (" --quick" if args.quick else "") + (f" --runs {args.runs}" if args.runs > 1 else "") + (f" --skip {args.skip}" if skip else "")
    many = len(runs) > 1
    lines = [
        f"# Issue 18 targets, {time.strftime('%Y-%m-%d %H:%M %Z')}" + (" (--quick: figures are noise)" if args.quick else ""),
        "",
        f"Command: `{cmd}`; commit {v['commit']}.",
        f"Machine: {v['machine']}. {v['rustc']}; {v['python']}; Node {v['node']}.",
        f"Load average (1/5/15 min): {first_load} at the start, {load()} at the end.",
        "",
        f"| target | measured (µs unless said){'; median of ' + str(len(runs)) + ' runs' if many else ''} | met? |" + (" range over the runs |" if many else ""),
        "|---|---|---|" + ("---|" if many else ""),
    ]
    for what, got, met, spread in combine(runs):
        lines.append(f"| {what} | {got} | {met} |" + (f" {spread} |" if many else ""))
    lines += ["", "| run | bench | load before | load after | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {name} | {b} | {a} | {s:.0f} |" for k, name, b, a, s in loads]
    lines += ["", f"Each bench's own tables: `{out}`."]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
