"""Every error kind, produced by a real exchange with the mock server where one can produce
it, raised as its own class with its fields, and picklable."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import polyroute
import pytest
from conftest import USER, MockServer, free_port, policy
from polyroute import _native

ONE_SHOT = {"attempts_per_deployment": 1, "max_attempts": 1}


def test_one_class_per_core_kind() -> None:
    assert set(_native.ERROR_KINDS) == set(polyroute.ERROR_CLASSES)
    assert polyroute.ERROR_KINDS == _native.ERROR_KINDS
    for kind, cls in polyroute.ERROR_CLASSES.items():
        assert issubclass(cls, polyroute.PolyrouteError)
        assert cls.kind == kind
        assert polyroute.error_class(kind) is cls
    assert polyroute.error_class("some_future_kind") is polyroute.PolyrouteError
    # Natural builtin bases, so generic handlers catch them too.
    assert issubclass(polyroute.InvalidRequestError, ValueError)
    assert issubclass(polyroute.ConfigError, ValueError)
    assert issubclass(polyroute.RequestTimeoutError, TimeoutError)
    assert issubclass(polyroute.ProviderConnectionError, ConnectionError)


# kind, script step, extra chat kwargs, expected error fields (None: must be absent)
HTTP_CASES: List[Any] = [
    ("rate_limited", {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "7"},
     {}, {"status": 429, "provider_code": "rate_limit_exceeded", "retry_after": 7.0}),
    ("quota_exhausted", {"status": 429, "error_code": "insufficient_quota"},
     {}, {"status": 429, "provider_code": "insufficient_quota"}),
    ("overloaded", {"status": 503}, {}, {"status": 503}),
    ("server_error", {"status": 500}, {}, {"status": 500, "provider_code": "server_error"}),
    ("auth", {"status": 401}, {}, {"status": 401, "provider_code": "invalid_api_key"}),
    ("permission_denied", {"status": 403, "error_code": "unsupported_country_region_territory"},
     {}, {"status": 403, "provider_code": "unsupported_country_region_territory"}),
    ("content_filter", {"status": 400, "error_code": "content_filter"},
     {}, {"status": 400, "provider_code": "content_filter"}),
    ("context_length_exceeded", {"status": 400, "error_code": "context_length_exceeded"},
     {}, {"status": 400, "provider_code": "context_length_exceeded"}),
    ("invalid_request", {"status": 400, "error_message": "bad field"}, {}, {"status": 400, "message": "bad field"}),
    ("not_found", {"status": 404}, {}, {"status": 404, "provider_code": "model_not_found"}),
    ("timeout", {"fault": "hang"}, {}, {"status": None}),
    ("connection", {"fault": "drop"}, {}, {"status": None}),
    ("malformed_response", {"fault": {"malformed_after": {"chunks": 0}}}, {}, {}),
    ("invalid_output", {"text": "this is not json"},
     {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}},
     {"provider_code": "json_parse"}),
]


def check_common(e: polyroute.PolyrouteError, kind: str) -> None:
    assert type(e) is polyroute.ERROR_CLASSES[kind]
    assert isinstance(e, polyroute.PolyrouteError)
    assert e.kind == kind and e.code == kind
    assert str(e).startswith(kind)
    assert e.to_dict()["kind"] == kind
    # Pickle keeps the class and every field (process pools, multiprocessing queues).
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is type(e)
    assert back.to_dict() == e.to_dict()
    assert str(back) == str(e)
    assert back.status == e.status and back.retry_after == e.retry_after and back.model == e.model


@pytest.mark.parametrize("kind,step,kwargs,expected", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_failures_raise_their_class(
    server: MockServer, name: str, kind: str, step: Dict[str, Any], kwargs: Dict[str, Any], expected: Dict[str, Any]
) -> None:
    server.script(name, {"then": step})
    router = polyroute.Router(policy(server, [name], retry=ONE_SHOT, timeouts={"first_token": "300ms"}))
    with pytest.raises(polyroute.PolyrouteError) as info:
        router.chat(USER, **kwargs)
    e = info.value
    check_common(e, kind)
    assert e.provider == "mock"
    assert e.model == name
    for field, want in expected.items():
        assert getattr(e, field) == want, field
    if e.status is not None and e.status >= 400:
        assert e.request_id and e.request_id.startswith("req_mock")
    # The route trace says what was tried.
    assert e.trace is not None
    assert [a.deployment for a in e.trace.attempts] == [name]
    assert e.trace.attempts[0].outcome == kind
    assert len(server.log(name)) == 1


def test_stream_interrupted_carries_partial_text(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"fault": {"cut_after": {"chunks": 2}}}})
    router = polyroute.Router(policy(server, [name], retry=ONE_SHOT))
    texts: List[str] = []
    with pytest.raises(polyroute.StreamInterruptedError) as info:
        for ev in router.stream(USER):
            if ev.type == "content_delta":
                texts.append(ev.text or "")
    e = info.value
    check_common(e, "stream_interrupted")
    assert "".join(texts) == "echo: hello"
    assert e.partial is not None and e.partial.text == "echo: hello"
    assert e.provider == "mock" and e.model == name


def test_budget_exceeded(server: MockServer, name: str) -> None:
    server.script(name, {"then": {}})
    p = policy(server, [name], retry={"max_request_cost_usd": 0}, pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    with pytest.raises(polyroute.BudgetExceededError) as info:
        polyroute.Router(p).chat(USER)
    check_common(info.value, "budget_exceeded")
    assert server.log(name) == []


def test_circuit_open(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    router.set_breaker(name, "forced_open")
    with pytest.raises(polyroute.CircuitOpenError) as info:
        router.chat(USER)
    check_common(info.value, "circuit_open")
    assert server.log(name) == []


def test_no_route(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    with pytest.raises(polyroute.NoRouteError) as info:
        router.chat(USER, route="no-such-route")
    check_common(info.value, "no_route")
    assert "no-such-route" in info.value.message


def test_guard_rejected(server: MockServer, name: str) -> None:
    # A guard of the policy finds a card number: rejected before anything is sent, and the
    # error names the guard and the detector, never the matched text.
    p = policy(server, [name])
    p["guards"] = [{"name": "no-cards", "detect": ["credit_card"], "action": "reject"}]
    router = polyroute.Router(p)
    with pytest.raises(polyroute.GuardRejectedError) as info:
        router.chat([{"role": "user", "content": "pay with 4111 1111 1111 1111"}])
    e = info.value
    check_common(e, "guard_rejected")
    assert "no-cards" in e.message and "credit_card" in e.message
    assert "4111" not in e.message and "4111" not in str(e) and "4111" not in repr(e.to_dict())
    assert server.log(name) == []


def test_state_unavailable(server: MockServer, name: str) -> None:
    # A shared state store (Redis) where nothing listens, `on_error: fail_closed`, and a budget
    # that needs the store: refused with state_unavailable within the store timeout, and
    # nothing reaches the provider.
    p = policy(server, [name], retry=ONE_SHOT, pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    p["budgets"] = [{"name": "b", "limit_usd": 10, "period": "day"}]
    p["state"] = {"redis": {"url": f"redis://127.0.0.1:{free_port()}", "on_error": "fail_closed", "timeout": "50ms"}}
    router = polyroute.Router(p)
    for _ in range(2):  # the first call finds the store down, the second knows it already
        start = time.monotonic()
        with pytest.raises(polyroute.StateUnavailableError) as info:
            router.chat(USER)
        assert time.monotonic() - start < 2.0
        e = info.value
        check_common(e, "state_unavailable")
        assert "fail_closed" in e.message
    assert server.log(name) == []


def test_config_lists_every_problem() -> None:
    bad = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {"d": {"provider": "nope", "model": "m"}},
        "routes": [{"name": "r", "deployments": ["missing"]}],
    }
    with pytest.raises(polyroute.ConfigError) as info:
        polyroute.Router(bad)
    check_common(info.value, "config")
    assert "nope" in info.value.message and "missing" in info.value.message
    with pytest.raises(ValueError):
        polyroute.Router("routes: [")
    with pytest.raises(polyroute.ConfigError, match="cannot read policy file"):
        polyroute.Router("/no/such/policy.yaml")


def test_cancelled_when_stream_closed_while_a_read_waits(server: MockServer, name: str) -> None:
    # One content chunk, then silence: a reader blocks until the stream is closed under it.
    server.script(name, {"then": {"fault": {"stall_after": {"chunks": 1}}}})
    router = polyroute.Router(policy(server, [name], retry=ONE_SHOT, timeouts={"idle": "10s"}))
    stream = router.stream(USER)
    caught: List[BaseException] = []
    seen: List[str] = []

    def reader() -> None:
        try:
            for ev in stream:
                seen.append(ev.type)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            caught.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    deadline = time.monotonic() + 5
    while "content_delta" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    stream.close()
    t.join(timeout=5)
    assert not t.is_alive()
    assert len(caught) == 1
    e = caught[0]
    assert isinstance(e, polyroute.RequestCancelledError)
    check_common(e, "cancelled")
    assert stream.closed



@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda r: r.chat(USER, temprature=0.5), TypeError, "unexpected keyword argument 'temprature'"),
        (lambda r: r.chat("hello"), TypeError, "messages must be a list"),
        (lambda r: r.chat({"role": "user"}), TypeError, "messages must be a list"),
        (lambda r: r.chat(42), TypeError, "messages must be a list"),
        (lambda r: r.chat([{"role": "user", "content": {1, 2}}]), TypeError, r"messages\[0\]\.content: unsupported type set"),
        (lambda r: r.chat([{"role": "user", "content": "x", 3: "y"}]), TypeError, "dict keys must be str"),
        (lambda r: r.chat(USER, temperature=float("nan")), ValueError, "temperature: NaN is not a JSON number"),
        (lambda r: r.chat(USER, seed=2**70), ValueError, "seed: integer out of"),
        (lambda r: r.chat(USER, temperature=7), polyroute.InvalidRequestError, "temperature"),
        (lambda r: r.chat([]), polyroute.InvalidRequestError, "must not be empty"),
        (lambda r: r.chat([{"role": "wizard", "content": "x"}]), polyroute.InvalidRequestError, "messages"),
        (lambda r: r.chat(USER, max_tokens="many"), polyroute.InvalidRequestError, "max_tokens"),
        (lambda r: r.set_breaker("x", "ajar"), ValueError, "unknown breaker state"),
        (lambda r: r.reset_breaker("no-such-deployment"), polyroute.ConfigError, "unknown deployment"),
    ],
)
def test_invalid_arguments_fail_before_sending(
    server: MockServer, name: str, call: Callable[[polyroute.Router], Any], exc: type, match: str
) -> None:
    router = polyroute.Router(policy(server, [name]))
    with pytest.raises(exc, match=match):
        call(router)
    assert server.log(name) == []


def test_user_constructed_error_is_usable() -> None:
    e = polyroute.RateLimitedError("slow down", provider="openai", status=429, retry_after=2.0)
    assert e.kind == "rate_limited" and e.status == 429 and e.retry_after == 2.0 and e.trace is None
    assert str(e) == "slow down"
    back: Optional[polyroute.PolyrouteError] = pickle.loads(pickle.dumps(e))
    assert isinstance(back, polyroute.RateLimitedError) and back.provider == "openai"
