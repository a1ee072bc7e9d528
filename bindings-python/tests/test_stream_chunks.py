"""Streams read the openai SDK's way: ``chunks()`` yields ``chat.completion.chunk`` objects
with ``ChatCompletionChunk``'s attributes, and ``final_response()`` (``get_final_completion()``)
folds the stream into the same ``ChatResponse`` ``chat()`` returns. Failures keep their
meaning: invisible before the first content, ``StreamInterruptedError`` after it (from the
chunks and from the final response), ``RequestCancelledError`` for a stream closed early."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Tuple

import polyroute
import pytest
from conftest import USER, MockServer, policy

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def failing_primary(server: MockServer, name: str) -> Tuple[str, str, Dict[str, Any]]:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"status": 503}})
    server.script(backup, {"then": {"text": "backup speaking at length"}})
    return primary, backup, policy(server, [primary], [backup], pricing=PRICES)


def cut_after_content(server: MockServer, name: str) -> Dict[str, Any]:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"text": "a b c d e f", "fault": {"cut_after": {"chunks": 3}}}})
    return policy(server, [primary], [backup])


def check_chunks(chunks: List[polyroute.ChatCompletionChunk], backup: str, expected: str) -> None:
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == backup for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # The last chunk carries the usage and no choices, as openai streams with include_usage.
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, 4)
    assert all(c.usage is None for c in chunks[:-1])


def check_final(resp: polyroute.ChatResponse, primary: str, backup: str, expected: str) -> None:
    assert isinstance(resp, polyroute.ChatResponse)
    assert resp.content == expected and resp.finish_reason == "stop" and resp.model == backup
    assert resp.deployment == backup and resp.provider == "mock"
    assert resp.trace is not None
    assert [(a.deployment, a.outcome) for a in resp.trace.attempts] == [(primary, "overloaded"), (backup, "ok")]
    assert resp.usage is not None and resp.usage.total_tokens == 6
    assert resp.cost_usd == pytest.approx((2 * 1.0 + 4 * 2.0) / 1e6)


def test_chunks_after_failover_then_the_final_response(server: MockServer, name: str) -> None:
    primary, backup, p = failing_primary(server, name)
    router = polyroute.Router(p)
    expected = router.chat(USER).content
    with router.stream(USER) as stream:
        chunks = list(stream.chunks())
        final = stream.final_response()
    check_chunks(chunks, backup, expected)
    check_final(final, primary, backup, expected)
    assert stream.get_final_completion() == final
    assert final.to_dict()["object"] == "chat.completion"


def test_final_response_reads_the_rest_of_the_stream(server: MockServer, name: str) -> None:
    primary, backup, p = failing_primary(server, name)
    router = polyroute.Router(p)
    stream = router.chat(USER, stream=True)
    check_final(stream.get_final_completion(), primary, backup, "backup speaking at length")
    assert stream.closed
    # After two events the fold still holds the whole answer.
    stream = router.stream(USER)
    assert [next(stream).type, next(stream).type] == ["start", "content_delta"]
    check_final(stream.final_response(), primary, backup, "backup speaking at length")


def test_tool_call_chunks_and_final_tool_calls(server: MockServer, name: str) -> None:
    server.script(name, {"then": {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}]}})
    router = polyroute.Router(policy(server, [name]))
    stream = router.stream(USER, tools=TOOLS)
    chunks = list(stream.chunks())
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert (calls[0].index, calls[0].id, calls[0].type, calls[0].function.name) == (0, "call_1", "function", "get_weather")
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city": "Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    final = stream.final_response()
    assert final.finish_reason == "tool_calls"
    assert [(t.id, t.name, t.arguments) for t in final.tool_calls] == [("call_1", "get_weather", '{"city": "Paris"}')]


def test_a_cut_after_content_raises_from_chunks_and_final_response(server: MockServer, name: str) -> None:
    router = polyroute.Router(cut_after_content(server, name))
    stream = router.stream(USER)
    got: List[str] = []
    with pytest.raises(polyroute.StreamInterruptedError) as info:
        for chunk in stream.chunks():
            got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(got) == "a b c"
    assert info.value.partial is not None and info.value.partial.text == "a b c"
    with pytest.raises(polyroute.StreamInterruptedError) as again:
        stream.final_response()
    assert again.value.trace is not None and again.value.trace.attempts[-1].outcome == "stream_interrupted"
    # Without reading first: the final response meets the cut itself.
    with pytest.raises(polyroute.StreamInterruptedError):
        router.stream(USER).final_response()


def test_closed_early_has_no_final_response(server: MockServer, name: str) -> None:
    words = " ".join(f"w{i}" for i in range(50))
    server.script(name, {"then": {"text": words, "chunk_delay_ms": 50}})
    router = polyroute.Router(policy(server, [name]))
    with router.stream(USER) as stream:
        for chunk in stream.chunks():
            if chunk.choices and chunk.choices[0].delta.content:
                break
    with pytest.raises(polyroute.RequestCancelledError):
        stream.final_response()


def test_restart_has_no_chunk_form(server: MockServer, name: str) -> None:
    primary, backup = f"{name}-p", f"{name}-b"
    server.script(primary, {"then": {"text": "a b c d", "fault": {"cut_after": {"chunks": 2}}}})
    server.script(backup, {"then": {"text": "whole answer"}})
    router = polyroute.Router(policy(server, [primary], [backup], route={"stream_recovery": "restart"}))
    with pytest.raises(polyroute.StreamInterruptedError, match="restarted"):
        list(router.stream(USER).chunks())
    # Events can say "start over"; the final response is the restarted answer.
    assert router.stream(USER).final_response().content == "whole answer"


def test_a_stream_is_read_as_events_or_as_chunks(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    stream = router.stream(USER)
    next(stream)
    with pytest.raises(RuntimeError, match="either as events or as chunks"):
        next(stream.chunks())
    stream = router.stream(USER)
    next(stream.chunks())
    with pytest.raises(RuntimeError, match="either as events or as chunks"):
        next(stream)


def test_async_chunks_and_final_response(server: MockServer, name: str) -> None:
    primary, backup, p = failing_primary(server, name)
    router = polyroute.AsyncRouter(p)

    async def main() -> Tuple[str, List[polyroute.ChatCompletionChunk], polyroute.ChatResponse, polyroute.ChatResponse]:
        expected = (await router.chat(USER)).content
        async with await router.stream(USER) as stream:
            chunks = [c async for c in stream.chunks()]
            final = await stream.final_response()
        other = await (await router.chat(USER, stream=True)).get_final_completion()
        return expected, chunks, final, other

    expected, chunks, final, other = asyncio.run(main())
    check_chunks(chunks, backup, expected)
    check_final(final, primary, backup, expected)
    check_final(other, primary, backup, expected)


def test_async_cut_and_early_close(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(cut_after_content(server, name))
    slow = f"{name}-slow"
    server.script(slow, {"then": {"text": " ".join(f"w{i}" for i in range(50)), "chunk_delay_ms": 50}})
    slow_router = polyroute.AsyncRouter(policy(server, [slow]))

    async def main() -> None:
        stream = await router.stream(USER)
        with pytest.raises(polyroute.StreamInterruptedError):
            async for _ in stream.chunks():
                pass
        with pytest.raises(polyroute.StreamInterruptedError):
            await stream.final_response()
        with pytest.raises(polyroute.StreamInterruptedError):
            await (await router.stream(USER)).final_response()
        async with await slow_router.stream(USER) as early:
            async for chunk in early.chunks():
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        with pytest.raises(polyroute.RequestCancelledError):
            await early.final_response()

    asyncio.run(main())
