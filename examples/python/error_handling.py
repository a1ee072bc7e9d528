"""Error handling: one exception class per error kind, all under `PolyrouteError`.

Each carries `kind`, `provider`, `model`, `status`, `provider_code`, `request_id`,
`retry_after` (seconds), `partial` (interrupted streams) and `trace` (every attempt). Errors
are picklable, so they cross process pools intact.

    python examples/python/error_handling.py
"""

from __future__ import annotations

import pickle
from typing import Any, Dict

import polyroute


def policy(script: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "providers": {"p": {"kind": "mock", "script": script}},
        "deployments": {"d": {"provider": "p", "model": "gpt-4o"}},
        "routes": [{"name": "chat", "deployments": ["d"], "retry": {"attempts_per_deployment": 1}}],
        "default_route": "chat",
    }


MESSAGES = [{"role": "user", "content": "hello"}]


def main() -> None:
    throttled = polyroute.Router(policy({"then": {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "30"}}))
    try:
        throttled.chat(MESSAGES)
    except polyroute.RateLimitedError as e:
        print(f"{type(e).__name__}: kind={e.kind} status={e.status} code={e.provider_code} retry_after={e.retry_after}")
        if e.trace is not None:
            print(f"  attempts: {[(a.deployment, a.outcome) for a in e.trace.attempts]}")
        copy = pickle.loads(pickle.dumps(e))
        print(f"  pickled and back: {type(copy).__name__} retry_after={copy.retry_after}")

    cut = polyroute.Router(policy({"then": {"text": "the answer is forty two", "fault": {"cut_after": {"chunks": 3}}}}))
    try:
        for event in cut.stream(MESSAGES):
            pass
    except polyroute.StreamInterruptedError as e:
        partial = e.partial.text if e.partial else ""
        print(f"{type(e).__name__}: partial text {partial!r}")

    # Bad arguments never reach a provider: TypeError / ValueError subclasses.
    try:
        throttled.chat(MESSAGES, temperature=9)
    except ValueError as e:
        print(f"{type(e).__name__} (a ValueError): {e}")

    # Catch-all: every Polyroute error has a stable `kind`.
    try:
        polyroute.Router({"routes": [{"name": "r", "deployments": ["ghost"]}]})
    except polyroute.PolyrouteError as e:
        print(f"{type(e).__name__}: kind={e.kind}")


if __name__ == "__main__":
    main()
