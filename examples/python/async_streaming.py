"""Streaming with asyncio: print tokens as they arrive, stop early, and cancel a slow call.

Failures before the first token fail over invisibly; after it, the stream ends with
`StreamInterruptedError` carrying the partial text. Leaving `async with` (or cancelling the
task) cancels the request at the provider.

    python examples/python/async_streaming.py
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import polyroute

POLICY: Dict[str, Any] = {
    "providers": {
        # `primary` fails before its first token; `backup` streams slowly.
        "primary": {"kind": "mock", "script": {"then": {"status": 503}}},
        "backup": {"kind": "mock", "script": {"then": {"text": "Streaming one word at a time from the backup", "chunk_delay_ms": 20}}},
        "slow": {"kind": "mock", "script": {"then": {"latency_ms": 10000}}},
    },
    "deployments": {
        "main": {"provider": "primary", "model": "gpt-4o"},
        "spare": {"provider": "backup", "model": "claude-sonnet-4-5"},
        "sloth": {"provider": "slow", "model": "slow-model"},
    },
    "routes": [
        {"name": "chat", "deployments": ["main"], "fallbacks": [{"deployments": ["spare"]}], "retry": {"attempts_per_deployment": 1}},
        {"name": "slow", "deployments": ["sloth"]},
    ],
    "default_route": "chat",
}


async def main() -> None:
    router = polyroute.AsyncRouter(POLICY)
    messages = [{"role": "user", "content": "Say something"}]

    stream = await router.stream(messages)
    async with stream:
        async for event in stream:
            if event.type == "content_delta":
                print(event.text, end="", flush=True)
            elif event.type == "finish":
                print(f"\n[finish: {event.finish_reason}]")
    trace = stream.trace
    if trace is not None:
        print(f"served by {trace.served_by}: {trace.explain()}")

    # Stop reading after three words: the request is cancelled.
    async with await router.stream(messages) as stream:
        words = 0
        async for event in stream:
            if event.type == "content_delta":
                words += 1
                if words == 3:
                    break
    print(f"stopped after {words} words; closed={stream.closed}")

    # A deadline of our own: the slow request is aborted, not left running.
    try:
        await asyncio.wait_for(router.chat(messages, route="slow"), timeout=0.2)
    except asyncio.TimeoutError:
        print("slow call cancelled after 0.2 s")


if __name__ == "__main__":
    asyncio.run(main())
