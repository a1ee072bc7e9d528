"""How many event-loop turns an `AsyncRouter.chat` takes: counted, not timed.

    cd bench/python && .venv/bin/python loop_turns.py --mock-server PATH [--n 1000]

On asyncio's default loop every turn (`_run_once`) is Python code, so the number of turns per
call is what an async call pays the loop, whatever its own speed. Counts per call, after a
warm-up: loop turns, `call_soon` handles (a future's done-callbacks are scheduled with it),
selector calls (one per turn) and the events they return, timers armed. A socket read
awaited through an `asyncio.Future` costs two turns (the readiness callback resolves the
future; the task resumes on the next turn, through `call_soon`): 2 / 1 / 2 / 1 / 0, which
is what `AsyncRouter.chat` took until its calls awaited the binding's own `Waiter`
(src/waiter.rs), which resumes the task in the readiness callback itself: 1 / 0 / 1 / 1 / 0
(issue 18, fourteenth round). Fewer than one turn per call means some answers were there
at the call's first read (right after its write), and the call never waited on the loop: on
a busy machine often (the sender was preempted between its write and its read); run it on a
quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Callable, Dict

import polyroute
from bench import FAKE_KEY, start_mock, stop_mock


def counted(counts: Dict[str, int], key: str, fn: Callable[..., Any], events: bool = False) -> Callable[..., Any]:
    def wrapper(*a: Any, **k: Any) -> Any:
        counts[key] += 1
        out = fn(*a, **k)
        if events:
            counts["selector events"] += len(out)
        return out

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mock-server", required=True)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    proc, base = start_mock(args.mock_server)
    try:
        policy = {
            "providers": {"mock": {"kind": "openai", "base_url": base + "/v1", "api_key": FAKE_KEY}},
            "deployments": {"d": {"provider": "mock", "model": "m"}},
            "routes": [{"name": "chat", "deployments": ["d"]}],
        }
        router = polyroute.AsyncRouter(policy)
        msgs = [{"role": "user", "content": "hi"}]
        loop = asyncio.new_event_loop()
        counts = {"loop turns": 0, "call_soon": 0, "selector calls": 0, "selector events": 0, "timers": 0}
        # Instance attributes shadow the loop's methods: the loop itself calls them through
        # `self`, and so do futures resolved on it.
        loop._run_once = counted(counts, "loop turns", loop._run_once)  # type: ignore[attr-defined]
        loop.call_soon = counted(counts, "call_soon", loop.call_soon)  # type: ignore[method-assign]
        loop.call_at = counted(counts, "timers", loop.call_at)  # type: ignore[method-assign]
        selector = loop._selector  # type: ignore[attr-defined]
        selector.select = counted(counts, "selector calls", selector.select, events=True)

        async def calls() -> None:
            for _ in range(50):
                await router.chat(msgs)
            for k in counts:
                counts[k] = 0
            for _ in range(args.n):
                await router.chat(msgs)

        loop.run_until_complete(calls())
        loop.close()
        print(f"per `AsyncRouter.chat` on asyncio's default loop (n={args.n}):")
        for k, v in counts.items():
            print(f"  {k}: {v / args.n:.3f}")
    finally:
        stop_mock(proc)


if __name__ == "__main__":
    main()
