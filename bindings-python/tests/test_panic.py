"""The last line of defence: a panic inside the core (a bug) crosses into Python as
``polyroute.ConfigError`` ("internal error: ...; please report it"), never as pyo3's
``PanicException``, from sync calls and from asyncio awaitables alike, and the process keeps
working afterwards. The panic is real: ``_native._debug_panic*`` panic inside the core on
purpose, under the same guard every entry point runs under."""

from __future__ import annotations

import asyncio

import polyroute
import pytest
from conftest import USER, MockServer, policy
from polyroute import _native
from polyroute._router import _future


def check_internal(e: polyroute.PolyrouteError, site: str) -> None:
    assert type(e) is polyroute.ConfigError
    assert e.kind == "config"
    assert e.message == f"internal error: deliberate panic for testing ({site}); please report it"


def test_a_panic_in_a_sync_call_is_a_config_error_and_the_router_keeps_working(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    for _ in range(2):
        with pytest.raises(polyroute.ConfigError) as info:
            _native._debug_panic()
        check_internal(info.value, "python sync call")
    assert router.chat(USER).content == "echo: hello mock"


def test_a_panic_in_an_awaited_call_is_a_config_error_and_the_loop_keeps_working(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> None:
        bridge, fut = _future()
        _native._debug_panic_async(bridge, fut)
        with pytest.raises(polyroute.ConfigError) as info:
            await asyncio.wait_for(fut, 10)
        check_internal(info.value, "python async call")
        resp = await router.chat(USER)
        assert resp.content == "echo: hello mock"

    asyncio.run(main())
