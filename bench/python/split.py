"""Where a Python call's time goes: the same request through layers that each add one cost.

    bash bench/python/run.sh --split        # prints a Markdown table (BENCHMARKS.md, issue 18)
    bash bench/python/run.sh --split --loop uvloop   # the async rows on uvloop

Interleaved call by call, one process, one mock server (release build), one kept-alive
connection per client:

- floor: a blocking socket sending pre-encoded bytes (bench.py's `floor_call`);
- the same on the event loop (`async_floor_call`: `loop.sock_sendall` / `sock_recv`), the
  floor of an asyncio call: its "added" column is what asyncio itself costs;
- `Router.chat` / `AsyncRouter.chat` served from the response cache: the binding's whole cost
  (arguments in, the core's ~6 µs cache hit, the response object out, the GIL released and
  taken back, for async the hand-off to the event loop) with no HTTP and no thread hop;
- the same calls to the provider: the above plus the core's HTTP and routing, and the
  hand-offs between the calling thread and the runtime's workers.

The differences between rows are the per-layer costs. Two orders: interleaved (each round
every row once, shuffled) and blocks of 100 calls of one row (as a service repeats one call);
each back to back and with an idle gap of 1 ms before each call (threads park, so every call
pays its wake-ups; `time.sleep`, so the event loop parks too). CPU µs per call is the process's (`resource.getrusage`), mock server excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
from typing import Any, Awaitable, Callable, Dict, List

import polyroute
from bench import FAKE_KEY, MESSAGES, MODEL, async_floor_call, floor_call, start_mock, stop_mock, summarize


def policy(base: str) -> Dict[str, Any]:
    dep = {"provider": "mock", "model": MODEL}
    return {
        "providers": {"mock": {"kind": "openai", "base_url": base + "/v1", "api_key": FAKE_KEY}},
        "deployments": {"d": dep},
        "routes": [
            {"name": "chat", "deployments": ["d"]},
            {"name": "cached", "deployments": ["d"], "cache": {"mode": "read_write"}},
        ],
        "default_route": "chat",
    }


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return (u.ru_utime + u.ru_stime) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mock-server", required=True)
    ap.add_argument("--n", type=int, default=3000)
    # The default loop's `_run_once` is Python: two of them per async call are much of what an
    # `AsyncRouter.chat` costs over a `Router.chat`. uvloop's is C (and has `add_reader`, so
    # calls are driven by it the same way).
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args()
    proc, base = start_mock(args.mock_server)
    try:
        run(base, args.n, args.loop)
    finally:
        stop_mock(proc)


def run(base: str, n: int, loop: str = "asyncio") -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(rounds(base, n, loop))
    else:
        asyncio.run(rounds(base, n, loop))


async def rounds(base: str, n: int, loop: str = "asyncio") -> None:
    # Everything runs inside one running event loop, as an async service's calls do; the
    # blocking calls simply block it meanwhile.
    router = polyroute.Router(policy(base))
    arouter = polyroute.AsyncRouter(policy(base))
    floor = floor_call(base)
    async_floor = async_floor_call(base)

    async def sync(c: Callable[[], Any]) -> Any:
        return c()

    calls: Dict[str, Callable[[], Awaitable[Any]]] = {
        "floor (raw blocking socket)": lambda: sync(floor),
        "asyncio socket (`loop.sock_sendall` / `sock_recv`)": async_floor,
        "`Router.chat`, cache hit (no HTTP)": lambda: sync(lambda: router.chat(MESSAGES, route="cached")),
        "`Router.chat`": lambda: sync(lambda: router.chat(MESSAGES)),
        "`AsyncRouter.chat`, cache hit (no HTTP)": lambda: arouter.chat(MESSAGES, route="cached"),
        "`AsyncRouter.chat`": lambda: arouter.chat(MESSAGES),
    }
    for c in calls.values():
        for _ in range(200):
            await c()
    print(f"n={n} per row, Python {'.'.join(map(str, sys.version_info[:3]))}, polyroute {polyroute.__version__}, event loop: {loop}")
    print()
    # Four orders. Interleaved: each round calls every row once, in an order of its own
    # (seeded, so runs repeat): in a fixed order a row pays or gains for its place (a row after
    # its own cache-hit twin found its code warm; the Swift bench's row after the floor paid up
    # to 35 CPU-µs more after a gap, issue 18 seventeenth round). Blocks of 100: each row
    # repeatedly, as a service makes the same call (every call after one of its own kind).
    # Each without and with an idle gap of 1 ms before every call.
    for blocks in (False, True):
        for gap in (0.0, 0.001):
            await measure_order(calls, n if gap == 0 else n // 3, gap, blocks)


async def measure_order(calls: Dict[str, Callable[[], Awaitable[Any]]], rounds: int, gap: float, blocks: bool) -> None:
    lat: Dict[str, List[float]] = {k: [] for k in calls}
    used = {k: 0.0 for k in calls}
    shuffle = random.Random(18)
    names = list(calls)
    size = 100 if blocks else 1
    for _ in range(max(1, rounds // size)):
        shuffle.shuffle(names)
        for k in names:
            c = calls[k]
            for _ in range(size):
                if gap:
                    time.sleep(gap)
                c0 = cpu()
                t = time.perf_counter()
                await c()
                lat[k].append((time.perf_counter() - t) * 1e6)
                used[k] += cpu() - c0
    order = "blocks of 100 calls of one row" if blocks else "interleaved, shuffled each round"
    title = f"{order}, {'no gap' if gap == 0 else 'idle gap of 1 ms before each call'}"
    n = len(lat[names[0]])
    print(f"| {title} (n={n}) | p50 µs | p99 µs | added p50 over the floor µs | CPU µs/call |")
    print("|---|---|---|---|---|")
    f50 = summarize(lat[next(iter(calls))])["p50_us"]
    for i, k in enumerate(calls):
        s = summarize(lat[k])
        added = "–" if i == 0 else f"{s['p50_us'] - f50:.0f}"
        print(f"| {k} | {s['p50_us']:.0f} | {s['p99_us']:.0f} | {added} | {used[k] / n:.1f} |")
    print()


if __name__ == "__main__":
    main()
