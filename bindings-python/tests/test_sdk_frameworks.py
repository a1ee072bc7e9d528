"""Libraries built on openai-python, unchanged, over ``polyroute.http_client`` (real packages,
pinned in test.sh): instructor, langchain-openai and pydantic-ai. Each gets the fallback's
answer after the primaries fail (a 503, a stream cut before content), sees the deployment in
the response headers (an httpx event hook) or its own metadata, and raises its own error when a
stream is cut after content."""

from __future__ import annotations

import asyncio
from typing import Any, List

import instructor
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from conftest import FAKE_KEY, MockServer
from sdk_helpers import Failover, cut_after_content, failover


class Person(BaseModel):
    name: str
    age: int


def test_instructor_gets_a_pydantic_object_through_tool_calls(server: MockServer, name: str) -> None:
    step = {"text": "", "tool_calls": [{"name": "Person", "arguments": {"name": "Ada", "age": 36}, "id": "call_1"}]}
    f = failover(server, name, step)
    client = instructor.from_openai(openai.OpenAI(api_key=FAKE_KEY, max_retries=0, http_client=f.http_client()))
    person, completion = client.chat.completions.create_with_completion(
        model="chat", response_model=Person, messages=[{"role": "user", "content": "who?"}]
    )
    assert isinstance(person, Person) and person.model_dump() == {"name": "Ada", "age": 36}
    assert completion.model == f.backup
    assert f.served_by_backup()
    sent = server.log(f.backup)[0]
    assert "Person" in str(sent), "the tool schema reached the provider"


def langchain(f: Failover, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="chat",
        api_key=FAKE_KEY,  # type: ignore[arg-type]
        max_retries=0,
        http_client=f.http_client(),
        http_async_client=f.async_http_client(),
        **kwargs,
    )


def test_langchain_invoke_and_stream(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "langchain backup"})
    chat = langchain(f, include_response_headers=True, stream_usage=True)
    msg = chat.invoke("hello")
    assert msg.content == "langchain backup"
    assert msg.response_metadata["headers"]["x-polyroute-deployment"] == f.backup
    assert msg.response_metadata["model_name"] == f.backup
    chunks = list(chat.stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "langchain backup"
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["total_tokens"] > 0

    async def main() -> None:
        assert (await chat.ainvoke("hello")).content == "langchain backup"
        text = "".join([str(c.content) async for c in chat.astream("hello")])
        assert text == "langchain backup"

    asyncio.run(main())


def test_langchain_stream_cut_after_content_raises(server: MockServer, name: str) -> None:
    f = cut_after_content(server, name)
    got: List[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in langchain(f).stream("hello"):
            got.append(str(c.content))
    assert info.value.code == "stream_interrupted"
    assert "".join(got) == "one two"
    assert server.log(f.backup) == []


def agent(f: Failover, **kwargs: Any) -> Agent[None, Any]:
    aclient = openai.AsyncOpenAI(api_key=FAKE_KEY, max_retries=0, http_client=f.async_http_client())
    model = OpenAIChatModel("chat", provider=OpenAIProvider(openai_client=aclient))
    return Agent(model, **kwargs)


def test_pydantic_ai_run_and_stream(server: MockServer, name: str) -> None:
    f = failover(server, name, {"text": "pydantic-ai backup"})
    a = agent(f)
    result = a.run_sync("hello")
    assert result.output == "pydantic-ai backup"
    assert result.response.model_name == f.backup
    assert f.served_by_backup()

    async def main() -> None:
        async with a.run_stream("hello") as run:
            text = await run.get_output()
        assert text == "pydantic-ai backup"

    asyncio.run(main())


def test_pydantic_ai_structured_output(server: MockServer, name: str) -> None:
    step = {"text": "", "tool_calls": [{"name": "final_result", "arguments": {"name": "Ada", "age": 36}, "id": "call_1"}]}
    f = failover(server, name, step)
    result = agent(f, output_type=Person).run_sync("who?")
    assert result.output == Person(name="Ada", age=36)
    assert f.served_by_backup()


def test_pydantic_ai_stream_cut_after_content_raises(server: MockServer, name: str) -> None:
    f = cut_after_content(server, name)
    a = agent(f)

    async def main() -> List[str]:
        got: List[str] = []
        async with a.run_stream("hello") as run:
            async for text in run.stream_text(delta=True):
                got.append(text)
        return got

    with pytest.raises(openai.APIError) as info:
        asyncio.run(main())
    assert info.value.code == "stream_interrupted"
    assert server.log(f.backup) == []
