"""What the openai-SDK transport costs (issue 16): the same openai client, once talking HTTP to
the provider directly and once through ``polyroute.http_client(router)``, next to polyroute's
native call and the raw-socket floor, all against one loopback mock server.

    python bench/python/transport.py --mock-server target/release/polyroute-mock-server [--rounds N]

The calls are interleaved (one of each per round, in a rotating order) in one process, so
drift in machine load hits every column alike. Figures:

- SDK overhead: the openai client over an in-memory httpx transport that returns the mock's
  recorded answer at once (no network at all: the SDK's own Python work per call);
- transport cost: openai through polyroute, minus that SDK overhead, minus polyroute's own
  native call: what the glue between httpx and the router adds (the router's routing and
  HTTP are the native call's, counted once);
- the target (issue 16) is a transport cost under 10 % of the SDK overhead. Also shown:
  openai's own HTTP (direct to the server), which the transport replaces.

Prints a Markdown section. Not part of any test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import FAKE_KEY, MESSAGES, MODEL, floor_call, polyroute_policy, start_mock, stop_mock, summarize  # noqa: E402


def recorded_answer(base: str) -> bytes:
    import urllib.request

    req = urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": MESSAGES}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {FAKE_KEY}"},
    )
    with urllib.request.urlopen(req) as r:
        return bytes(r.read())


def canned(body: bytes, is_async: bool) -> Any:
    """An httpx client whose transport answers every request with `body`, in memory."""
    import httpx

    def answer(_: Any) -> Any:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    if is_async:

        async def answer_async(r: Any) -> Any:
            return answer(r)

        return httpx.AsyncClient(transport=httpx.MockTransport(answer_async))
    return httpx.Client(transport=httpx.MockTransport(answer))


def sync_calls(base: str) -> Dict[str, Callable[[], str]]:
    import openai
    import polyroute

    router = polyroute.Router(polyroute_policy(base))
    direct = openai.OpenAI(base_url=base + "/v1", api_key=FAKE_KEY, max_retries=0)
    routed = openai.OpenAI(api_key="unused", max_retries=0, http_client=polyroute.http_client(router))
    memory = openai.OpenAI(api_key="unused", max_retries=0, http_client=canned(recorded_answer(base), False))
    return {
        "floor (raw socket)": floor_call(base),
        "polyroute Router.chat": lambda: router.chat(MESSAGES).content,
        "openai, in-memory answer (SDK alone)": lambda: memory.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content or "",  # type: ignore[arg-type]
        "openai direct": lambda: direct.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content or "",  # type: ignore[arg-type]
        "openai via polyroute": lambda: routed.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content or "",  # type: ignore[arg-type]
    }


def async_calls(base: str) -> Dict[str, Callable[[], Awaitable[str]]]:
    import openai
    import polyroute

    router = polyroute.AsyncRouter(polyroute_policy(base))
    direct = openai.AsyncOpenAI(base_url=base + "/v1", api_key=FAKE_KEY, max_retries=0)
    routed = openai.AsyncOpenAI(api_key="unused", max_retries=0, http_client=polyroute.async_http_client(router))
    memory = openai.AsyncOpenAI(api_key="unused", max_retries=0, http_client=canned(recorded_answer(base), True))

    async def native() -> str:
        return (await router.chat(MESSAGES)).content

    async def via(client: Any) -> str:
        r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return r.choices[0].message.content or ""

    return {
        "polyroute AsyncRouter.chat": native,
        "openai, in-memory answer (SDK alone)": lambda: via(memory),
        "openai direct": lambda: via(direct),
        "openai via polyroute": lambda: via(routed),
    }


def run_sync(calls: Dict[str, Callable[[], str]], rounds: int) -> Dict[str, Dict[str, Any]]:
    names = list(calls)
    for _ in range(max(rounds // 10, 50)):
        for n in names:
            calls[n]()
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for i in range(rounds):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            text = calls[n]()
            samples[n].append((time.perf_counter() - t) * 1e6)
            assert text.startswith("echo:"), (n, text)
    return {n: summarize(s) for n, s in samples.items()}


async def run_async(calls: Dict[str, Callable[[], Awaitable[str]]], rounds: int) -> Dict[str, Dict[str, Any]]:
    names = list(calls)
    for _ in range(max(rounds // 10, 50)):
        for n in names:
            await calls[n]()
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for i in range(rounds):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            text = await calls[n]()
            samples[n].append((time.perf_counter() - t) * 1e6)
            assert text.startswith("echo:"), (n, text)
    return {n: summarize(s) for n, s in samples.items()}


def table(res: Dict[str, Dict[str, Any]], floor: float) -> List[str]:
    out = ["| call | p50 (µs) | p99 (µs) | added p50 over the floor (µs) |", "|---|---:|---:|---:|"]
    for n, r in res.items():
        out.append(f"| {n} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['p50_us'] - floor:.0f} |")
    return out


def verdict(res: Dict[str, Dict[str, Any]], native: str) -> str:
    p = {n: r["p50_us"] for n, r in res.items()}
    sdk = p["openai, in-memory answer (SDK alone)"]
    glue = p["openai via polyroute"] - sdk - p[native]
    http = p["openai direct"] - sdk
    return (
        f"SDK alone {sdk:.0f} µs; transport cost (via polyroute − SDK alone − `{native}`) {glue:+.0f} µs = "
        f"{100 * glue / sdk:+.1f} % of the SDK's own time (target: under +10 %). For comparison, the SDK's "
        f"own HTTP to the same server (direct − SDK alone) costs {http:.0f} µs, the router's whole call "
        f"{p[native]:.0f} µs."
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mock-server", required=True)
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    import openai
    import polyroute

    before = load()
    mock, base = start_mock(args.mock_server)
    try:
        sync = run_sync(sync_calls(base), args.rounds)
        floor = sync["floor (raw socket)"]["p50_us"]
        aio = asyncio.run(run_async(async_calls(base), args.rounds))
    finally:
        stop_mock(mock)
    lines = [
        "## openai SDK transport: what routing through polyroute adds (issue 16)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, openai {openai.__version__}, polyroute {getattr(polyroute, '__version__', '?')} "
        f"(release build); load average {before} before, {load()} after. Command: "
        f"`bash bench/python/run.sh --transport` ({args.rounds} interleaved rounds).",
        "",
        "Blocking clients:",
        "",
        *table(sync, floor),
        "",
        verdict(sync, "polyroute Router.chat"),
        "",
        "asyncio clients (same floor):",
        "",
        *table(aio, floor),
        "",
        verdict(aio, "polyroute AsyncRouter.chat"),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
