"""``polyroute.http_client`` under the real openai SDK (pinned in test.sh): every
``chat.completions`` call answered in-process by the router, as OpenAI would answer it."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from typing import Any, Dict, List, Type

import httpx2
import openai
import pytest
from pydantic import BaseModel

import polyroute
from conftest import FAKE_KEY, USER, MockServer, free_port, policy
from polyroute import _httpx
from sdk_helpers import cut_after_content, failover

ONE_SHOT = {"attempts_per_deployment": 1, "max_attempts": 1}


def client(http_client: Any, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(api_key=FAKE_KEY, max_retries=retries, http_client=http_client)


def test_create_fails_over_invisibly_and_the_headers_name_the_deployment(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "from backup"})
    raw = client(f.http_client()).chat.completions.with_raw_response.create(model="chat", messages=USER)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content == "from backup"
    assert completion.model == f.backup
    assert raw.headers["x-polyroute-deployment"] == f.backup
    assert raw.headers["x-polyroute-route"] == "chat"
    assert float(raw.headers["x-polyroute-cost-usd"]) > 0
    explanation = raw.headers["x-polyroute-explanation"]
    assert f.backup in explanation and explanation.isascii()
    assert [len(server.log(p)) for p in f.primaries] == [1, 1]


def test_model_naming_a_route_and_polyroute_headers_route_it(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "ok"})
    c = client(f.http_client())
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER, extra_headers={"x-polyroute-route": "chat"}  # type: ignore[arg-type]
    )
    assert raw.headers["x-polyroute-route"] == "chat"
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="chat", messages=USER, extra_body={"polyroute": {"route": "nope"}})  # type: ignore[arg-type]
    assert info.value.code == "no_route"
    assert info.value.response.headers["x-polyroute-error-kind"] == "no_route"


def test_async_create_and_stream_with_usage(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "async backup"})

    async def main() -> None:
        c = openai.AsyncOpenAI(api_key=FAKE_KEY, max_retries=0, http_client=f.async_http_client())
        raw = await c.chat.completions.with_raw_response.create(model="chat", messages=USER)  # type: ignore[arg-type]
        assert raw.headers["x-polyroute-deployment"] == f.backup
        assert raw.parse().choices[0].message.content == "async backup"
        stream = await c.chat.completions.create(
            model="chat", messages=USER, stream=True, stream_options={"include_usage": True}  # type: ignore[arg-type]
        )
        chunks = [ch async for ch in stream]
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "async backup"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
        assert {ch.model for ch in chunks} == {f.backup}

    asyncio.run(main())


def test_stream_with_usage_fails_over_before_content(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "streamed from backup"})
    with client(f.http_client()).chat.completions.with_streaming_response.create(
        model="chat", messages=USER, stream=True, stream_options={"include_usage": True}  # type: ignore[arg-type]
    ) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert (resp.headers["x-polyroute-route"], resp.headers["x-polyroute-deployment"]) == ("chat", f.backup)
        chunks = list(resp.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "streamed from backup"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert {c.model for c in chunks} == {f.backup}
    assert [len(server.log(p)) for p in f.primaries] == [1, 1]


class Person(BaseModel):
    name: str
    age: int


def test_parse_with_a_pydantic_response_format(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": json.dumps({"name": "Ada", "age": 36})})
    c = client(f.http_client())
    completion = c.chat.completions.parse(model="chat", messages=USER, response_format=Person)  # type: ignore[arg-type]
    assert completion.choices[0].message.parsed == Person(name="Ada", age=36)
    assert f.served_by_backup()
    # The schema reached the provider as OpenAI's response_format.
    sent = server.log(f.backup)[0]
    assert "json_schema" in json.dumps(sent)


def test_a_cut_after_content_raises_the_sdks_stream_error(server: MockServer, name: str) -> None:
    f = cut_after_content(server, name)
    got: List[str] = []
    with pytest.raises(openai.APIError) as info:
        for ch in client(f.http_client()).chat.completions.create(model="chat", messages=USER, stream=True):  # type: ignore[arg-type]
            got.extend(c.delta.content or "" for c in ch.choices)
    assert "".join(got) == "one two"
    assert info.value.code == "stream_interrupted"
    assert not isinstance(info.value, openai.APIStatusError)
    assert server.log(f.backup) == []

    async def main() -> None:
        c = openai.AsyncOpenAI(api_key=FAKE_KEY, max_retries=0, http_client=f.async_http_client())
        with pytest.raises(openai.APIError):
            async for _ in await c.chat.completions.create(model="chat", messages=USER, stream=True):  # type: ignore[arg-type]
                pass

    asyncio.run(main())


JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}

# kind, script step of the only deployment ({}: set up in error_router), extra request
# arguments, openai exception class, status; streamed and not unless the kind is in ONLY.
# Not producible against the mock: `cancelled` (499, APIStatusError) and `config` (500).
ERROR_CASES: List[Any] = [
    ("rate_limited", {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "7"}, {}, openai.RateLimitError, 429),
    ("quota_exhausted", {"status": 429, "error_code": "insufficient_quota"}, {}, openai.RateLimitError, 429),
    ("budget_exceeded", {}, {}, openai.RateLimitError, 429),
    ("context_length_exceeded", {"status": 400, "error_code": "context_length_exceeded"}, {}, openai.BadRequestError, 400),
    ("content_filter", {"status": 400, "error_code": "content_filter"}, {}, openai.BadRequestError, 400),
    ("invalid_request", {"status": 400, "error_message": "bad field"}, {}, openai.BadRequestError, 400),
    ("guard_rejected", {}, {}, openai.BadRequestError, 400),
    ("no_route", {}, {"extra_headers": {"x-polyroute-route": "nope"}}, openai.NotFoundError, 404),
    ("overloaded", {"status": 503}, {}, openai.InternalServerError, 503),
    ("circuit_open", {}, {}, openai.InternalServerError, 503),
    ("state_unavailable", {}, {}, openai.InternalServerError, 503),
    ("server_error", {"status": 500}, {}, openai.InternalServerError, 502),
    ("auth", {"status": 401}, {}, openai.InternalServerError, 502),
    ("permission_denied", {"status": 403}, {}, openai.InternalServerError, 502),
    ("not_found", {"status": 404}, {}, openai.InternalServerError, 502),
    ("connection", {"fault": "drop"}, {}, openai.InternalServerError, 502),
    ("malformed_response", {"fault": {"malformed_after": {"chunks": 0}}}, {}, openai.InternalServerError, 502),
    ("timeout", {"fault": "hang"}, {}, openai.InternalServerError, 504),
    ("invalid_output", {"text": "this is not json"}, {"response_format": JSON_SCHEMA}, openai.InternalServerError, 502),
    ("stream_interrupted", {"fault": {"cut_after": {"chunks": 0}}}, {}, openai.InternalServerError, 502),
]
#: Kinds a request produces only streamed (a cut before any content) or only not streamed
#: (the output check of a whole answer).
ONLY = {"stream_interrupted": (True,), "invalid_output": (False,)}


def error_router(server: MockServer, name: str, kind: str, step: Dict[str, Any]) -> polyroute.Router:
    server.script(name, {"then": step})
    p = policy(server, [name], retry=ONE_SHOT, timeouts={"first_token": "300ms"})
    if kind == "budget_exceeded":
        p = policy(server, [name], retry={**ONE_SHOT, "max_request_cost_usd": 0}, pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    if kind == "state_unavailable":
        # A budget held in a Redis where nothing listens, fail_closed.
        p = policy(server, [name], retry=ONE_SHOT, pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
        p["budgets"] = [{"name": "b", "limit_usd": 10, "period": "day"}]
        p["state"] = {"redis": {"url": f"redis://127.0.0.1:{free_port()}", "on_error": "fail_closed", "timeout": "50ms"}}
    if kind == "guard_rejected":
        p["guards"] = [{"name": "no-cards", "detect": ["credit_card"], "action": "reject"}]
    router = polyroute.Router(p)
    if kind == "circuit_open":
        router.set_breaker(name, "forced_open")
    return router


@pytest.mark.parametrize("kind,step,extra,cls,status", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_every_kind_raises_its_openai_exception(
    server: MockServer, name: str, kind: str, step: Dict[str, Any], extra: Dict[str, Any], cls: Type[openai.APIStatusError], status: int
) -> None:
    content = "pay with 4111 1111 1111 1111" if kind == "guard_rejected" else "hello mock"
    for stream in ONLY.get(kind, (False, True)):
        # A router each: some kinds open the breaker (the second call would be circuit_open).
        router = error_router(server, name, kind, step)
        with pytest.raises(openai.APIStatusError) as info:
            client(polyroute.http_client(router)).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": content}], stream=stream, **extra  # type: ignore[call-overload]
            )
        e = info.value
        assert type(e) is cls, (stream, type(e))
        assert e.status_code == status and e.code == kind
        assert e.response.headers["x-polyroute-error-kind"] == kind
        assert isinstance(e.body, dict) and e.body.get("code") == kind
        assert e.response.json()["polyroute"]["kind"] == kind
    if kind == "rate_limited":
        assert e.response.headers["retry-after"] == "7"


def test_other_paths_are_openai_404s(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    with pytest.raises(openai.NotFoundError) as info:
        client(polyroute.http_client(router)).embeddings.create(model="chat", input="x")
    assert info.value.response.headers["x-polyroute-error-kind"] == "not_found"
    assert info.value.type == "invalid_request_error"
    assert "/embeddings" in info.value.message
    assert server.log(name) == []


def test_an_unknown_model_is_no_route_and_a_deployment_name_is_tried_first(server: MockServer, name: str) -> None:
    other = name + "-other"
    server.script(other, {"then": {"text": "from the other"}})
    c = client(polyroute.http_client(polyroute.Router(policy(server, [name, other]))))
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert info.value.code == "no_route" and "gpt-4o-mini" in str(info.value)
    assert server.log(name) == [] and server.log(other) == [], "nothing sent"
    raw = c.chat.completions.with_raw_response.create(model=other, messages=USER)  # type: ignore[arg-type]
    assert raw.headers["x-polyroute-deployment"] == other
    assert raw.parse().choices[0].message.content == "from the other"


def test_the_sdks_timeout_is_the_routed_requests_deadline(server: MockServer, name: str) -> None:
    # openai-python sends its read timeout as x-stainless-read-timeout; the router stops
    # there instead of paying for attempts nobody waits for.
    server.script(name, {"then": {"fault": "hang"}})
    router = polyroute.Router(policy(server, [name], timeouts={"first_token": "20s", "idle": "20s", "total": "30s"}))
    c = client(polyroute.http_client(router))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        c.with_options(timeout=0.5).chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 5, "the SDK's 0.5 s, not the route's 30 s"


def test_retries_on_top_of_the_router_warn_once(server: MockServer, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_httpx, "_warned_retry", False)
    server.script(name, {"then": {"status": 503}})
    router = polyroute.Router(policy(server, [name], retry=ONE_SHOT))
    c = openai.OpenAI(api_key=FAKE_KEY, max_retries=1, http_client=polyroute.http_client(router))
    with pytest.warns(polyroute.RetryOnTopWarning, match="max_retries=0"):
        with pytest.raises(openai.InternalServerError):
            c.with_options(timeout=5).chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
    assert len(server.log(name)) == 2  # the SDK's retry reached the router again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
    # max_retries=0: no retry, no warning.
    monkeypatch.setattr(_httpx, "_warned_retry", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(openai.InternalServerError):
            client(polyroute.http_client(router)).chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]


def test_the_library_follows_the_installed_openai_and_can_be_chosen(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    assert isinstance(polyroute.http_client(router), httpx2.Client)  # openai 3.x speaks httpx2
    import httpx

    legacy = polyroute.http_client(router, library="httpx")
    assert isinstance(legacy, httpx.Client)
    r = legacy.post("/chat/completions", json={"model": "chat", "messages": USER})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: hello mock"
    with pytest.raises(ValueError):
        polyroute.http_client(router, library="requests")



def test_without_httpx_the_import_error_says_what_to_install(server: MockServer, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    router = polyroute.Router(policy(server, [name]))

    def missing(module: str) -> Any:
        raise ImportError(f"No module named {module!r}")

    monkeypatch.setattr(_httpx.importlib, "import_module", missing)
    with pytest.raises(ImportError, match="pip install httpx"):
        polyroute.http_client(router)


def test_closing_a_stream_early_cancels_the_request(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "a b c d e f g h", "chunk_delay_ms": 200}})
    router = polyroute.Router(policy(server, [name]))
    stream = client(polyroute.http_client(router)).chat.completions.create(model="chat", messages=USER, stream=True)  # type: ignore[arg-type]
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    body: Any = stream.response.stream
    sse = getattr(body, "_stream", body)._sse  # httpx wraps the transport's stream
    stream.close()
    assert sse.closed


def test_a_sync_stream_is_read_by_the_calling_thread_and_a_whole_answer_on_the_blocking_client(server: MockServer, name: str) -> None:
    from polyroute import _native

    server.script(name, {"then": {"text": "a b c", "chunk_delay_ms": 20}})
    c = client(polyroute.http_client(polyroute.Router(policy(server, [name]))))
    before = _native._requests_by_path()
    chunks = c.chat.completions.create(model="chat", messages=USER, stream=True)  # type: ignore[arg-type]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "a b c"
    # Opened and read driven by this thread (each chunk wakes only it), not on the runtime.
    streamed = _native._requests_by_path()
    assert tuple(a - b for a, b in zip(streamed, before)) == (0, 0, 1)
    assert c.chat.completions.create(model="chat", messages=USER).choices[0].message.content == "a b c"  # type: ignore[arg-type]
    assert tuple(a - b for a, b in zip(_native._requests_by_path(), streamed)) == (1, 0, 0)
