"""Streaming from Python: events, invisible failover before the first content, typed
interruption after it, restart mode, tool-call deltas, and early close cancelling the
request."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import polyroute
import pytest
from conftest import USER, MockServer, policy


def wait_for_disconnect(server: MockServer, name: str, timeout: float = 5.0) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        log = server.log(name)
        if log and log[-1]["finished_ms"] is not None:
            return log[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"server never saw the client leave: {log}")
        time.sleep(0.02)


def test_events_in_order_and_trace_after_end(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "one two three"}})
    router = polyroute.Router(policy(server, [name]))
    stream = router.stream(USER)
    assert stream.trace is None
    events = list(stream)
    assert [e.type for e in events] == ["start", "content_delta", "content_delta", "content_delta", "finish", "usage"]
    assert "".join(e.text or "" for e in events if e.type == "content_delta") == "one two three"
    assert events[0].model == name
    assert events[4].finish_reason == "stop"
    usage = events[5].usage
    assert usage is not None and usage.prompt_tokens == 2 and usage.completion_tokens == 3
    assert events[1].to_dict() == {"type": "content_delta", "text": "one"}
    assert stream.closed
    trace = stream.trace
    assert trace is not None and trace.served_by == name and trace.attempts[0].outcome == "ok"
    # Iterating an ended stream just ends again.
    assert list(stream) == []


def test_chat_with_stream_true_returns_a_stream(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    with router.chat(USER, stream=True) as stream:
        assert isinstance(stream, polyroute.Stream)
        text = "".join(e.text or "" for e in stream if e.type == "content_delta")
    assert text == "echo: hello mock"
    assert server.log(name)[0]["stream"] is True


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"fault": {"cut_after": {"chunks": 0}}},
        {"fault": {"inband_error": {"after_chunks": 0, "code": "server_error"}}},
        {"fault": "drop"},
    ],
    ids=["http-500", "cut-before-content", "inband-error-before-content", "drop"],
)
def test_failover_before_first_content_is_invisible(server: MockServer, name: str, failure: Dict[str, Any]) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": failure})
    server.script(backup, {"then": {"text": "backup speaking"}})
    router = polyroute.Router(policy(server, [primary], [backup]))
    stream = router.stream(USER)
    events = list(stream)
    assert [e.type for e in events if e.type in ("reset", "content_delta")] == ["content_delta"] * 2
    assert "".join(e.text or "" for e in events if e.type == "content_delta") == "backup speaking"
    trace = stream.trace
    assert trace is not None
    assert [a.deployment for a in trace.attempts] == [primary, backup]
    assert trace.attempts[0].outcome != "ok" and trace.served_by == backup


def test_interruption_after_content_is_typed_with_trace(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"text": "a b c d e f", "fault": {"cut_after": {"chunks": 3}}}})
    router = polyroute.Router(policy(server, [primary], [backup]))
    stream = router.stream(USER)
    got: List[str] = []
    with pytest.raises(polyroute.StreamInterruptedError) as info:
        for ev in stream:
            if ev.type == "content_delta":
                got.append(ev.text or "")
    e = info.value
    assert "".join(got) == "a b c"
    assert e.partial is not None and e.partial.text == "a b c"
    assert e.trace is not None and e.trace.attempts[-1].outcome == "stream_interrupted"
    # The backup was not silently used to finish somebody else's sentence.
    assert server.log(backup) == []
    assert stream.closed and stream.trace is not None


def test_restart_mode_resets_and_streams_again(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"text": "a b c d", "fault": {"cut_after": {"chunks": 2}}}})
    server.script(backup, {"then": {"text": "whole answer"}})
    router = polyroute.Router(policy(server, [primary], [backup], route={"stream_recovery": "restart"}))
    events = list(router.stream(USER))
    types = [e.type for e in events]
    assert "reset" in types
    after = events[types.index("reset") + 1 :]
    assert "".join(e.text or "" for e in after if e.type == "content_delta") == "whole answer"
    reset = events[types.index("reset")]
    assert reset.reason and primary in reset.reason


def test_tool_call_deltas_and_complete_tool_calls(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}]}})
    router = polyroute.Router(policy(server, [name]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    events = list(router.stream(USER, tools=tools))
    deltas = [e for e in events if e.type == "tool_call_delta"]
    assert deltas[0].name == "get_weather" and deltas[0].id == "call_1" and deltas[0].index == 0
    assert "".join(d.arguments or "" for d in deltas) == '{"city": "Paris"}'
    assert [e.finish_reason for e in events if e.type == "finish"] == ["tool_calls"]

    resp = router.chat(USER, tools=tools, tool_choice="auto")
    assert resp.finish_reason == "tool_calls" and resp.content == ""
    call = resp.tool_calls[0]
    assert (call.id, call.type, call.function.name, call.arguments) == ("call_1", "function", "get_weather", '{"city": "Paris"}')
    assert resp.to_dict()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_closing_early_cancels_the_request(server: MockServer, name: str) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    server.script(name, {"then": {"text": words, "chunk_delay_ms": 100}})
    router = polyroute.Router(policy(server, [name], timeouts={"idle": "5s", "total": "30s"}))
    started = time.monotonic()
    with router.stream(USER) as stream:
        for ev in stream:
            if ev.type == "content_delta":
                break
    assert stream.closed
    entry = wait_for_disconnect(server, name)
    assert entry["client_disconnected"] is True
    # Far sooner than the 10 s the whole answer would take.
    assert time.monotonic() - started < 3


class CountingReads:
    """Stands in for a stream's native object and counts the reads that cross into the core."""

    def __init__(self, native: Any) -> None:
        self.native, self.reads = native, 0

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.native, attr)
        if attr.startswith("next"):
            self.reads += 1
        return value


def test_a_burst_crosses_in_few_reads_in_order_and_close_drops_what_had_arrived(server: MockServer, name: str) -> None:
    import asyncio

    words = [f"w{i}" for i in range(200)]
    server.script(name, {"then": {"text": " ".join(words)}})
    router = polyroute.Router(policy(server, [name]))
    arouter = polyroute.AsyncRouter(policy(server, [name]))

    def counted(stream: Any) -> CountingReads:
        stream._native = CountingReads(stream._native)
        return stream._native

    stream = router.stream(USER)
    c = counted(stream)
    assert [e.text for e in stream if e.type == "content_delta"] == [words[0]] + [" " + w for w in words[1:]]
    assert c.reads < 40, f"{c.reads} reads for a 200-chunk burst"
    stream = router.stream(USER)
    c = counted(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in stream.chunks() if ch.choices) == " ".join(words)
    assert c.reads < 40

    async def read_async() -> None:
        s = await arouter.stream(USER)
        c = counted(s)
        assert "".join([e.text or "" async for e in s if e.type == "content_delta"]) == " ".join(words)
        assert c.reads < 40, f"{c.reads} reads"
        s = await arouter.stream(USER)
        c = counted(s)
        assert "".join([ch.choices[0].delta.content or "" async for ch in s.chunks() if ch.choices]) == " ".join(words)
        assert c.reads < 40

    asyncio.run(read_async())

    # Closed after its first content: what had already arrived is not handed out.
    stream = router.stream(USER)
    first = next(e for e in stream if e.type == "content_delta")
    assert first.text == "w0"
    stream.close()
    assert list(stream) == []
