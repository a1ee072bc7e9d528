"""AsyncRouter: asyncio awaitables, async iteration, and cancellation that reaches the
request (the mock server sees the client leave)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Coroutine, Dict, List, Set, TypeVar

import polyroute
import pytest
from conftest import USER, MockServer, policy
from test_streaming import wait_for_disconnect

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_chat_and_stream(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        resp = await router.chat(USER)
        assert resp.content == "echo: hello mock" and resp.deployment == name
        stream = await router.stream(USER)
        assert isinstance(stream, polyroute.AsyncStream)
        text = "".join([e.text or "" async for e in stream if e.type == "content_delta"])
        assert text == "echo: hello mock"
        assert stream.trace is not None and stream.trace.served_by == name
        s2 = await router.chat(USER, stream=True)
        async with s2:
            assert [e.type async for e in s2][-2:] == ["finish", "usage"]

    run(main())


def test_errors_raise_from_await(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"status": 429, "error_code": "insufficient_quota"}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        with pytest.raises(polyroute.QuotaExhaustedError) as info:
            await router.chat(USER)
        assert info.value.status == 429
        # Exhausted quota bans the deployment for `ban_open_for`: the next call costs no
        # round trip.
        with pytest.raises(polyroute.CircuitOpenError):
            await router.stream(USER)
        assert len(server.log(name)) == 1
        with pytest.raises(TypeError):
            await router.chat(USER, bogus=1)  # type: ignore[call-overload]

    run(main())


def test_more_concurrent_calls_than_call_workers_all_run_at_once(server: MockServer, name: str) -> None:
    # The first calls take the idle call workers (one per core, requests inline); the rest
    # must go to the runtime at once, not queue behind the workers.
    server.script(name, {"then": {"latency_ms": 400}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> List[str]:
        resps = await asyncio.gather(*(router.chat(USER) for _ in range(16)))
        return [r.content for r in resps]

    assert run(main()) == ["echo: hello mock"] * 16
    received = [e["received_ms"] for e in server.log(name)]
    assert len(received) == 16
    # All sixteen reached the server while the first was still waiting for its answer.
    assert max(received) - min(received) < 400


def test_task_cancellation_aborts_the_request(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"latency_ms": 5000}})
    router = polyroute.AsyncRouter(policy(server, [name], timeouts={"first_token": "20s", "total": "30s"}))

    async def main() -> float:
        task = asyncio.create_task(router.chat(USER))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    took = run(main())
    assert took < 0.5
    entry = wait_for_disconnect(server, name)
    assert entry["client_disconnected"] is True and entry["headers_sent_ms"] is None
    # Cancelled means cancelled: no retry went out afterwards.
    time.sleep(0.2)
    assert len(server.log(name)) == 1


def test_wait_for_timeout_aborts_the_request(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"fault": "hang"}})
    router = polyroute.AsyncRouter(policy(server, [name], timeouts={"first_token": "20s", "total": "30s"}))

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(router.chat(USER), timeout=0.3)

    run(main())
    assert wait_for_disconnect(server, name)["client_disconnected"] is True


def test_breaking_out_of_async_with_cancels_the_stream(server: MockServer, name: str) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    server.script(name, {"then": {"text": words, "chunk_delay_ms": 100}})
    router = polyroute.AsyncRouter(policy(server, [name], timeouts={"total": "30s"}))

    async def main() -> None:
        async with await router.stream(USER) as stream:
            async for ev in stream:
                if ev.type == "content_delta":
                    break
        assert stream.closed

    run(main())
    assert wait_for_disconnect(server, name)["client_disconnected"] is True


def test_close_while_another_task_awaits_an_event(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"fault": {"stall_after": {"chunks": 1}}}})
    router = polyroute.AsyncRouter(policy(server, [name], timeouts={"idle": "10s"}))

    async def main() -> None:
        stream = await router.stream(USER)
        seen: List[str] = []

        async def reader() -> None:
            async for ev in stream:
                seen.append(ev.type)

        task = asyncio.create_task(reader())
        while "content_delta" not in seen:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await stream.aclose()
        with pytest.raises(polyroute.RequestCancelledError):
            await task

    run(main())


def test_concurrent_calls_do_not_block_the_event_loop(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"latency_ms": 300}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(*[router.chat([{"role": "user", "content": f"n{i}"}]) for i in range(64)])
        elapsed = time.monotonic() - started
        done = True
        await t
        assert [r.content for r in results] == [f"echo: n{i}" for i in range(64)]
        # 64 requests of 300 ms each, concurrently: nowhere near 64 × 300 ms.
        assert elapsed < 3, elapsed
        return ticks

    ticks = run(main())
    assert ticks >= 15  # the loop kept running while requests were in flight
    assert len(server.log(name)) == 64


EXIT_PROGRAM = """
import asyncio, polyroute
P = {"providers": {"m": {"kind": "mock"}}, "deployments": {"d": {"provider": "m", "model": "m1"}},
     "routes": [{"name": "chat", "deployments": ["d"]}], "default_route": "chat"}
