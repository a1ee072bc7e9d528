"""The blocking API from many threads: one router shared by 32 threads, the GIL released
while waiting, and Ctrl-C cancelling a blocked call."""

from __future__ import annotations

import threading
import time
from typing import List

import polyroute
import pytest
from conftest import USER, MockServer, ctrl_c_after, policy
from test_streaming import wait_for_disconnect


def test_one_router_shared_by_32_threads(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"latency_ms": 20}})
    router = polyroute.Router(policy(server, [name]))
    per_thread = 8
    errors: List[BaseException] = []
    barrier = threading.Barrier(32)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                if i % 2:
                    resp = router.chat([{"role": "user", "content": f"t{t} i{i}"}])
                    assert resp.content == f"echo: t{t} i{i}", resp.content
                else:
                    text = "".join(e.text or "" for e in router.stream([{"role": "user", "content": f"t{t} s{i}"}]) if e.type == "content_delta")
                    assert text == f"echo: t{t} s{i}", text
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(32)]
    started = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors[:3]
    assert len(server.log(name)) == 32 * per_thread
    # 8 sequential 20 ms calls per thread, threads in parallel: far below 256 × 20 ms.
    assert time.monotonic() - started < 4


def test_the_gil_is_released_while_waiting(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"latency_ms": 500}})
    router = polyroute.Router(policy(server, [name]))
    done = threading.Event()

    def call() -> None:
        router.chat(USER)
        done.set()

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.05)
    # Pure-Python work on this thread: it only progresses if the waiting call let go of the GIL.
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    assert spins > 100_000


def test_keyboard_interrupt_cancels_a_blocked_call(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"fault": "hang"}})
    router = polyroute.Router(policy(server, [name], timeouts={"first_token": "20s", "total": "30s"}))
    started = time.monotonic()
    with ctrl_c_after(0.3), pytest.raises(KeyboardInterrupt):
        router.chat(USER)
    assert time.monotonic() - started < 1.5
    assert wait_for_disconnect(server, name)["client_disconnected"] is True
