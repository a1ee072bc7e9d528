"""Shared setup of the SDK tests: a route whose primaries fail (a 503, then a stream cut
before any content) in front of a healthy fallback, and a client capturing response headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import polyroute
from conftest import MockServer, policy

PRICING = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


@dataclass
class Failover:
    router: polyroute.Router
    primaries: List[str]
    backup: str
    #: Headers of every response the transport gave (filled by the ``http_client`` hook).
    seen: List[Dict[str, str]] = field(default_factory=list)

    def hooks(self) -> Dict[str, Any]:
        def capture(response: Any) -> None:
            self.seen.append(dict(response.headers))

        async def acapture(response: Any) -> None:
            capture(response)

        return {"sync": {"response": [capture]}, "async": {"response": [acapture]}}

    def http_client(self) -> Any:
        return polyroute.http_client(self.router, event_hooks=self.hooks()["sync"])

    def async_http_client(self) -> Any:
        return polyroute.async_http_client(self.router, event_hooks=self.hooks()["async"])

    def served_by_backup(self) -> bool:
        """The last non-streamed answer named the fallback as its deployment."""
        return bool(self.seen) and self.seen[-1].get("x-polyroute-deployment") == self.backup


def failover(server: MockServer, name: str, backup_step: Dict[str, Any], *, cut_after: Optional[int] = None) -> Failover:
    """Primaries `…-p503` (HTTP 503) and `…-pcut` (a stream cut before content, or after
    ``cut_after`` chunks: then the fallback is never reached) in front of `…-b`."""
    p503, pcut, backup = f"{name}-p503", f"{name}-pcut", f"{name}-b"
    server.script(p503, {"then": {"status": 503}})
    server.script(pcut, {"then": {"text": "one two three four five", "fault": {"cut_after": {"chunks": cut_after or 0}}}})
    server.script(backup, {"then": backup_step})
    primaries = [p503, pcut]
    router = polyroute.Router(policy(server, primaries, [backup], pricing=PRICING))
    return Failover(router, primaries, backup)


def cut_after_content(server: MockServer, name: str) -> Failover:
    """One deployment whose stream is cut after two chunks of content (a fallback that must
    never be used to finish the sentence)."""
    pcut, backup = f"{name}-cut", f"{name}-b"
    server.script(pcut, {"then": {"text": "one two three four five", "fault": {"cut_after": {"chunks": 2}}}})
    server.script(backup, {"then": {"text": "never"}})
    router = polyroute.Router(policy(server, [pcut], [backup], retry={"attempts_per_deployment": 1}))
    return Failover(router, [pcut], backup)