router = polyroute.AsyncRouter(P)
router.subscribe(lambda ev: sum(range(1000)))
async def main():
    await asyncio.gather(*[router.chat([{"role": "user", "content": "x"}]) for _ in range(100)])
    async for _ in await router.stream([{"role": "user", "content": "a b"}]):
        pass
asyncio.run(main())
"""


def test_interpreter_exit_right_after_async_work_is_clean() -> None:
    # Regression: results used to be handed to asyncio from a runtime thread holding the GIL,
    # which could still be attached when the interpreter finalized (fatal abort at exit).
    import subprocess
    import sys

    for _ in range(15):
        proc = subprocess.run([sys.executable, "-c", EXIT_PROGRAM], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "Fatal" not in proc.stderr, proc.stderr


def test_one_bridge_per_loop_and_no_fd_leak(server: MockServer, name: str) -> None:
    import os

    router = polyroute.AsyncRouter(policy(server, [name]))
    run(router.chat(USER))
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(30):
        run(router.chat(USER))
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after - before < 10


def test_calls_alternating_between_loops_each_use_their_own_loops_bridge(server: MockServer, name: str) -> None:
    """`_future` remembers the last loop's bridge (the common one-loop case skips a lookup):
    calls alternating between two loops still each go through their own loop's bridge, and a
    loop's bridge goes when the loop does, on both wake-up paths (the pump task's too)."""
    import gc
    import weakref

    from polyroute._router import _BRIDGES, _future

    router = polyroute.AsyncRouter(policy(server, [name]))
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]

    async def one() -> "tuple[int, str]":
        bridge, _ = _future()
        assert bridge is _BRIDGES[asyncio.get_running_loop()].native
        return id(bridge), (await router.chat(USER)).content

    seen: Dict[int, Set[int]] = {0: set(), 1: set()}
    for i in range(6):
        bridge_id, content = loops[i % 2].run_until_complete(one())
        assert content == "echo: hello mock"
        seen[i % 2].add(bridge_id)
    assert len(seen[0]) == len(seen[1]) == 1 and seen[0] != seen[1]
    bridges = [weakref.ref(_BRIDGES[loop]) for loop in loops]

    def shut_down(loop: asyncio.AbstractEventLoop) -> None:
        # As `asyncio.run` ends: the bridge's pump task (proactor path) is cancelled first.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    for loop in loops:
        shut_down(loop)
    del loop, loops
    gc.collect()
    assert [b() for b in bridges] == [None, None]


def test_the_wake_up_path_is_the_one_asked_for() -> None:
    """test.sh runs the asyncio tests twice: add_reader (selector loops) and, with
    POLYROUTE_ASYNC_WAKE=pump, the sock_recv task Windows' proactor loop needs."""
    import os

    from polyroute._router import _BRIDGES, _future

    async def main() -> None:
        _future()
        bridge = _BRIDGES[asyncio.get_running_loop()]
        assert (bridge._pump is not None) == (os.environ.get("POLYROUTE_ASYNC_WAKE") == "pump")

    asyncio.run(main())
