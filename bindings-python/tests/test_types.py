"""Results read like the openai SDK's objects and serialise to the OpenAI shape; usage and
cost are the core's numbers, hand-checkable against the mock server's token counting."""

from __future__ import annotations

from typing import Any, Dict, List

import polyroute
import pytest
from conftest import USER, MockServer, policy

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def test_response_attributes_and_openai_shape(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name], pricing=PRICES))
    resp = router.chat(USER, max_tokens=50, temperature=0.2, seed=7, user="u1")
    # "hello mock" → 2 prompt tokens; "echo: hello mock" → 3 completion tokens.
    assert resp.content == "echo: hello mock"
    assert resp.choices[0].message.content == "echo: hello mock"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop" and resp.finish_reason == "stop"
    assert resp.model == name and resp.provider == "mock" and resp.object == "chat.completion"
    usage = resp.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2, 3, 5)
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens) == (2, 3, 0, 0)
    assert resp.cost_usd == pytest.approx((2 * 1.0 + 3 * 2.0) / 1e6)
    assert resp.cost == resp.cost_usd
    assert resp.tool_calls == []

    d = resp.to_dict()
    assert d["object"] == "chat.completion"
    msg = d["choices"][0]["message"]
    assert msg["role"] == "assistant" and msg["content"] == "echo: hello mock"
    assert d["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert d["provider"] == "mock" and d["trace"]["served_by"] == name
    assert isinstance(d["id"], str) and isinstance(d["created"], int)
    d["choices"].clear()  # a copy: the response is unaffected
    assert resp.content == "echo: hello mock"

    trace = resp.trace
    assert trace is not None
    assert trace.route == "chat" and trace.strategy == "priority" and trace.served_by == name
    assert trace.explain() == trace.explanation == str(trace) == resp.explain()
    assert name in trace.explain()
    (attempt,) = trace.attempts
    assert attempt.outcome == "ok" and attempt.status in (None, 200)
    assert attempt.cost_usd == pytest.approx(8e-6) and trace.total_cost_usd == pytest.approx(8e-6)
    assert attempt.latency_ms >= 0 and attempt.usage is not None and attempt.usage.total_tokens == 5

    # What reached the provider: the OpenAI body, parameters intact.
    body = server.log(name)[-1]["body"]
    assert body["max_completion_tokens"] == 50 and body["temperature"] == 0.2 and body["seed"] == 7 and body["user"] == "u1"
    assert body["messages"] == USER


def test_openai_arguments_pass_through(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    router.chat(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        stop=["\n"],
        n=1,
        presence_penalty=0.1,
        logit_bias={"50256": -100},
        response_format={"type": "json_object"},
        extra_body={"custom_field": True},
        temperature=None,
    )
    body = server.log(name)[-1]["body"]
    assert body["stop"] == ["\n"] and body["presence_penalty"] == 0.1 and body["logit_bias"] == {"50256": -100}
    assert body["response_format"] == {"type": "json_object"} and body["custom_field"] is True
    assert "temperature" not in body  # None means "not given"
    assert body["messages"][1]["content"] == [{"type": "text", "text": "hi"}]


def test_views_compare_and_repr() -> None:
    a = polyroute.Usage({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    b = polyroute.Usage({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    assert a == b and a != polyroute.Usage({}) and "prompt_tokens" in repr(a)
    empty = polyroute.ChatResponse({})
    assert empty.content == "" and empty.usage is None and empty.trace is None and empty.explain() == ""
    assert polyroute.StreamEvent({"type": "finish", "reason": "length"}).finish_reason == "length"


def test_version() -> None:
    assert polyroute.__version__.count(".") == 2


def test_results_convert_straight_to_python_objects_as_json_would() -> None:
    """Results reach Python through their serde form without a JSON value in between
    (`pyser`); what arrives must be what `json.loads` gives for the same JSON."""
    import json

    from polyroute import _native

    docs = [
        {"a": 1, "b": [1, 2.5, -3, True, False, None], "c": {"d": "é ✓", "e": {}}, "f": []},
        [0, 2**63 - 1, -(2**63), 2**64 - 1, 1e-300, 1.5e300, "", "\x00"],
        "text",
        12,
        None,
    ]
    for d in docs:
        got = _native._to_py_direct(json.dumps(d))
        assert got == d and type(got) is type(d)
    # bool stays bool, int stays int (not float), in nested positions too
    got = _native._to_py_direct('{"t": true, "i": 3, "f": 3.0}')
    assert [type(got[k]) for k in ("t", "i", "f")] == [bool, int, float]


def test_result_keys_are_shared_strings_and_any_number_of_them_converts() -> None:
    """Dict keys come from a bounded cache of shared, interned strings (pyser's `name`, issue
    18): a key is the same object in every result, while keys past the cache's bound, long
    keys and non-ASCII ones still convert exactly, and values are never shared."""
    import json
    import sys

    from polyroute import _native

    a = _native._to_py_direct('{"finish_reason": "stop", "id": "chatcmpl-1"}')
    b = _native._to_py_direct('{"finish_reason": "stop", "id": "chatcmpl-1"}')
    (ka, kb) = (next(iter(a)), next(iter(b)))
    assert ka == "finish_reason" and ka is kb and sys.intern("finish_reason") is ka
    assert a["id"] == b["id"] and a["id"] is not b["id"]
    many = {f"field_{i}": i for i in range(3000)}
    many["a" * 200] = "long"
    many["clé ✓ 😀"] = {"nested": ["x"], "a" * 41: None}
    for _ in range(2):
        got = _native._to_py_direct(json.dumps(many))
        assert got == many


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_result_dict_matches_its_json_form(server: MockServer, name: str, mode: str) -> None:
    """The chat dict (built straight from the response) equals its own JSON round trip:
    every value is a plain JSON type, none a leftover Rust shape."""
    import asyncio
    import json

    p = policy(server, [name], pricing=PRICES)
    if mode == "sync":
        r = polyroute.Router(p).chat(USER)
    else:
        r = asyncio.run(polyroute.AsyncRouter(p).chat(USER))
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["choices"][0]["message"]["content"] == "echo: hello mock"
    assert d["usage"]["prompt_tokens"] == 2 and isinstance(d["cost_usd"], float)


@pytest.mark.parametrize(
    "step, content",
    [
        ({"text": "plain"}, "plain"),
        ({"text": "ünïcödé ✓ 🚀"}, "ünïcödé ✓ 🚀"),
        ({"text": ""}, ""),
        ({"text": "", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]}, ""),
        ({"text": "checking", "tool_calls": [{"name": "f", "arguments": {}}]}, "checking"),
    ],
)
def test_content_read_natively_is_what_the_dict_says(server: MockServer, name: str, step: Dict[str, Any], content: str) -> None:
    """`content` on an answer still native (no dict built) equals `content` read from the
    dict and the dict's own message content, for text, non-ASCII, empty and tool-call answers."""
    server.script(name, {"then": step})
    router = polyroute.Router(policy(server, [name]))
    native = router.chat(USER)
    assert native.content == content and native._n is not None
    converted = router.chat(USER)
    d = converted.to_dict()
    assert converted._n is None and converted.content == content
    assert (d["choices"][0]["message"]["content"] or "") == content
    # Read natively first, the dict built after still says the same.
    assert (native.message.content or "") == content and native._n is None and native.content == content


@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
def test_trace_stays_native_until_read_and_then_is_the_same_everywhere(server: MockServer, name: str, mode: str) -> None:
    """A response stays native until something reads more than its text, and its trace until
    something reads that (issue 18): `trace`, `deployment`, `explain()`, `to_dict()`, `==`,
    `repr`, pickling and copying all see it, and each sees the same trace."""
    import asyncio
    import copy
    import pickle

    p = policy(server, [name], pricing=PRICES)

    def fresh() -> polyroute.ChatResponse:
        if mode == "sync":
            return polyroute.Router(p).chat(USER)
        if mode == "stream":
            with polyroute.Router(p).stream(USER) as s:
                return s.final_response()

        got: List[polyroute.ChatResponse] = []

        # Kept aside, not returned: `asyncio.run` formats its main task, result included,
        # when it restores the SIGINT handler, and that `repr` would read the trace.
        async def go() -> None:
            router = polyroute.AsyncRouter(p)
            if mode == "async":
                got.append(await router.chat(USER))
                return
            async with await router.stream(USER) as s:
                got.append(await s.final_response())

        asyncio.run(go())
        return got[0]

    r = fresh()
    assert type(r._n).__name__ == "NativeAnswer"  # nothing converted yet
    assert r.content == "echo: hello mock" and r._n is not None  # the text: read natively
    assert r.cost_usd is not None and r._n is None  # any other field: the dict, trace apart
    assert type(r._trace).__name__ == "NativeTrace" and "trace" not in r._d
    trace = r.trace
    assert trace is not None and trace.served_by == name and r._trace is None
    assert r.deployment == name and name in r.explain()
    d = r.to_dict()
    assert d["trace"]["served_by"] == name and d["trace"]["request_id"] == trace.request_id

    # Every other way in converts it too, each on a response that has not yet.
    readers = {
        "deployment": lambda x: x.deployment == name,
        "explain": lambda x: name in x.explain(),
        "to_dict": lambda x: x.to_dict()["trace"]["served_by"] == name,
        "repr": lambda x: "served_by" in repr(x),
        "pickle": lambda x: pickle.loads(pickle.dumps(x)).trace.served_by == name,  # type: ignore[union-attr]
        "deepcopy": lambda x: copy.deepcopy(x).to_dict()["trace"]["served_by"] == name,
        "copy": lambda x: copy.copy(x).to_dict()["trace"]["served_by"] == name,
    }
    for how, reads in readers.items():
        x = fresh()
        assert x._n is not None, how
        assert reads(x), how
        assert x.to_dict()["trace"]["served_by"] == name, how
    # Equality compares whole responses, trace included, whichever side was read first.
    a = fresh()
    b = pickle.loads(pickle.dumps(a))
    assert a == b and b == a and a._trace is None
    assert a != fresh()  # another request: another request id in its trace
