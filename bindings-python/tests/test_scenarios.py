"""Python runner for the language-neutral scenarios in tests/scenarios/*.json.

The Rust, Python, Node and Swift runners replay the same files; a difference between
languages is a bug in a binding. This runner drives the public Python API (``Router``,
``chat``, ``stream``, ``deployments``, ``set_breaker``), turns every result into the JSON the
binding hands out (``to_dict()`` of responses, errors, stream events and traces) and checks
it with the rules of tests/scenarios/README.md, the same rules as core/tests/all/scenarios.rs
(``cargo test -p polyroute --test all scenarios::``).

It starts its own mock server (scenarios reset it, which must not disturb other tests) and
runs one pytest test per scenario. ``POLYROUTE_SCENARIO=<substring>`` selects scenarios.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import polyroute
from conftest import REPO, MockServer

SCENARIO_DIR = Path(os.environ.get("POLYROUTE_SCENARIO_DIR", REPO / "tests" / "scenarios"))
FILTER = os.environ.get("POLYROUTE_SCENARIO", "")
SCENARIOS = sorted(p for p in SCENARIO_DIR.glob("*.json") if not p.name.endswith(".schema.json") and FILTER in p.stem)

# Keys each part of a scenario may have: anything else is a typo that would check nothing.
STEP_KEYS = {"chat", "stream", "sleep_ms", "set_breaker", "scripts", "repeat", "expect", "note"}
EXPECT_KEYS = {
    "outcome", "content", "content_prefix", "model", "served_by", "served_by_one_of", "attempts", "attempt_count",
    "status", "provider_code", "partial_text", "partial_text_prefix", "finished", "resets", "elapsed_ms", "cost_usd",
    "usage", "tool_calls", "budget", "retry_after_s", "trace", "served_by_counts", "server_hits", "gaps_ms",
    "server_outcomes", "server_saw", "server_never_saw", "breakers",
}
TRACE_KEYS = {"route", "matched_contains", "strategy", "degraded", "notes_contain", "explanation_contains", "skipped", "backoff_ms", "hedge"}

Json = Any


@pytest.fixture(scope="module")
def scenario_server() -> Iterator[MockServer]:
    s = MockServer()
    yield s
    s.close()


def control(server: MockServer, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def install(server: MockServer, scripts: Dict[str, Any]) -> None:
    for name, script in scripts.items():
        control(server, "PUT", "/_mock/scripts/" + urllib.parse.quote(name, safe=""), script)


def log_for(server: MockServer, script: str) -> List[Dict[str, Any]]:
    entries: List[Dict[str, Any]] = control(server, "GET", "/_mock/log?script=" + urllib.parse.quote(script, safe=""))
    return entries


# --------------------------------------------------------------------------- running requests


class Outcome:
    """One request's result as JSON: response, error, stream events and trace."""

    def __init__(self, response: Optional[Json], error: Optional[Json], events: Optional[List[Json]], trace: Json, elapsed_ms: float) -> None:
        self.response, self.error, self.events, self.trace, self.elapsed_ms = response, error, events, trace or {}, elapsed_ms

    def kind(self) -> str:
        return str(self.error.get("kind", "?")) if self.error is not None else "ok"

    def content(self) -> Optional[str]:
        if self.events is not None:
            resets = [i for i, e in enumerate(self.events) if e.get("type") == "reset"]
            start = resets[-1] + 1 if resets else 0
            return "".join(e.get("text", "") for e in self.events[start:] if e.get("type") == "content_delta")
        if self.response is None:
            return None
        choices = self.response.get("choices") or [{}]
        c = (choices[0].get("message") or {}).get("content")
        return c if isinstance(c, str) else None

    def model(self) -> Optional[str]:
        if self.events is not None:
            starts = [e for e in self.events if e.get("type") == "start"]
            return starts[-1].get("model") if starts else None
        return self.response.get("model") if self.response is not None else None

    def usage(self) -> Json:
        if self.events is not None:
            us = [e for e in self.events if e.get("type") == "usage"]
            return us[-1].get("usage") if us else None
        return self.response.get("usage") if self.response is not None else None

    def tool_call_names(self) -> List[str]:
        if self.events is not None:
            return [e["name"] for e in self.events if e.get("type") == "tool_call_delta" and isinstance(e.get("name"), str)]
        if self.response is None:
            return []
        msg = ((self.response.get("choices") or [{}])[0].get("message") or {})
        return [t["function"]["name"] for t in msg.get("tool_calls") or []]


