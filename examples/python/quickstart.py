"""Quickstart: route chat requests with failover, then ask why each went where it went.

Runs as is (no API keys, no network): examples/policies/demo.yaml uses the built-in mock
providers. `openai-main` answers twice and is then banned (HTTP 403); the router fails over
to `anthropic-backup`, which throttles once, and opens the banned deployment's breaker so
it stops costing a round trip.

    python examples/python/quickstart.py
"""

from __future__ import annotations

from pathlib import Path

import polyroute

POLICY = Path(__file__).resolve().parent.parent / "policies" / "demo.yaml"


def main() -> None:
    router = polyroute.Router(POLICY)

    for i in range(1, 5):
        # The same arguments you would give openai.chat.completions.create, plus routing metadata (`polyroute`).
        resp = router.chat(
            [{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=100,
            polyroute={"tenant": "acme", "feature": "support"},
        )
        cost = f"${resp.cost_usd:.6f}" if resp.cost_usd is not None else "unknown cost"
        print(f"request {i}: {resp.content!r} from {resp.deployment} ({resp.model}), {cost}")
        print(f"  why: {resp.explain()}")

    for d in router.deployments():
        print(f"breaker {d.deployment}: {d.breaker.state}")

    try:
        router.chat([{"role": "user", "content": "hi"}], route="no-such-route")
    except polyroute.NoRouteError as e:
        print(f"error kind={e.kind}: {e.message}")


if __name__ == "__main__":
    main()
