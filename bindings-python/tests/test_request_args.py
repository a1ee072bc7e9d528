"""Arguments of ``chat()`` beyond the plain OpenAI body: ``timeout=`` as the request's deadline,
and messages given as objects (the SDK's own, polyroute's, pydantic models, dataclasses), so
an agent's tool loop can append an answer's message as it got it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any, Dict, List, Optional

import httpx
import httpx2
import openai
import pytest
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall as ToolCall
from openai.types.chat.chat_completion_message_function_tool_call import Function
from pydantic import BaseModel

import polyroute
from conftest import FAKE_KEY, USER, MockServer, policy
from polyroute._request import body

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}


def hanging(server: MockServer, name: str) -> Dict[str, Any]:
    server.script(name, {"then": {"fault": "hang"}})
    # A route whose own deadlines are far away: only the caller's timeout can end it soon.
    return policy(server, [name], timeouts={"first_token": "20s", "idle": "20s", "total": "30s"})


def test_timeout_ends_a_hanging_request_well_before_the_route_would(server: MockServer, name: str) -> None:
    router = polyroute.Router(hanging(server, name))
    started = time.monotonic()
    with pytest.raises(polyroute.RequestTimeoutError) as info:
        router.chat(USER, timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2.0
    assert isinstance(info.value, TimeoutError) and info.value.kind == "timeout"
    # The deadline is the router's to enforce; it is never forwarded.
    assert all("polyroute" not in e["body"] and "timeout" not in e["body"] for e in server.log(name))

    started = time.monotonic()
    with pytest.raises(polyroute.RequestTimeoutError):
        router.stream(USER, timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_timeout_async_and_as_an_httpx_timeout(server: MockServer, name: str) -> None:
    router = polyroute.AsyncRouter(hanging(server, name))

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(polyroute.RequestTimeoutError):
            await router.chat(USER, timeout=httpx.Timeout(0.5))
        return time.monotonic() - started

    assert asyncio.run(main()) < 2.0


def test_timeout_values_and_types() -> None:
    def routing(**kw: Any) -> Optional[Dict[str, Any]]:
        r: Optional[Dict[str, Any]] = body(USER, kw, "chat").get("polyroute")
        return r

    assert routing(timeout=2) == {"timeout": 2.0}
    assert routing(timeout=1.5, polyroute={"tenant": "acme", "timeout": 9}) == {"tenant": "acme", "timeout": 1.5}
    assert routing(timeout=1.5, extra_body={"polyroute": {"tier": "pro"}}) == {"tier": "pro", "timeout": 1.5}
    # httpx's phases bound single waits: the longest is the request's deadline; None: no deadline.
    assert routing(timeout=httpx.Timeout(5.0, connect=1.0)) == {"timeout": 5.0}
    assert routing(timeout=httpx2.Timeout(3.0, read=7.0)) == {"timeout": 7.0}
    assert routing(timeout=httpx.Timeout(None)) is None
    assert routing(timeout=None) is None and routing(timeout=openai.NOT_GIVEN) is None
    # The caller's routing dict is not changed behind its back.
    mine = {"tenant": "acme"}
    routing(timeout=1, polyroute=mine)
    assert mine == {"tenant": "acme"}
    for bad in ("5", True, [1.0], object()):
        with pytest.raises(TypeError, match="timeout must be a number of seconds or an httpx.Timeout"):
            routing(timeout=bad)


def test_a_timeout_that_is_not_positive_is_the_cores_invalid_request(server: MockServer, name: str) -> None:
    router = polyroute.Router(policy(server, [name]))
    for bad in (0, -1.0):
        with pytest.raises(polyroute.InvalidRequestError, match="timeout"):
            router.chat(USER, timeout=bad)
    with pytest.raises(ValueError):
        router.chat(USER, timeout=float("inf"))
    assert server.log(name) == []


# --------------------------------------------------------------------------- message objects


@dataclasses.dataclass
class DataMessage:
    role: str
    content: Optional[str]
    name: Optional[str] = None


class PydanticMessage(BaseModel):
    role: str
    content: Optional[str] = None
    tool_call_id: Optional[str] = None


class Unconvertible:
    """An object that stands for no JSON."""


class BrokenModel(BaseModel):
    role: str = "user"

    def model_dump(self, **kwargs: Any) -> Dict[str, Any]:
        raise RuntimeError("model_dump failed")


def test_message_objects_become_dicts(server: MockServer, name: str) -> None:
    # The native conversion turns the objects it meets into dicts (through `_plain`), at any
    # depth; what goes out is what the provider receives.
    msgs: List[Any] = [
        DataMessage("system", "be brief"),
        PydanticMessage(role="user", content="hi"),
        {"role": "assistant", "content": None, "tool_calls": [ToolCall(id="c1", type="function", function=Function(name="f", arguments="{}"))]},
        PydanticMessage(role="tool", content="42", tool_call_id="c1"),
        polyroute.Message({"role": "assistant", "content": "ok"}),
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    router = polyroute.Router(policy(server, [name]))
    router.chat(msgs)
    assert server.log(name)[0]["body"]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    # The same in any iterable, and the caller's objects are left as they were.
    router.chat(iter(msgs[:2]))
    assert server.log(name)[1]["body"]["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert isinstance(msgs[1], PydanticMessage)
    # Plain data goes through untouched (no copy).
    plain = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    assert body(plain, {}, "chat")["messages"][0] is plain[0]
    with pytest.raises(TypeError, match="messages must be a list of messages"):
        body({"role": "user", "content": "x"}, {}, "chat")  # type: ignore[dict-item]
    # An object that stands for no JSON is the TypeError naming where it was; one whose
    # conversion raises passes that exception on. Nothing is sent either way.
    with pytest.raises(TypeError, match=r"messages\[1\]\.content: unsupported type Unconvertible"):
        router.chat([USER[0], {"role": "user", "content": Unconvertible()}])
    with pytest.raises(RuntimeError, match="model_dump failed"):
        router.chat([BrokenModel()])
    assert len(server.log(name)) == 2


def tool_loop_scripts(server: MockServer, name: str) -> None:
    server.script(name, {"steps": [{"text": "", "tool_calls": [CALL]}], "then": {"text": "sunny in Paris"}})


def second_turn(server: MockServer, name: str) -> List[Dict[str, Any]]:
    log = server.log(name)
    assert len(log) == 2
    msgs: List[Dict[str, Any]] = log[1]["body"]["messages"]
    return msgs


def assert_round_trip(msgs: List[Dict[str, Any]]) -> None:
    assert msgs[0] == USER[0]
    assistant = msgs[1]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    # Nothing the SDK object carried as None rode along.
    assert not {k for k, v in assistant.items() if v is None} - {"content"}
    assert {"function_call", "audio"}.isdisjoint(assistant)
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_tool_loop_with_polyroutes_own_message(server: MockServer, name: str) -> None:
    tool_loop_scripts(server, name)
    router = polyroute.Router(policy(server, [name]))
    messages: List[Any] = list(USER)
    resp = router.chat(messages, tools=TOOLS)
    assert resp.finish_reason == "tool_calls"
    messages.append(resp.choices[0].message)
    for call in resp.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    final = router.chat(messages, tools=TOOLS)
    assert final.content == "sunny in Paris"
    assert_round_trip(second_turn(server, name))


def test_tool_loop_with_the_openai_sdks_message(server: MockServer, name: str) -> None:
    tool_loop_scripts(server, name)
    router = polyroute.Router(policy(server, [name]))
    c = openai.OpenAI(api_key=FAKE_KEY, max_retries=0, http_client=polyroute.http_client(router))
    completion = c.chat.completions.create(model="chat", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    message = completion.choices[0].message
    assert isinstance(message, openai.types.chat.ChatCompletionMessage) and message.function_call is None
    messages: List[Any] = [*USER, message]
    for call in message.tool_calls or []:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    final = router.chat(messages, tools=TOOLS)
    assert final.content == "sunny in Paris"
    assert_round_trip(second_turn(server, name))


def test_tool_loop_async_with_a_streamed_final_response(server: MockServer, name: str) -> None:
    tool_loop_scripts(server, name)
    router = polyroute.AsyncRouter(policy(server, [name]))

    async def main() -> str:
        messages: List[Any] = list(USER)
        stream = await router.stream(messages, tools=TOOLS)
        first = await stream.final_response()
        messages.append(first.message)
        messages.append({"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "sunny"})
        return (await router.chat(messages, tools=TOOLS)).content

    assert asyncio.run(main()) == "sunny in Paris"
    assert_round_trip(second_turn(server, name))
    assert json.dumps(second_turn(server, name))  # plain JSON all the way
