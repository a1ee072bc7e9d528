"""A fleet: two worker processes (``multiprocessing``), each with its own Router on the same
policy, share one dollar budget through a real redis-server, by policy alone (``state.redis``).

Each request reserves its worst case ($0.020: 20 output tokens at $1000/Mtok) and settles
what the mock server reports ($0.015: 15 output tokens), so a $0.50 budget admits about 33
requests for the whole fleet, not 33 per process. Both workers fire concurrent requests until
they are refused round after round; then the fleet's spend must be within the limit and at
least 90 % used, every worker's ``budgets()`` must show the fleet's figure, and the provider
must have seen exactly the requests that succeeded (a refused request never reaches it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from typing import Any, Dict, List

import polyroute
from conftest import USER, MockServer, RedisServer, policy

LIMIT_USD = 0.5
MAX_TOKENS = 20  # reserved: 20 x $0.001
SETTLED_USD = 0.015  # settled: 15 output tokens x $0.001 (input tokens are free)
WORKERS = 2
CONCURRENCY = 8
SYNC_INTERVAL_S = 0.1


def _worker(p: Dict[str, Any], out: Any, start: Any, barrier: Any) -> None:
    """One process of the fleet: its own router; once every worker has one, concurrent
    rounds until refused 3 rounds in a row; then (after every worker is done and a sync has
    run) the budget as it sees it."""
    result: Dict[str, Any] = {"ok": 0, "cost": 0.0, "refused": 0, "errors": [], "rounds": 0}
    try:
        router = polyroute.AsyncRouter(p)

        async def one() -> None:
            try:
                resp = await router.chat(USER, max_tokens=MAX_TOKENS)
                result["ok"] += 1
                result["cost"] += resp.cost_usd or 0.0
            except polyroute.BudgetExceededError:
                result["refused"] += 1
            except polyroute.PolyrouteError as e:
                result["errors"].append(f"{e.kind}: {e}")

        async def run() -> None:
            refused_rounds = 0
            while refused_rounds < 3 and result["rounds"] < 300 and not result["errors"]:
                before = result["ok"]
                await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
                result["rounds"] += 1
                refused_rounds = refused_rounds + 1 if result["ok"] == before else 0

        start.wait(timeout=120)  # interpreters start at different speeds: race from one line
        asyncio.run(run())
        barrier.wait(timeout=120)
        time.sleep(SYNC_INTERVAL_S * 5)  # the fleet sync refreshes what budgets() shows
        result["budgets"] = [{"budget": b.budget, "spent": b.spent, "reserved": b.reserved, "limit": b.limit} for b in router.budgets()]
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        result["errors"].append(f"worker failed: {e!r}")
        start.abort()
        barrier.abort()
    out.put(result)


def test_two_processes_share_one_budget(server: MockServer, redis: RedisServer, name: str) -> None:
    server.script(name, {"then": {"usage": {"input_tokens": 10, "output_tokens": 15}, "latency_ms": 50}})
    p = policy(server, [name], pricing={"input_per_mtok": 0.0, "output_per_mtok": 1000.0})
    p["budgets"] = [{"name": "fleet", "limit_usd": LIMIT_USD, "period": "day"}]
    # fail_closed and a generous timeout: on a loaded test machine a slow store must show up
    # as an error here, not as a process quietly holding the budget locally (on_error: local).
    p["state"] = {
        "redis": {
            "url": redis.url,
            "key_prefix": f"polyroute-test:{name}:",
            "timeout": "2s",
            "on_error": "fail_closed",
            "sync_interval": f"{int(SYNC_INTERVAL_S * 1000)}ms",
        }
    }
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as separate workers are
    out = ctx.Queue()
    start, barrier = ctx.Barrier(WORKERS), ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_worker, args=(p, out, start, barrier)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    results: List[Dict[str, Any]] = []
    try:
        for _ in procs:
            results.append(out.get(timeout=180))
    except queue.Empty:
        raise AssertionError(f"a worker did not report; got {results}") from None
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    for r in results:
        assert r["errors"] == [], r
        # Both took part, and both were refused once the fleet's budget was gone.
        assert r["ok"] > 0 and r["refused"] >= 3 * CONCURRENCY, r

    successes = sum(r["ok"] for r in results)
    spent = sum(r["cost"] for r in results)
    assert abs(spent - successes * SETTLED_USD) < 1e-9, (spent, successes)
    # Never above the limit (one process alone would have been allowed the whole limit),
    # and at least 90 % of it used.
    assert spent <= LIMIT_USD + 1e-9, results
    assert spent >= 0.9 * LIMIT_USD, results
    # Every router's budgets() shows the fleet's settled spend, with nothing left held.
    for r in results:
        (b,) = r["budgets"]
        assert b["budget"] == "fleet" and b["limit"] == LIMIT_USD
        assert abs(b["spent"] - spent) < 1e-6, (b, spent)
        assert abs(b["reserved"]) < 1e-9, b
    # Refused requests never reached the provider.
    assert len(server.log(name)) == successes
