"""Failover, retries, breakers, plans and reloads, seen from Python over real HTTP. The mock
server's log is the ground truth for how many attempts reached each deployment."""

from __future__ import annotations

import polyroute
import pytest
from conftest import USER, MockServer, policy


def test_failover_to_the_fallback_tier(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"status": 503}})
    server.script(backup, {"then": {"text": "from backup"}})
    router = polyroute.Router(policy(server, [primary], [backup], retry={"attempts_per_deployment": 2}))
    resp = router.chat(USER)
    assert resp.content == "from backup"
    assert resp.model == backup and resp.provider == "mock" and resp.deployment == backup
    assert resp.trace is not None
    assert [(a.deployment, a.outcome) for a in resp.trace.attempts] == [
        (primary, "overloaded"),
        (primary, "overloaded"),
        (backup, "ok"),
    ]
    assert backup in resp.explain() and primary in resp.explain()
    assert len(server.log(primary)) == 2 and len(server.log(backup)) == 1


def test_retries_honour_retry_after(server: MockServer, name: str) -> None:
    server.script(
        name,
        {
            "steps": [
                {"status": 429, "error_code": "rate_limit_exceeded", "retry_after_ms": 300},
                {"status": 500},
            ],
            "then": {"text": "third time lucky"},
        },
    )
    router = polyroute.Router(policy(server, [name], retry={"attempts_per_deployment": 3}))
    resp = router.chat(USER)
    assert resp.content == "third time lucky"
    log = server.log(name)
    assert [e["outcome"] for e in log] == ["status:429", "status:500", "ok"]
    # The router waited out the provider's hint before the second attempt.
    assert log[1]["received_ms"] - log[0]["finished_ms"] >= 290
    assert resp.trace is not None
    outcomes = [a.outcome for a in resp.trace.attempts]
    assert outcomes == ["rate_limited", "server_error", "ok"]
    assert resp.trace.attempts[1].backoff_ms >= 290


def test_caller_errors_are_not_retried_or_failed_over(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"status": 400, "error_message": "bad"}})
    router = polyroute.Router(policy(server, [primary], [backup], retry={"attempts_per_deployment": 3}))
    with pytest.raises(polyroute.InvalidRequestError):
        router.chat(USER)
    assert len(server.log(primary)) == 1 and server.log(backup) == []


def test_breaker_opens_skips_and_resets(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"status": 500}})
    router = polyroute.Router(
        policy(server, [primary], [backup], breaker={"consecutive_failures": 2, "open_for": "60s", "min_calls": 100})
    )
    assert router.breaker(primary).breaker.state == "closed"
    for _ in range(2):
        assert router.chat(USER).deployment == backup
    assert len(server.log(primary)) == 2
    snap = router.breaker(primary).breaker
    assert snap.state == "open" and snap.trips == 1 and snap.last_error == "server_error"
    assert snap.retry_in_ms is not None and snap.retry_in_ms > 50_000

    # Open: the primary costs no round trip any more, and the trace says why.
    resp = router.chat(USER)
    assert resp.deployment == backup
    assert len(server.log(primary)) == 2
    assert resp.trace is not None
    assert any("breaker" in (c.skipped or "") for c in resp.trace.candidates) or any("breaker" in n for n in resp.trace.notes)
    plan = router.plan(USER)
    assert plan.order == [backup]

    router.reset_breaker(primary)
    assert router.breaker(primary).breaker.state == "closed"
    router.chat(USER)
    assert len(server.log(primary)) == 3

    router.set_breaker(primary, "forced_open")
    assert router.breaker(primary).breaker.state == "forced_open"
    assert router.chat(USER).deployment == backup
    assert len(server.log(primary)) == 3
    router.set_breaker(primary, "closed")

    statuses = {d.deployment: d for d in router.deployments()}
    assert set(statuses) == {primary, backup}
    assert statuses[backup].breaker.state == "closed" and statuses[backup].success_rate == 1.0
    with pytest.raises(KeyError):
        router.breaker("nope")


