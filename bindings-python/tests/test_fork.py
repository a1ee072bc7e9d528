"""fork(): a child process gets a fresh runtime and a fresh connection pool, so a router
built (and used) in the parent keeps working in the child and in the parent."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from typing import Any, Dict, List, Optional

import polyroute
import pytest
from conftest import USER, MockServer, policy

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")

_ROUTER: Optional[polyroute.Router] = None


def _child_chat(i: int) -> str:
    assert _ROUTER is not None
    return _ROUTER.chat([{"role": "user", "content": f"child {i}"}]).content


def test_router_survives_fork(server: MockServer, name: str) -> None:
    p: Dict[str, Any] = policy(server, [name])
    router = polyroute.Router(p)
    arouter = polyroute.AsyncRouter(p)
    events: List[Dict[str, Any]] = []
    router.subscribe(events.append)
    assert router.chat(USER).content == "echo: hello mock"  # warm the parent's pool and runtime
    asyncio.run(arouter.chat(USER))
    # This thread's stream wake-up pair (runtime::drive) exists before the fork: the child
    # makes its own rather than share it.
    assert "".join(e.text or "" for e in router.stream(USER) if e.type == "content_delta") == "echo: hello mock"

    pid = os.fork()
    if pid == 0:  # child: any failure becomes a non-zero exit code
        code = 1
        try:
            assert router.chat([{"role": "user", "content": "in child"}]).content == "echo: in child"
            streamed = "".join(e.text or "" for e in router.stream(USER) if e.type == "content_delta")
            assert streamed == "echo: hello mock"
            resp = asyncio.run(arouter.chat([{"role": "user", "content": "async child"}]))
            assert resp.content == "echo: async child"
            # The subscription follows the router into the child (the parent's delivery
            # thread did not).
            events.clear()
            router.chat(USER)
            deadline = time.monotonic() + 3
            while not any(e["type"] == "request_finished" for e in events) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(e["type"] == "request_finished" for e in events), events
            code = 0
        except BaseException as e:  # noqa: BLE001
            print(f"child failed: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The parent is unaffected.
    assert router.chat(USER).content == "echo: hello mock"
    assert "".join(e.text or "" for e in router.stream(USER) if e.type == "content_delta") == "echo: hello mock"
    bodies = [e["body"]["messages"][-1]["content"] for e in server.log(name)]
    assert "in child" in bodies and "async child" in bodies


def test_multiprocessing_fork_pool(server: MockServer, name: str) -> None:
    global _ROUTER
    _ROUTER = polyroute.Router(policy(server, [name]))
    _ROUTER.chat(USER)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        out = pool.map(_child_chat, range(6))
    assert out == [f"echo: child {i}" for i in range(6)]
    _ROUTER = None


def test_errors_cross_process_boundaries(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "30"}})
    global _ROUTER
    _ROUTER = polyroute.Router(policy(server, [name]))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        with pytest.raises(polyroute.RateLimitedError) as info:
            pool.apply(_child_chat, (0,))
    assert info.value.status == 429 and info.value.retry_after == 30.0 and info.value.trace is not None
    _ROUTER = None