def call_args(body: Dict[str, Any]) -> Tuple[List[Any], Dict[str, Any]]:
    rest = {k: v for k, v in body.items() if k != "messages"}
    return list(body.get("messages", [])), {"extra_body": rest} if rest else {}


def run_chat(router: polyroute.Router, body: Dict[str, Any]) -> Outcome:
    messages, kw = call_args(body)
    t0 = time.perf_counter()
    try:
        resp = router.chat(messages, **kw)
    except polyroute.PolyrouteError as e:
        err = e.to_dict()
        return Outcome(None, err, None, err.get("trace"), (time.perf_counter() - t0) * 1000)
    d = resp.to_dict()
    return Outcome(d, None, None, d.get("trace"), (time.perf_counter() - t0) * 1000)


def run_stream(router: polyroute.Router, body: Dict[str, Any]) -> Outcome:
    messages, kw = call_args(body)
    t0 = time.perf_counter()
    try:
        s = router.stream(messages, **kw)
    except polyroute.PolyrouteError as e:
        err = e.to_dict()
        return Outcome(None, err, [], err.get("trace"), (time.perf_counter() - t0) * 1000)
    events: List[Json] = []
    error: Optional[Json] = None
    with s:
        try:
            for ev in s:
                events.append(ev.to_dict())
        except polyroute.PolyrouteError as e:
            error = e.to_dict()
        elapsed = (time.perf_counter() - t0) * 1000
        trace = error.get("trace") if error is not None and error.get("trace") else (s.trace.to_dict() if s.trace is not None else {})
    return Outcome(None, error, events, trace, elapsed)


# --------------------------------------------------------------------------- comparison


def in_range(r: Dict[str, Any], v: float) -> bool:
    return ("min" not in r or v >= r["min"]) and ("max" not in r or v <= r["max"])


def count_ok(c: Any, n: int) -> bool:
    return n == c if isinstance(c, int) else c[0] <= n <= c[1]


def check_result(exp: Dict[str, Any], o: Outcome, errs: List[str]) -> None:
    def bad(what: str, want: Any, got: Any) -> None:
        errs.append(f"{what}: expected {want!r}, got {got!r}")

    if "outcome" in exp and o.kind() != exp["outcome"]:
        bad("outcome", exp["outcome"], f"{o.kind()} ({(o.error or {}).get('message', '')})")
    if "content" in exp and o.content() != exp["content"]:
        bad("content", exp["content"], o.content())
    if "content_prefix" in exp and not (o.content() or "").startswith(exp["content_prefix"]):
        bad("content_prefix", exp["content_prefix"], o.content())
    if "model" in exp and o.model() != exp["model"]:
        bad("model", exp["model"], o.model())
    served = o.trace.get("served_by")
    if "served_by" in exp and served != exp["served_by"]:
        bad("served_by", exp["served_by"], served)
    if "served_by_one_of" in exp and served not in exp["served_by_one_of"]:
        bad("served_by_one_of", exp["served_by_one_of"], served)
    attempts = [[a.get("deployment"), a.get("outcome")] for a in o.trace.get("attempts") or []]
    if "attempts" in exp and attempts != exp["attempts"]:
        bad("attempts", exp["attempts"], attempts)
    if "attempt_count" in exp and not count_ok(exp["attempt_count"], len(attempts)):
        bad("attempt_count", exp["attempt_count"], len(attempts))
    e = o.error or {}
    if "status" in exp and e.get("status") != exp["status"]:
        bad("status", exp["status"], e.get("status"))
    if "provider_code" in exp and e.get("provider_code") != exp["provider_code"]:
        bad("provider_code", exp["provider_code"], e.get("provider_code"))
    partial = (e.get("partial") or {}).get("text")
    if "partial_text" in exp and partial != exp["partial_text"]:
        bad("partial_text", exp["partial_text"], partial)
    if "partial_text_prefix" in exp and not (isinstance(partial, str) and partial.startswith(exp["partial_text_prefix"])):
        bad("partial_text_prefix", exp["partial_text_prefix"], partial)
    if "finished" in exp:
        got = any(ev.get("type") == "finish" for ev in o.events or [])
        if got != exp["finished"]:
            bad("finished", exp["finished"], got)
    if "resets" in exp:
        got_n = sum(1 for ev in o.events or [] if ev.get("type") == "reset")
        if got_n != exp["resets"]:
            bad("resets", exp["resets"], got_n)
    if "elapsed_ms" in exp and not in_range(exp["elapsed_ms"], o.elapsed_ms):
        bad("elapsed_ms", exp["elapsed_ms"], round(o.elapsed_ms, 1))
    if "cost_usd" in exp:
        got_c = o.trace.get("total_cost_usd")
        want = exp["cost_usd"]
        if want is None:
            if got_c is not None:
                bad("cost_usd", None, got_c)
        elif not (isinstance(got_c, (int, float)) and abs(got_c - want["approx"]) <= want.get("tol", 1e-9)):
            bad("cost_usd", want, got_c)
    if "usage" in exp:
        u = o.usage() or {}
        for k, v in exp["usage"].items():
            if u.get(k) != v:
                bad(f"usage.{k}", v, u.get(k))
    if "tool_calls" in exp and o.tool_call_names() != exp["tool_calls"]:
        bad("tool_calls", exp["tool_calls"], o.tool_call_names())
    if "budget" in exp and (e.get("budget") or {}).get("budget") != exp["budget"]:
        bad("budget", exp["budget"], e.get("budget"))
    if "retry_after_s" in exp:
        ra = e.get("retry_after")
        if not (isinstance(ra, (int, float)) and in_range(exp["retry_after_s"], ra)):
            bad("retry_after_s", exp["retry_after_s"], ra)
    if "trace" in exp:
        check_trace(exp["trace"], o.trace, errs)


