#!/usr/bin/env python3
"""Gateway benchmark driver, run by bench/gateway/run.sh (standard library only).

Starts the loopback mock server, `polyroute serve`, the LiteLLM proxy (once per worker
count) and Portkey's gateway, all in front of that one mock server; checks that each answers
200 with the mock's content; then runs the Rust load generator (`gateway_load`) for latency
at concurrency 1 and throughput at concurrency 64 and 512, with the CPU time of each gateway's
process tree. Writes raw JSON and a Markdown section under results-raw/, and with --markdown
replaces the "Gateway" section of BENCHMARKS.md between its markers.

Every process it starts gets its own session (process group); all of them are stopped on
exit, on SIGINT/SIGTERM and on any error. Their process-group ids are also written to
--pids-file so that run.sh's trap can stop them if this driver is killed outright.
"""

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MARK_START = "<!-- gateway-bench:start -->"
MARK_END = "<!-- gateway-bench:end -->"
EXPECT = "echo: hello mock"  # what the mock answers to the load generator's body
MODEL = "bench"
FAKE_KEY = "sk-test-not-a-real-key"

PROCS: List[subprocess.Popen] = []
PIDS_FILE: Optional[Path] = None


def log(msg: str) -> None:
    print(f"[gateway-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start(cmd: List[str], logfile: Path, **kw: Any) -> subprocess.Popen:
    """Start a process in its own session, its output to logfile; remember it for stop_all."""
    out = open(logfile, "wb")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
    PROCS.append(p)
    if PIDS_FILE is not None:
        with open(PIDS_FILE, "a") as f:
            f.write(f"{p.pid}\n")
    return p


def stop_all() -> None:
    for p in reversed(PROCS):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in reversed(PROCS):
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        # The group may have members left even when its leader is gone (uvicorn workers).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    PROCS.clear()


def on_signal(signum: int, _frame: Any) -> None:
    stop_all()
    sys.exit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(logfile: Path, pattern: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, logfile.read_text(errors="replace"))
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start (log {logfile}):\n{tail(logfile)}")


def wait_http(url: str, proc: subprocess.Popen, logfile: Path, what: str, timeout: float = 180) -> float:
    """Poll url until it answers 200; returns the seconds it took."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before answering (log {logfile}):\n{tail(logfile)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f} s (log {logfile}):\n{tail(logfile)}")


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def sh(cmd: List[str], cwd: Optional[Path] = None) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def loadgen(args: argparse.Namespace, *extra: str) -> Dict[str, Any]:
    cmd = [args.load, *extra, "--targets", str(args.run / "targets.json"), "--expect", EXPECT]
    # Tracked like the servers, so that a signal stops it too.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    PROCS.append(p)
    stdout, stderr = p.communicate()
    PROCS.remove(p)
    if p.returncode != 0 and extra[0] != "check":
        raise SystemExit(f"load generator failed ({' '.join(cmd)}):\n{stderr}{stdout}")
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"load generator printed no JSON ({' '.join(cmd)}):\n{stderr}{stdout}")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def versions(args: argparse.Namespace) -> Dict[str, str]:
    py = str(args.venv / "bin" / "python")
    pk = args.portkey / "node_modules"

    def npm_version(name: str) -> str:
        try:
            return json.loads((pk / name / "package.json").read_text())["version"]
        except (OSError, KeyError, ValueError):
            return "?"

    commit = sh(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    if sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO) not in ("", "?"):
        commit += " (with uncommitted changes)"
    return {
        "polyroute": commit,
        "litellm": sh([py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"]),
        "uvicorn": sh([py, "-c", "import importlib.metadata as m; print(m.version('uvicorn'))"]),
        "portkey": npm_version("@portkey-ai/gateway"),
        "hono_node_server": npm_version("@hono/node-server"),
        "hono": npm_version("hono"),
        "node": sh(["node", "--version"]),
        "python": sh([py, "-c", "import platform; print(platform.python_version())"]),
        "rustc": sh(["rustc", "--version"]),
    }


def start_all(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Start the mock and the gateways; returns name → {url, headers, pid, note}."""
    run = args.run
    mock = start([args.mock, "--port", "0", "--log-capacity", "0", "--no-stdin-exit"], run / "mock.log")
    mock_addr = wait_for_line(run / "mock.log", r"LISTENING http://(\S+)", mock, "the mock server")
    mock_v1 = f"http://{mock_addr}/v1"
    auth = {"authorization": f"Bearer {FAKE_KEY}"}
    targets: Dict[str, Dict[str, Any]] = {
        "mock (floor)": {"url": f"{mock_v1}/chat/completions", "headers": auth, "pid": mock.pid, "kind": "floor", "procs": "mock server, 2 runtime threads"}
    }

    (run / "policy.yaml").write_text(
        f"""providers:
  mock: {{kind: openai, base_url: "{mock_v1}", api_key: "{FAKE_KEY}"}}
deployments:
  bench: {{provider: mock, model: {MODEL}}}
routes:
  - {{name: {MODEL}, deployments: [bench]}}
default_route: {MODEL}
"""
    )
    pr = start([args.polyroute, "serve", str(run / "policy.yaml"), "--listen", "127.0.0.1:0"], run / "polyroute.log")
    pr_addr = wait_for_line(run / "polyroute.log", r"serving http://(\S+)", pr, "polyroute serve")
    targets["polyroute serve"] = {"url": f"http://{pr_addr}/v1/chat/completions", "headers": auth, "pid": pr.pid, "kind": "polyroute", "procs": "1 process, tokio multi-thread runtime (2 workers on 2 cores)"}
    log(f"mock at {mock_addr}, polyroute at {pr_addr}")

    cfg = (HERE / "litellm-config.yaml").read_text().replace("MOCK_BASE", mock_v1)
    (run / "litellm-config.yaml").write_text(cfg)
    env = dict(os.environ)
    env.update(
        {
            # Never reach the network: bundled cost map and catalogues, no telemetry.
            "LITELLM_OFFLINE_MODE": "true",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
            "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
            "LITELLM_LOCAL_BLOG_POSTS": "True",
            "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
            "LITELLM_TELEMETRY_DISABLED": "true",
            "DO_NOT_TRACK": "1",
        }
    )
    for k in ("LITELLM_MASTER_KEY", "DATABASE_URL", "REDIS_HOST", "REDIS_URL", "OPENAI_API_KEY"):
        env.pop(k, None)
    for w in args.litellm_workers:
        port = free_port()
        name = f"LiteLLM proxy, {w} worker{'s' if w > 1 else ''}"
        lf = run / f"litellm-{w}.log"
        p = start(
            [str(args.venv / "bin" / "litellm"), "--config", str(run / "litellm-config.yaml"), "--host", "127.0.0.1", "--port", str(port), "--num_workers", str(w)],
            lf,
            env=env,
            cwd=run,
        )
        took = wait_http(f"http://127.0.0.1:{port}/health/liveliness", p, lf, name)
        log(f"{name} answering after {took:.1f} s")
        targets[name] = {"url": f"http://127.0.0.1:{port}/v1/chat/completions", "headers": auth, "pid": p.pid, "kind": "litellm", "workers": w,
                         "procs": f"uvicorn with --num_workers {w}" + ("" if w == 1 else f" (a supervisor, {w} worker processes and multiprocessing's resource tracker)"), "startup_s": round(took, 1)}

    port = free_port()
    lf = run / "portkey.log"
    start_js = args.portkey / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    penv = dict(os.environ)
    penv.pop("TRUSTED_CUSTOM_HOSTS", None)  # its default trusts 127.0.0.1 as a custom host
    p = start(["node", str(start_js), f"--port={port}", "--headless"], lf, cwd=args.portkey, env=penv)
    wait_for_line(lf, r"(Ready for connections)", p, "Portkey gateway")
    targets["Portkey gateway"] = {
        "url": f"http://127.0.0.1:{port}/v1/chat/completions",
        # The provider by `x-portkey-provider`, a self-hosted OpenAI-compatible endpoint by
        # `x-portkey-custom-host` (header constants in its build; its README shows only the SDK
        # calls); the Authorization header is passed on to the mock.
        "headers": {**auth, "x-portkey-provider": "openai", "x-portkey-custom-host": mock_v1},
        "pid": p.pid,
        "kind": "portkey",
        "procs": "1 node process (one JavaScript thread)",
    }
    return targets


def write_targets(args: argparse.Namespace, targets: Dict[str, Dict[str, Any]]) -> None:
    spec = [{"name": n, "url": t["url"], "model": MODEL, "headers": t["headers"]} for n, t in targets.items()]
    (args.run / "targets.json").write_text(json.dumps(spec, indent=2))


def measure(args: argparse.Namespace, targets: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    q = args.quick
    lat_n, lat_warm, block = (300, 30, 50) if q else (2000, 200, 100)
    tp_warm, tp_dur, rounds = (1.0, 2.0, 1) if q else (2.0, 5.0, 3)
    conc = [64, 512]
    res: Dict[str, Any] = {
        "settings": {"latency_n": lat_n, "latency_warmup": lat_warm, "latency_block": block, "throughput_warmup_s": tp_warm,
                     "throughput_duration_s": tp_dur, "rounds": rounds, "concurrency": conc, "loadgen_threads": 2},
    }
    check = loadgen(args, "check")
    res["check"] = check
    if not check.get("ok"):
        bad = {n: v for n, v in check["targets"].items() if not v["ok"]}
        raise SystemExit("a gateway did not answer 200 with the mock's content; not measuring:\n" + json.dumps(bad, indent=2))
    log("every target answers 200 with " + repr(EXPECT))

    log(f"latency: {lat_n} sequential requests per target, in blocks of {block}, targets rotating")
    res["latency"] = loadgen(args, "latency", "--n", str(lat_n), "--warmup", str(lat_warm), "--block", str(block))

    names = list(targets)
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {n: {str(c): [] for c in conc} for n in names}
    clk = str(os.sysconf("SC_CLK_TCK"))
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for c in conc:
            for n in order:
                out = loadgen(args, "throughput", "--only", n, "--concurrency", str(c), "--duration", str(tp_dur), "--warmup", str(tp_warm),
                              "--pid", str(targets[n]["pid"]), "--clk-tck", clk)
                runs[n][str(c)].append(out)
                cpu = out.get("cpu") or {}
                log(f"round {r + 1}/{rounds} c={c} {n}: {out['rps']:.0f} req/s, {out['errors']} errors, "
                    f"{cpu.get('cpu_us_per_request', 0):.0f} CPU-µs/request")
                time.sleep(0.5)
    res["throughput_runs"] = runs
    return res


def summarise(res: Dict[str, Any], targets: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    lat = res["latency"]["targets"]
    floor = lat["mock (floor)"]
    s: Dict[str, Any] = {}
    for n, t in targets.items():
        row: Dict[str, Any] = {"p50_us": lat[n]["p50_us"], "p99_us": lat[n]["p99_us"], "latency_errors": lat[n]["errors"]}
        row["added_p50_us"] = lat[n]["p50_us"] - floor["p50_us"]
        row["added_p99_us"] = lat[n]["p99_us"] - floor["p99_us"]
        for c, runs in res["throughput_runs"][n].items():
            row[f"rps_{c}"] = statistics.median(r["rps"] for r in runs)
            row[f"errors_{c}"] = sum(r["errors"] for r in runs)
            row[f"error_kinds_{c}"] = {k: sum(r["error_kinds"].get(k, 0) for r in runs) for r0 in runs for k in r0["error_kinds"]}
            row[f"completed_{c}"] = sum(r["completed"] for r in runs)
            row[f"cpu_us_{c}"] = statistics.median(r["cpu"]["cpu_us_per_request"] for r in runs)
            row[f"cores_{c}"] = statistics.median(r["cpu"]["cores_busy"] for r in runs)
            row[f"procs_{c}"] = max(len(r["cpu"]["processes_end"]) for r in runs)
            row[f"ramp_s_{c}"] = max(r["ramp_s"] for r in runs)
            row[f"ramp_short_{c}"] = min(r["workers_answered_after_ramp"] for r in runs) < int(c)
            row[f"warmup_errors_{c}"] = sum(r["warmup_errors"] for r in runs)
        s[n] = row
    return s


def ratio(a: float, b: float) -> str:
    if b <= 0 or a <= 0:
        return "–"
    return f"{a / b:.1f}×" if a / b >= 10 else f"{a / b:.2f}×"


def markdown(meta: Dict[str, Any], res: Dict[str, Any], summary: Dict[str, Any], targets: Dict[str, Dict[str, Any]]) -> str:
    v = meta["versions"]
    st = res["settings"]
    pr = summary["polyroute serve"]
    lines = [
        "## Gateway: polyroute serve vs LiteLLM proxy vs Portkey gateway",
        "",
        f"`{meta['command']}` (sources: `bench/gateway/`; load generator `bench/gateway/load.rs`, built as the "
        "`gateway_load` example of `polyroute-server`). Every gateway sits in front of the same loopback mock "
        "server (`tests/mock-server`, release build, log off), which answers a non-streamed chat completion "
        f"instantly; the load generator (Rust, reqwest, HTTP/1.1 keep-alive, {st['loadgen_threads']} runtime threads) sends the "
        f"same small body (`model: {MODEL}`, one user message) to each. Client, mock and gateway share the machine's cores.",
        "",
        f"Measured {meta['date']}{' (QUICK run: short, for checking the harness only)' if meta['quick'] else ''} on "
        f"{meta['cpu_model']}, nproc {meta['nproc']}; load average {meta['load_before']} before, {meta['load_after']} after.",
        "",
        "| component | version |",
        "|---|---|",
        f"| polyroute (commit) | {v['polyroute']} |",
        f"| LiteLLM proxy | litellm {v['litellm']} (uvicorn {v['uvicorn']}; its `proxy` extra without litellm-proxy-extras, see bench/gateway/README.md) |",
        f"| Portkey gateway | @portkey-ai/gateway {v['portkey']} (@hono/node-server {v['hono_node_server']}, hono {v['hono']}) |",
        f"| Node.js | {v['node']} |",
        f"| Python | {v['python']} |",
        f"| rustc | {v['rustc']} |",
        "",
        "| target | how it runs | processes whose CPU is counted |",
        "|---|---|---:|",
    ]
    lines += [f"| {n} | {t['procs']} | {max(summary[n][f'procs_{c}'] for c in st['concurrency'])} |" for n, t in targets.items()]
    lines += [
        "",
        f"Latency at concurrency 1: {st['latency_n']} sequential requests per target (after {st['latency_warmup']} warm-up), "
        f"in blocks of {st['latency_block']} with the targets rotating, one kept-alive connection each. "
        "*Added* = the gateway's percentile minus the floor's same percentile; the ratio is the gateway's added "
        "latency over polyroute's.",
        "",
        "| target | p50 µs | p99 µs | added p50 µs | added p99 µs | added p50 ÷ polyroute's | added p99 ÷ polyroute's |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in summary.items():
        is_floor = targets[n]["kind"] == "floor"
        lines.append(
            f"| {n} | {r['p50_us']} | {r['p99_us']} | {'–' if is_floor else r['added_p50_us']} | {'–' if is_floor else r['added_p99_us']} | "
            f"{'–' if is_floor or n == 'polyroute serve' else ratio(r['added_p50_us'], pr['added_p50_us'])} | "
            f"{'–' if is_floor or n == 'polyroute serve' else ratio(r['added_p99_us'], pr['added_p99_us'])} |"
        )
    c1, c2 = st["concurrency"]
    lines += [
        "",
        f"Throughput: completed requests/s with {c1} and {c2} in flight, over {st['throughput_duration_s']:g} s, "
        f"median of {st['rounds']} run{'s' if st['rounds'] > 1 else ''} (targets rotating). Each run first opens its connections "
        "with at most 16 requests in flight until every one of the C workers has had an answer (up to "
        f"{max(r[f'ramp_s_{c2}'] for r in summary.values()):.1f} s here), then warms up for {st['throughput_warmup_s']:g} s with all C in flight. "
        "Errors are every non-200, every 200 without the mock's content and every transport error, summed over the runs. "
        "CPU-µs/request: utime + stime (/proc/PID/stat) of the gateway process and all its descendants over the measured "
        "window, divided by the requests completed in it (for the floor row: the mock server's own CPU). "
        "Ratio = polyroute's req/s ÷ the target's.",
        "",
        f"| target | req/s c={c1} | req/s c={c2} | errors c={c1} | errors c={c2} | CPU-µs/req c={c1} | CPU-µs/req c={c2} | polyroute ÷ target c={c1} | polyroute ÷ target c={c2} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in summary.items():
        is_floor = targets[n]["kind"] == "floor"
        lines.append(
            f"| {n} | {r[f'rps_{c1}']:.0f} | {r[f'rps_{c2}']:.0f} | {r[f'errors_{c1}']} | {r[f'errors_{c2}']} | "
            f"{r[f'cpu_us_{c1}']:.0f} | {r[f'cpu_us_{c2}']:.0f} | "
            f"{'–' if is_floor or n == 'polyroute serve' else ratio(pr[f'rps_{c1}'], r[f'rps_{c1}'])} | "
            f"{'–' if is_floor or n == 'polyroute serve' else ratio(pr[f'rps_{c2}'], r[f'rps_{c2}'])} |"
        )
    errs = {n: {c: r[f"error_kinds_{c}"] for c in (str(c1), str(c2)) if r[f"error_kinds_{c}"]} for n, r in summary.items()}
    errs = {n: e for n, e in errs.items() if e}
    lines += ["", f"Errors by kind: {json.dumps(errs) if errs else 'none'}."]
    warm = {n: {c: r[f"warmup_errors_{c}"] for c in (str(c1), str(c2)) if r[f"warmup_errors_{c}"]} for n, r in summary.items()}
    warm = {n: e for n, e in warm.items() if e}
    if warm:
        lines.append(f"Errors during ramp and warm-up (not in the table): {json.dumps(warm)}.")
    short = [f"{n} (c={c})" for n, r in summary.items() for c in (str(c1), str(c2)) if r[f"ramp_short_{c}"]]
    if short:
        lines.append(f"Not every connection had been answered after the 60 s ramp cap: {', '.join(short)}.")
    lines += [
        "",
        "Reading it:",
        "- The floor is the mock alone; a gateway's added latency includes its second loopback hop to the mock.",
        "- On 2 cores the load generator, the mock and the gateway compete for CPU, so throughput is CPU-bound and "
        "a gateway's req/s mostly reflects its CPU cost per request (the CPU-µs column); absolute numbers are low and "
        "p99 is noisy, the ratios are the point.",
        "- Why the ramp: opened all at once, 512 new connections to a saturated server built on libuv (Node, "
        "and uvloop under LiteLLM) are accepted only a few per second (a trivial Node HTTP server took ~26 s to accept "
        "them all here; tokio's accept loop takes them at once), so the figures are steady-state throughput over "
        "established keep-alive connections, not a connection storm.",
        "- LiteLLM runs as its CLI starts it (uvicorn with uvloop, access log on, written to a file); Portkey as "
        "`start-server.js --headless`; polyroute as `polyroute serve` with a one-route policy. None authenticates.",
        "- Raw per-run JSON: `bench/gateway/results-raw/` (not committed).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, md: str) -> None:
    """Replace this benchmark's section of BENCHMARKS.md between its markers; others stay."""
    block = f"{MARK_START}\n{md}{MARK_END}\n"
    text = path.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail_ = rest.split(MARK_END, 1)
        text = head + block + tail_.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main() -> None:
    global PIDS_FILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", type=Path, help="BENCHMARKS.md to update (full runs only)")
    ap.add_argument("--mock", required=True)
    ap.add_argument("--polyroute", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--venv", type=Path, default=HERE / ".venv")
    ap.add_argument("--portkey", type=Path, default=HERE / "portkey")
    ap.add_argument("--litellm-workers", default="1,2")
    ap.add_argument("--run", type=Path, required=True, help="scratch directory for configs and logs")
    ap.add_argument("--pids-file", type=Path)
    ap.add_argument("--command", default="bash bench/gateway/run.sh")
    args = ap.parse_args()
    args.litellm_workers = [int(w) for w in args.litellm_workers.split(",") if w]
    PIDS_FILE = args.pids_file
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    raw = HERE / "results-raw"
    raw.mkdir(exist_ok=True)
    meta: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "quick": args.quick,
        "command": args.command,
        "nproc": sh(["nproc"]),
        "cpu_model": cpu_model(),
        "load_before": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions(args),
    }
    (raw / "pip-freeze.txt").write_text(sh([str(args.venv / "bin" / "python"), "-m", "pip", "freeze"]) + "\n")
    t0 = time.time()
    try:
        targets = start_all(args)
        write_targets(args, targets)
        res = measure(args, targets)
    finally:
        stop_all()
    meta["load_after"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["seconds"] = round(time.time() - t0)
    summary = summarise(res, targets)
    md = markdown(meta, res, summary, targets)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    out = {"meta": meta, "targets": targets, "summary": summary, "results": res}
    (raw / f"gateway-{stamp}.json").write_text(json.dumps(out, indent=2))
    (raw / f"gateway-{stamp}.md").write_text(md)
    print(md)
    log(f"raw results: {raw / f'gateway-{stamp}.json'} ({meta['seconds']} s of measuring)")
    if args.markdown and not args.quick:
        write_section(args.markdown, md)
        log(f"updated the Gateway section of {args.markdown}")


if __name__ == "__main__":
    main()
