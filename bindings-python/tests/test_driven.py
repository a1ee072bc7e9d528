"""Async calls driven by the asyncio loop itself (src/driven.rs): their plain-http requests
are sent from the loop's thread and the loop's selector waits for the answer, on kept-alive
connections from the router's pool. Every other async test runs this path too; these check
that it is the path taken, and the cases only it has (timers waking a driven call, sockets
unwatched before they are reused or closed, a driven stream read from a sync iterator).

Sync streams are driven too, by the calling thread itself (`runtime::drive`: it sleeps in
`poll(2)` on the stream's socket), so that each chunk wakes only the reader."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any, Coroutine, List, TypeVar

import polyroute
import pytest
from conftest import USER, MockServer, ctrl_c_after, policy
from polyroute import _native

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or os.environ.get("POLYROUTE_ASYNC_WAKE") == "pump",
    reason="the loop-driven path needs add_reader (Unix, selector loops)",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def paths() -> "tuple[int, int, int]":
    """Requests sent so far by (blocking, runtime async, loop-driven) clients."""
    return _native._requests_by_path()


def test_async_calls_and_streams_are_driven_by_the_loop_on_pooled_connections(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))
    before = paths()

    async def main() -> List[str]:
        out = [(await router.chat(USER)).content for _ in range(3)]
        stream = await router.stream(USER)
        out.append("".join([e.text or "" async for e in stream if e.type == "content_delta"]))
        # Eight at once, each answered after 200 ms: all in flight together.
        server.script(name, {"then": {"latency_ms": 200}})
        started = time.monotonic()
        out += [r.content for r in await asyncio.gather(*(router.chat(USER) for _ in range(8)))]
        assert time.monotonic() - started < 0.8
        out += [(await router.chat(USER)).content]
        return out

    assert run(main()) == ["echo: hello mock"] * 13
    blocking, runtime, driven = (a - b for a, b in zip(paths(), before))
    # All but the eight at once were driven, and of those at least one per core (two at
    # least); the rest took the call workers or the runtime, which spread the work.
    assert blocking + runtime + driven == 13 and driven >= 5 + 2
    conns = [e["connection"] for e in server.log(name)]
    # One after another, the calls and the stream took one kept-alive connection.
    assert len(set(conns[:4])) == 1
    # Eight at once took eight, which went back to the pool: the last call reused one.
    assert len(set(conns[4:12])) == 8 and conns[12] in conns[4:12]


def test_a_retry_after_backoff_wakes_the_driven_call_through_the_bridge(server: MockServer, name: str) -> None:
    # The backoff is a tokio timer: nothing the loop watches becomes ready, the timer's
    # waker must bring the call back to the loop.
    server.script(name, {"steps": [{"status": 503}], "then": {}})
    router = polyroute.AsyncRouter(policy(server, [name], retry={"attempts_per_deployment": 2, "base_delay": "50ms", "max_delay": "50ms"}))

    async def main() -> "tuple[str, float]":
        started = time.monotonic()
        resp = await router.chat(USER)
        return resp.content, time.monotonic() - started

    content, took = run(main())
    assert content == "echo: hello mock"
    log = server.log(name)
    assert len(log) == 2 and log[1]["received_ms"] - log[0]["received_ms"] >= 25


def test_a_cancelled_driven_call_closes_its_socket_and_the_loop_stops_watching_it(server: MockServer, name: str) -> None:
    server.script(name, {"steps": [{"latency_ms": 5000}], "then": {}})
    router = polyroute.AsyncRouter(policy(server, [name], timeouts={"first_token": "20s", "total": "30s"}))

    async def main() -> List[str]:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(router.chat(USER), timeout=0.3)
        # A new connection may get the closed one's descriptor number: the loop must not
        # still hold the old registration for it (asyncio would then fail to add it).
        return [(await router.chat(USER)).content for _ in range(3)]

    assert run(main()) == ["echo: hello mock"] * 3
    deadline = time.monotonic() + 5
    while server.log(name)[0]["finished_ms"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    log = server.log(name)
    assert log[0]["client_disconnected"] is True
    assert log[0]["connection"] not in {e["connection"] for e in log[1:]}


def test_spaced_stream_chunks_arrive_as_sent(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "a b c d", "chunk_delay_ms": 60}})
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> "tuple[str, List[float]]":
        stream = await router.stream(USER)
        text, at = "", []
        async for e in stream:
            if e.type == "content_delta":
                text += e.text or ""
                at.append(time.monotonic())
        return text, at

    text, at = run(main())
    assert text == "a b c d"
    # Each delta was handed over when its chunk came, not all at the end.
    assert at[-1] - at[0] >= 0.12


def test_turned_off_by_environment_the_call_workers_serve(server: MockServer, name: str) -> None:
    code = f"""