def check_trace(t: Dict[str, Any], tr: Dict[str, Any], errs: List[str]) -> None:
    def bad(what: str, want: Any, got: Any) -> None:
        errs.append(f"trace.{what}: expected {want!r}, got {got!r}")

    unknown = set(t) - TRACE_KEYS
    if unknown:
        errs.append(f"unknown trace expectation keys {sorted(unknown)}")
    for key in ("route", "strategy"):
        if key in t and tr.get(key) != t[key]:
            bad(key, t[key], tr.get(key))
    if "matched_contains" in t and t["matched_contains"] not in (tr.get("matched") or ""):
        bad("matched_contains", t["matched_contains"], tr.get("matched"))
    if "degraded" in t and bool(tr.get("degraded", False)) != t["degraded"]:
        bad("degraded", t["degraded"], tr.get("degraded", False))
    notes = tr.get("notes") or []
    for n in t.get("notes_contain", []):
        if not any(n in x for x in notes):
            bad("notes_contain", n, notes)
    for n in t.get("explanation_contains", []):
        if n not in (tr.get("explanation") or ""):
            bad("explanation_contains", n, tr.get("explanation"))
    cands = {c.get("deployment"): c for c in tr.get("candidates") or []}
    for dep, want in t.get("skipped", {}).items():
        if dep not in cands:
            bad("skipped", f"candidate {dep}", "no such candidate")
            continue
        got = cands[dep].get("skipped")
        if not ((want is None and got is None) or (want is not None and got is not None and want in got)):
            bad(f"skipped.{dep}", want, got)
    attempts = tr.get("attempts") or []
    for i, r in enumerate(t.get("backoff_ms", [])):
        if r is None:
            continue
        got_b = attempts[i].get("backoff_ms") if i < len(attempts) else None
        if not (isinstance(got_b, (int, float)) and in_range(r, got_b)):
            bad(f"backoff_ms[{i}]", r, got_b)
    for i, w in enumerate(t.get("hedge", [])):
        got_h = bool(attempts[i].get("hedge", False)) if i < len(attempts) else None
        if got_h != w:
            bad(f"hedge[{i}]", w, got_h)


def body_strings(v: Any, out: List[str]) -> None:
    """Every string in a request body (compared as text, whatever the JSON writer escaped)."""
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, list):
        for x in v:
            body_strings(x, out)
    elif isinstance(v, dict):
        for x in v.values():
            body_strings(x, out)


