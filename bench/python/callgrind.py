"""Instructions per Python call, counted by callgrind over the whole process: deterministic
where timings on a shared VM swing by a quarter (issue 18's before/after counts).

    bash bench/python/run.sh --callgrind sync|async|stream   # release builds first
    cd bench/python && .venv/bin/python callgrind.py --mock-server PATH MODE [--n 100,300]

Runs the workload under valgrind twice, with N1 and N2 calls (streams: 1- and 65-chunk
streams, 20 each), against the mock server answering after 1 ms (chunks 1 ms apart), so
every call waits as a real one does; the difference over the extra calls (chunks) is the
per-call (per-chunk) count, start-up and imports cancelled out. Needs valgrind (Debian
package `valgrind`); each mode takes a few minutes. Set PYTHONPATH to count another build
of the package (e.g. an older one from `git archive`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from typing import Any, Dict, List

from bench import FAKE_KEY, start_mock, stop_mock


def policy(base: str, model: str) -> Dict[str, Any]:
    return {
        "providers": {"m": {"kind": "openai", "base_url": base + "/v1", "api_key": FAKE_KEY}},
        "deployments": {"d": {"provider": "m", "model": model}},
        "routes": [{"name": "r", "deployments": ["d"]}],
    }


def workload(base: str, mode: str, n: int) -> None:
    """What runs under valgrind: `n` calls (or streams) of `mode`."""
    import polyroute

    msg = [{"role": "user", "content": "hi"}]
    if mode == "sync":
        router = polyroute.Router(policy(base, "cg-chat"))
        for _ in range(n):
            router.chat(msg)
        return
    model = {"async": "cg-chat", "stream1": "cg-stream1", "stream65": "cg-stream65"}[mode]
    arouter = polyroute.AsyncRouter(policy(base, model))

    async def main() -> None:
        for _ in range(n):
            if mode == "async":
                await arouter.chat(msg)
            else:
                async for _event in await arouter.stream(msg):
                    pass

    asyncio.run(main())


def script(base: str, model: str, then: Dict[str, Any]) -> None:
    req = urllib.request.Request(f"{base}/_mock/scripts/{model}", data=json.dumps({"then": then}).encode(), method="PUT")
    urllib.request.urlopen(req).read()


def count(base: str, mode: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__, "--workload", base, mode, str(n)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals): (\d+)", line)
                if m:
                    return int(m.group(1))
    raise SystemExit("callgrind wrote no totals")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--workload":
        return workload(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--mock-server", required=True)
    ap.add_argument("mode", choices=["sync", "async", "stream"])
    ap.add_argument("--n", default="100,300", help="calls in the two runs (streams: the first number, 20 by default)")
    args = ap.parse_args()
    n1, n2 = (int(x) for x in args.n.split(","))
    proc, base = start_mock(args.mock_server)
    try:
        script(base, "cg-chat", {"latency_ms": 1})
        script(base, "cg-stream1", {"text": "w", "chunk_delay_ms": 1})
        script(base, "cg-stream65", {"text": " ".join(["w"] * 65), "chunk_delay_ms": 1})
        if args.mode == "stream":
            streams = 20 if args.n == "100,300" else n1
            a, b = count(base, "stream1", streams), count(base, "stream65", streams)
            print(f"instructions per extra spaced chunk of an async stream: {(b - a) // (streams * 64)} ({streams} streams: {a} vs {b})")
        else:
            counts: List[int] = [count(base, args.mode, n) for n in (n1, n2)]
            print(f"instructions per {args.mode} call: {(counts[1] - counts[0]) // (n2 - n1)} ({n1} vs {n2} calls: {counts[0]} vs {counts[1]})")
    finally:
        stop_mock(proc)


if __name__ == "__main__":
    main()