def test_plan_sends_nothing(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    router = polyroute.Router(policy(server, [primary], [backup]))
    plan = router.plan(USER, polyroute={"tenant": "acme"})
    assert plan.route == "chat" and plan.strategy == "priority"
    assert plan.order == [primary, backup]
    assert [c.deployment for c in plan.candidates] == [primary, backup]
    assert primary in plan.explain()
    assert server.log(primary) == [] and server.log(backup) == []


def test_route_by_name_and_routing_matching(server: MockServer, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    p = policy(server, [a])
    p["deployments"][b] = {"provider": "mock", "model": b}
    server.script(b, {})
    p["routes"].insert(0, {"name": "support", "match": {"feature": ["support"]}, "deployments": [b]})
    p["routes"].append({"name": "named", "deployments": [b]})
    router = polyroute.Router(p)
    assert router.chat(USER).deployment == a
    assert router.chat(USER, polyroute={"feature": "support"}).deployment == b
    assert router.chat(USER, extra_body={"polyroute": {"feature": "support"}}).deployment == b
    resp = router.chat(USER, route="named")
    assert resp.deployment == b and resp.trace is not None and resp.trace.route == "named"
    # Routing data never reaches the provider.
    assert all("polyroute" not in e["body"] and "route" not in e["body"] for e in server.log(b))


def test_metadata_is_openais_and_is_forwarded_not_routed_on(server: MockServer, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    p = policy(server, [a])
    p["deployments"][b] = {"provider": "mock", "model": b}
    server.script(b, {})
    p["routes"].insert(0, {"name": "support", "match": {"feature": ["support"]}, "deployments": [b]})
    router = polyroute.Router(p)
    # What used to be routing metadata is OpenAI's `metadata` now: it matches no route ...
    resp = router.chat(USER, metadata={"feature": "support"})
    assert resp.deployment == a
    # ... and reaches the provider as OpenAI's parameter, beside (not mixed with) routing.
    router.chat(USER, metadata={"session": "s1"}, polyroute={"feature": "support"})
    assert server.log(a)[-1]["body"]["metadata"] == {"feature": "support"}
    assert server.log(b)[-1]["body"]["metadata"] == {"session": "s1"}
    assert router.plan(USER, metadata={"feature": "support"}).route == "chat"


def test_reload_swaps_atomically_and_rejects_bad_policies(server: MockServer, name: str, tmp_path: object) -> None:
    a, b = f"{name}-a", f"{name}-b"
    router = polyroute.Router(policy(server, [a]))
    assert router.chat(USER).deployment == a
    router.reload(policy(server, [b]))
    assert router.chat(USER).deployment == b
    with pytest.raises(polyroute.ConfigError):
        router.reload({"routes": [{"name": "x", "deployments": ["ghost"]}]})
    # The old policy keeps serving.
    assert router.chat(USER).deployment == b
    assert router.policy["routes"][0]["deployments"] == [b]


def test_policy_sources(server: MockServer, name: str, tmp_path: "pytest.TempPathFactory") -> None:
    import json
    import pathlib

    p = policy(server, [name])
    text = json.dumps(p)
    path = pathlib.Path(str(tmp_path)) / "policy.json"
    path.write_text(text)
    for router in (
        polyroute.Router(p),
        polyroute.Router(str(path)),
        polyroute.Router(path),
        polyroute.Router.from_file(path),
        polyroute.Router.from_text(text),
        polyroute.Router.from_dict(p),
        polyroute.AsyncRouter(path),
    ):
        assert router.policy["default_route"] == "chat"
    yaml_path = pathlib.Path(str(tmp_path)) / "policy.yaml"
    yaml_path.write_text(
        "providers:\n"
        f"  mock: {{kind: openai, base_url: '{server.base_url}', api_key: sk-test-not-a-real-key}}\n"
        f"deployments:\n  d: {{provider: mock, model: {name}}}\n"
        "routes:\n  - {name: chat, deployments: [d]}\n"
        "default_route: chat\n"
    )
    router = polyroute.Router(str(yaml_path))
    assert router.chat(USER).deployment == "d"
    router.reload(yaml_path)
    with pytest.raises(TypeError):
        polyroute.Router(42)  # type: ignore[arg-type]


def test_a_policy_string_is_a_path_and_text_is_explicit(server: MockServer, name: str) -> None:
    import json

    text = json.dumps(policy(server, [name]))
    # No guessing: a string given to the constructor (or to reload) is always a file name.
    with pytest.raises(polyroute.ConfigError, match="cannot read policy file"):
        polyroute.Router(text)
    with pytest.raises(polyroute.ConfigError, match="cannot read policy file"):
        polyroute.AsyncRouter(text)
    for router in (polyroute.Router.from_text(text), polyroute.AsyncRouter.from_text(text)):
        with pytest.raises(polyroute.ConfigError, match="cannot read policy file"):
            router.reload(text)
        router.reload_text(text)
        assert router.policy["default_route"] == "chat"


def test_keyword_arguments_are_the_cores_request_fields() -> None:
    from polyroute import _native

    typed = set(polyroute.ChatParams.__annotations__)
    assert typed == (set(_native.REQUEST_FIELDS) - {"messages", "stream"}) | {"extra_body", "timeout"}


def test_literal_api_keys_never_come_back(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    assert "sk-test-not-a-real-key" not in repr(router.policy)
    router.chat(USER)
    log = server.log(name)
    assert log[-1]["auth_present"] is True


def test_response_cache_marks_the_trace(server: MockServer, name: str) -> None:
    server.script(name, {"steps": [{"text": "first"}], "then": {"text": "second"}})
    router = polyroute.Router(policy(server, [name], route={"cache": {"mode": "read_write", "ttl": "1m"}}))
    stored = router.chat(USER)
    assert stored.content == "first" and stored.trace is not None and stored.trace.cache == "stored"
    hit = router.chat(USER)
    assert hit.content == "first" and hit.trace is not None
    assert (hit.trace.cache, hit.trace.served_by, hit.cost_usd) == ("hit", None, 0.0)
    assert len(server.log(name)) == 1
    other = polyroute.Router(policy(server, [name]))
    resp = other.chat(USER)
    assert resp.trace is not None and resp.trace.cache is None