def check_state(exp: Dict[str, Any], server: MockServer, router: polyroute.Router, errs: List[str]) -> None:
    for script, c in (exp.get("server_hits") or {}).items():
        n = len(log_for(server, script))
        if not count_ok(c, n):
            errs.append(f"server_hits.{script}: expected {c!r}, got {n}")
    for script, ranges in (exp.get("gaps_ms") or {}).items():
        log = log_for(server, script)
        gaps = [b["received_ms"] - a["received_ms"] for a, b in zip(log, log[1:])]
        if len(gaps) != len(ranges) or not all(in_range(r, g) for r, g in zip(ranges, gaps)):
            errs.append(f"gaps_ms.{script}: expected {ranges!r}, got {gaps!r}")
    for script, want in (exp.get("server_outcomes") or {}).items():
        got = [e["outcome"] for e in log_for(server, script)]
        if got != want:
            errs.append(f"server_outcomes.{script}: expected {want!r}, got {got!r}")
    for key, want in (("server_saw", True), ("server_never_saw", False)):
        for script, needles in (exp.get(key) or {}).items():
            strings: List[str] = []
            for e in log_for(server, script):
                body_strings(e.get("body"), strings)
            for n in needles:
                if any(n in s for s in strings) != want:
                    errs.append(f"{key}.{script}: {n!r} {'is not in' if want else 'is in'} the request bodies")
    if exp.get("breakers"):
        states = {d.to_dict()["deployment"]: d.to_dict()["breaker"]["state"] for d in router.deployments()}
        for dep, want_s in exp["breakers"].items():
            if states.get(dep) != want_s:
                errs.append(f"breakers.{dep}: expected {want_s}, got {states.get(dep)}")


def run_scenario(sc: Dict[str, Any], server: MockServer) -> List[str]:
    errs: List[str] = []
    control(server, "POST", "/_mock/reset")
    install(server, sc.get("scripts") or {})
    text = json.dumps(sc["policy"]).replace("$MOCK_ROOT", server.url).replace("$MOCK", server.base_url)
    try:
        router = polyroute.Router.from_text(text)
    except polyroute.PolyrouteError as e:
        return [f"policy rejected: {e}"]
    for i, step in enumerate(sc["steps"]):
        step_errs: List[str] = []
        unknown = set(step) - STEP_KEYS
        exp: Dict[str, Any] = step.get("expect") or {}
        unknown |= set(exp) - EXPECT_KEYS
        if unknown:
            errs.append(f"step {i}: unknown keys {sorted(unknown)}")
            continue
        if "sleep_ms" in step:
            time.sleep(step["sleep_ms"] / 1000)
        if "set_breaker" in step:
            sb = step["set_breaker"]
            router.set_breaker(sb["deployment"], sb["state"])
        if "scripts" in step:
            install(server, step["scripts"])
        body = step.get("chat", step.get("stream"))
        if body is not None:
            served: Dict[str, int] = {}
            for rep in range(step.get("repeat", 1)):
                o = run_stream(router, body) if "stream" in step else run_chat(router, body)
                key = o.trace.get("served_by") or "null"
                served[key] = served.get(key, 0) + 1
                e: List[str] = []
                check_result(exp, o, e)
                if e:
                    step_errs += [f"repetition {rep}: {m}" for m in e]
                    step_errs.append(f"repetition {rep}: trace was {json.dumps(o.trace)}")
                    break
            for dep, c in (exp.get("served_by_counts") or {}).items():
                if not count_ok(c, served.get(dep, 0)):
                    step_errs.append(f"served_by_counts.{dep}: expected {c!r}, got {served.get(dep, 0)} (all: {served})")
        check_state(exp, server, router, step_errs)
        errs += [f"step {i}: {m}" for m in step_errs]
    return errs


def test_scenarios_were_found() -> None:
    assert FILTER or os.environ.get("POLYROUTE_SCENARIO_DIR") or len(SCENARIOS) >= 40, f"found {len(SCENARIOS)} scenarios in {SCENARIO_DIR}"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, scenario_server: MockServer) -> None:
    sc = json.loads(path.read_text(encoding="utf-8"))
    assert sc["name"] == path.stem, "`name` must equal the file name"
    errs = run_scenario(sc, scenario_server)
    assert not errs, f"{path.stem}:\n  " + "\n  ".join(errs)
