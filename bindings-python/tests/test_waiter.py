"""What an async call awaits (src/waiter.rs): an asyncio-compatible future that wakes its
task in the loop callback that resolved it, not on the loop's next turn, and stops its call
when cancelled. These check the protocol asyncio relies on, the task's context across the
early wake-up, and that errors raised while a task resumes reach the loop as before, on
asyncio's default loop and on uvloop (the two loops the driven path runs on)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import time
from typing import Any, Coroutine, List, TypeVar

import polyroute
import pytest
from conftest import USER, MockServer, policy
from polyroute import _native
from polyroute._request import body as _body
from polyroute._router import _future


T = TypeVar("T")

LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop is Unix-only")),
]


def run(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts `call_soon`: a task woken through an `asyncio.Future` costs one per await."""

    soon = 0

    def call_soon(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        CountingLoop.soon += 1
        return super().call_soon(*args, **kwargs)


@pytest.mark.skipif(os.environ.get("POLYROUTE_ASYNC_WAKE") == "pump", reason="the pump task drains inside a task: call_soon there")
def test_an_answered_call_resumes_its_task_in_the_same_loop_turn(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))
    server.script(name, {"then": {"latency_ms": 5}})

    async def main() -> int:
        await router.chat(USER)
        before = CountingLoop.soon
        for _ in range(20):
            assert (await router.chat(USER)).content == "echo: hello mock"
        return CountingLoop.soon - before

    loop = CountingLoop()
    try:
        assert loop.run_until_complete(main()) == 0
    finally:
        loop.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_the_task_keeps_its_context_across_calls(server: MockServer, name: str, loop: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))
    var: "contextvars.ContextVar[str]" = contextvars.ContextVar("var", default="unset")

    async def one(tag: str) -> List[str]:
        seen = []
        var.set(tag)
        for i in range(3):
            await router.chat(USER)
            seen.append(var.get())
            var.set(f"{tag}{i}")
            # A real asyncio future next: the task resumes in its own context, which must be
            # the one the early wake-up ran it in (not a copy that the set above went to).
            await asyncio.sleep(0.001)
            assert var.get() == f"{tag}{i}"
        stream = await router.stream(USER)
        async for _ in stream:
            seen.append(var.get())
            break
        await stream.aclose()
        return seen

    async def main() -> "tuple[List[str], List[str], str]":
        a, b = await asyncio.gather(one("a"), one("b"))
        return a, b, var.get()

    before = _native._requests_by_path()[2]
    a, b, outside = run(loop, main())
    assert a == ["a", "a0", "a1", "a2"] and b == ["b", "b0", "b1", "b2"]
    assert outside == "unset"
    # The loop drove them (not the call threads, whose answers come through the pipe).
    if os.environ.get("POLYROUTE_ASYNC_WAKE") != "pump":
        assert _native._requests_by_path()[2] - before >= 4


@pytest.mark.parametrize("loop", LOOPS)
def test_a_base_exception_raised_as_a_task_resumes_reaches_the_caller(server: MockServer, name: str, loop: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        await router.chat(USER)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(loop, main())
    # The bridge goes on working on the next loop.
    assert run(loop, router.chat(USER)).content == "echo: hello mock"


@pytest.mark.parametrize("loop", LOOPS)
def test_cancelling_a_waiting_task_raises_cancelled_error_with_its_message(server: MockServer, name: str, loop: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))
    server.script(name, {"then": {"latency_ms": 5000}})

    async def main() -> None:
        task = asyncio.ensure_future(router.chat(USER))
        await asyncio.sleep(0.1)
        task.cancel("enough")
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert info.value.args == ("enough",)
        # The request was dropped: the next call is answered at once.
        server.script(name, {"then": {}})
        assert (await asyncio.wait_for(router.chat(USER), 5)).content == "echo: hello mock"

    run(loop, main())


def test_the_waiter_follows_the_asyncio_future_protocol() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        w = _native.Waiter(loop)
        assert asyncio.isfuture(w) and w.get_loop() is loop
        assert not w.done() and not w.cancelled()
        with pytest.raises(asyncio.InvalidStateError):
            w.result()
        seen: List[Any] = []
        w.add_done_callback(seen.append)
        w.add_done_callback(print)
        assert w.remove_done_callback(print) == 1
        assert w.cancel("why") and not w.cancel()
        assert w.done() and w.cancelled()
        with pytest.raises(asyncio.CancelledError):
            w.result()
        with pytest.raises(asyncio.CancelledError):
            w.exception()
        # Callbacks of a cancelled (or later added, done) waiter run on the loop's next turn.
        assert seen == []
        await asyncio.sleep(0)
        assert seen == [w]
        w.add_done_callback(seen.append)
        await asyncio.sleep(0)
        assert seen == [w, w]

    asyncio.run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_failed_call_raises_its_error_through_the_waiter(server: MockServer, name: str, loop: str) -> None:
    server.script(name, {"then": {"status": 400, "error_message": "bad field"}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        bridge, fut = _future()
        router._native.chat_async(bridge, fut, _body(USER, {}, "chat"))
        with pytest.raises(polyroute.InvalidRequestError):
            await fut
        assert fut.done() and not fut.cancelled()
        assert isinstance(fut.exception(), polyroute.InvalidRequestError)
        with pytest.raises(polyroute.InvalidRequestError):
            fut.result()
        # Awaited again, it raises again (as an asyncio.Future does).
        with pytest.raises(polyroute.InvalidRequestError):
            await fut

    run(loop, main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_call_answered_while_another_task_runs_wakes_its_task_on_a_later_turn(server: MockServer, name: str, loop: str) -> None:
    # The bridge's callbacks run between tasks, where resuming one is allowed; should one run
    # inside a task (a nested loop), resuming another there would fail ("Cannot enter into
    # task ... while another task ... is being executed"): it must be scheduled instead.
    server.script(name, {"then": {"latency_ms": 50}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        bridge, fut = _future()
        if bridge.sockets_fd is None:
            pytest.skip("no socket set here (pump path or not Linux)")
        await router.chat(USER)  # a pooled connection: the request goes out at once
        router._native.chat_async(bridge, fut, _body(USER, {}, "chat"))

        async def wait() -> Any:
            return await fut

        other = asyncio.ensure_future(wait())
        await asyncio.sleep(0)
        # The answer arrives while this task blocks; it polls the bridge's sockets itself.
        for _ in range(10):
            time.sleep(0.1)
            bridge.poll_sockets()
            if fut.done():
                break
        assert fut.done() and not other.done()
        content = (await other).content
        assert content == "echo: hello mock"

    run(loop, main())