import asyncio, json, polyroute
from polyroute import _native
router = polyroute.AsyncRouter({policy(server, [name])!r})
async def main():
    return (await router.chat([{{"role": "user", "content": "hello mock"}}])).content
print(json.dumps([asyncio.run(main()), _native._requests_by_path()]))
"""
    env = dict(os.environ, POLYROUTE_ASYNC_DRIVEN="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    content, (blocking, _runtime, driven) = json.loads(out.stdout)
    assert content == "echo: hello mock" and driven == 0 and blocking == 1


SELECTOR_LOOP_CODE = """
import asyncio, json, polyroute
router = polyroute.AsyncRouter({policy!r})
async def main():
    loop = asyncio.get_running_loop()
    out = [(await router.chat([{{"role": "user", "content": "hello mock"}}])).content]
    # The bridge and its descriptors exist from here; what else the loop watches while a
    # stream waits for its spaced chunks is the driven socket's own registration, if any.
    before = set(loop._selector.get_map())
    grew = []
    async def sample():
        while True:
            grew.append(set(loop._selector.get_map()) != before)
            await asyncio.sleep(0.003)
    sampler = asyncio.ensure_future(sample())
    text = ""
    async for e in await router.stream([{{"role": "user", "content": "hello mock"}}]):
        text += e.text or ""
    sampler.cancel()
    out.append(text)
    out += [r.content for r in await asyncio.gather(*(router.chat([{{"role": "user", "content": "hello mock"}}]) for _ in range(2)))]
    return out, any(grew)
print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the socket set is an epoll set (Linux)")
@pytest.mark.parametrize("socket_set", ["1", "0"])
def test_driven_sockets_wait_in_the_bridge_socket_set_not_one_by_one_in_the_selector(server: MockServer, name: str, socket_set: str) -> None:
    # A spaced stream: each read waits on its socket, armed in the set (one epoll_ctl) where
    # it used to be added to the loop's selector and removed again (POLYROUTE_ASYNC_SOCKET_SET=0).
    server.script(name, {"then": {"text": "a b c d", "chunk_delay_ms": 30}})
    code = SELECTOR_LOOP_CODE.format(policy=policy(server, [name]))
    env = dict(os.environ, POLYROUTE_ASYNC_SOCKET_SET=socket_set)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    texts, grew = json.loads(out.stdout)
    assert texts == ["a b c d", "a b c d", "a b c d", "a b c d"]
    assert grew is (socket_set == "0")


def test_sync_streams_are_read_by_the_calling_thread_on_a_pooled_connection(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "a b c d", "chunk_delay_ms": 40}})
    router = polyroute.Router(policy(server, [name]))
    for way in ("events", "chunks", "whole"):
        before = paths()
        stream = router.stream(USER)
        if way == "whole":
            assert stream.final_response().content == "a b c d"
            continue
        text, at = "", []
        for piece in stream if way == "events" else stream.chunks():
            delta = piece.text if way == "events" else (piece.choices[0].delta.content if piece.choices else None)
            if delta:
                text += delta
                at.append(time.monotonic())
        assert text == "a b c d", way
        # Each delta was handed over when its chunk came, not all at the end.
        assert at[-1] - at[0] >= 0.08, way
        # No runtime worker read it, and no blocking client sent it.
        assert tuple(a - b for a, b in zip(paths(), before)) == (0, 0, 1), way
    conns = {e["connection"] for e in server.log(name)}
    assert len(server.log(name)) == 3 and len(conns) == 1, "one kept-alive connection for three streams"


def test_a_timer_wakes_a_sync_stream_waiting_on_its_thread(server: MockServer, name: str) -> None:
    # The backoff between the two attempts is a tokio timer: nothing this thread polls
    # becomes ready, the timer's waker must wake it.
    server.script(name, {"steps": [{"status": 503}], "then": {"text": "after a retry"}})
    router = polyroute.Router(policy(server, [name], retry={"attempts_per_deployment": 2, "base_delay": "50ms", "max_delay": "50ms"}))
    text = "".join(e.text or "" for e in router.stream(USER) if e.type == "content_delta")
    assert text == "after a retry"
    log = server.log(name)
    assert len(log) == 2 and log[1]["received_ms"] - log[0]["received_ms"] >= 25


def test_keyboard_interrupt_cancels_a_sync_stream_waiting_for_its_next_chunk(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "one two three", "fault": {"stall_after": {"chunks": 1}}}})
    router = polyroute.Router(policy(server, [name], timeouts={"first_token": "20s", "total": "30s", "idle": "20s"}))
    stream = iter(router.stream(USER))
    first = next(e for e in stream if e.type == "content_delta")
    assert first.text
    started = time.monotonic()
    with ctrl_c_after(0.3), pytest.raises(KeyboardInterrupt):
        for _ in stream:
            pass
    assert time.monotonic() - started < 1.5
