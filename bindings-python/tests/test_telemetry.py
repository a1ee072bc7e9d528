"""Event callbacks, Prometheus metrics, budgets and route costs: the core's telemetry as
Python sees it."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Dict, List

import polyroute
import pytest
from conftest import USER, MockServer, policy

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def wait_until(pred: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_event_callbacks_see_failover(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"status": 503}})
    router = polyroute.Router(policy(server, [primary], [backup]))
    events: List[Dict[str, Any]] = []
    threads: List[str] = []

    def on_event(ev: Dict[str, Any]) -> None:
        events.append(ev)
        threads.append(threading.current_thread().name)

    sub = router.subscribe(on_event)
    resp = router.chat(USER)
    wait_until(lambda: any(e["type"] == "request_finished" for e in events))
    types = [e["type"] for e in events]
    assert types[0] == "request_started"
    assert "fallback_taken" in types and types[-1] == "request_finished"
    finished = [e for e in events if e["type"] == "attempt_finished"]
    assert [(e["deployment"], e["outcome"]) for e in finished] == [(primary, "overloaded"), (backup, "ok")]
    fb = next(e for e in events if e["type"] == "fallback_taken")
    assert (fb["from"], fb["to"], fb["reason"]) == (primary, backup, "overloaded")
    done = events[-1]
    assert done["outcome"] == "ok" and done["deployment"] == backup and done["explanation"] == resp.explain()
    # Delivered off the calling thread, and never with prompt or answer text.
    assert threading.main_thread().name not in threads
    assert "hello mock" not in repr(events) and "echo:" not in repr(events)

    assert router.unsubscribe(sub) is True and router.unsubscribe(sub) is False
    n = len(events)
    router.chat(USER)
    time.sleep(0.2)
    assert len(events) == n


def test_breaker_changes_are_events(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    events: List[Dict[str, Any]] = []
    router.subscribe(events.append)
    router.set_breaker(name, "forced_open")
    router.reset_breaker(name)
    wait_until(lambda: len([e for e in events if e["type"] == "breaker_changed"]) >= 2)
    changes = [(e["deployment"], e["from"], e["to"]) for e in events if e["type"] == "breaker_changed"]
    assert changes[:2] == [(name, "closed", "forced_open"), (name, "forced_open", "closed")]


def test_a_failing_callback_is_reported_not_propagated(server: MockServer, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reported: List[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    router = polyroute.Router(policy(server, [name]))
    seen: List[str] = []

    def bad(ev: Dict[str, Any]) -> None:
        seen.append(ev["type"])
        raise RuntimeError("callback bug")

    router.subscribe(bad)
    assert router.chat(USER).content == "echo: hello mock"
    wait_until(lambda: "request_finished" in seen)
    assert reported and all(isinstance(e, RuntimeError) for e in reported)
    with pytest.raises(TypeError):
        router.subscribe(42)  # type: ignore[arg-type]


def test_metrics_text_is_prometheus(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name], pricing=PRICES))
    router.chat(USER)
    text = router.metrics_text()
    assert "# TYPE polyroute_requests_total counter" in text
    assert f'polyroute_attempts_total{{deployment="{name}",provider="mock",model="{name}",outcome="ok"}} 1' in text
    assert "polyroute_breaker_state" in text and "polyroute_cost_usd_total" in text


def test_budgets_refuse_before_sending_and_report_state(server: MockServer, name: str) -> None:
    p = policy(server, [name], pricing=PRICES)
    # Each answer costs $0.000008; a request reserves its worst case (max_tokens) first.
    p["budgets"] = [{"name": "daily", "limit_usd": 0.00012, "period": "day"}]
    router = polyroute.Router(p)
    (status,) = router.budgets()
    assert (status.budget, status.scope, status.unit, status.limit, status.spent) == ("daily", "all", "usd", 0.00012, 0.0)
    successes = 0
    with pytest.raises(polyroute.BudgetExceededError) as info:
        for _ in range(10):
            router.chat(USER, max_tokens=50)
            successes += 1
    assert successes >= 1
    assert len(server.log(name)) == successes  # the refused request was never sent
    assert info.value.kind == "budget_exceeded"
    (status,) = router.budgets()
    assert status.spent == pytest.approx(successes * 8e-6)
    assert status.remaining == pytest.approx(0.00012 - successes * 8e-6)
    assert status.reserved == 0.0 and status.resets_at > time.time()
    (cost,) = router.route_costs()
    assert cost.route == "chat" and cost.successes == successes and cost.requests == successes + 1
    assert cost.total_cost_usd == pytest.approx(successes * 8e-6)
    assert cost.cost_per_success_usd == pytest.approx(8e-6)
