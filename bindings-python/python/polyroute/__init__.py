"""Polyroute: route LLM requests across providers with failover, in-process.

One Rust core decides, per request, which provider serves it (policy routing, fallback
tiers, retries, circuit breakers) and explains why. This package is its Python face::

    from polyroute import Router

    router = Router("policy.yaml")
    resp = router.chat([{"role": "user", "content": "Hello"}], max_tokens=200)
    print(resp.content, resp.model, resp.cost_usd)
    print(resp.trace.explain())

``Router`` blocks (without holding the GIL); ``AsyncRouter`` is the asyncio twin. Errors are
one class per kind under :class:`PolyrouteError`. Under the openai SDK (and what is built on
it), ``openai.OpenAI(max_retries=0, http_client=polyroute.http_client(router))`` routes every
chat completion through the router in-process (``async_http_client`` for ``AsyncOpenAI``).
"""

from __future__ import annotations

from . import _native
from ._errors import (
    ERROR_CLASSES,
    AuthError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    ContentFilterError,
    ContextLengthExceededError,
    GuardRejectedError,
    InvalidOutputError,
    InvalidRequestError,
    MalformedResponseError,
    NoRouteError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    PolyrouteError,
    ProviderConnectionError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestCancelledError,
    RequestTimeoutError,
    ServerError,
    StateUnavailableError,
    StreamInterruptedError,
    error_class,
)
from ._chunk import ChatCompletionChunk, ChoiceDelta, ChoiceDeltaToolCall, ChoiceDeltaToolCallFunction, ChunkChoice
from ._httpx import RetryOnTopWarning, async_http_client, http_client
from ._request import MessageLike, RoutingParams, TimeoutLike
from ._router import AsyncRouter, AsyncStream, ChatParams, EventCallback, PolicyLike, Router, Stream
from ._types import (
    AttemptTrace,
    BreakerSnapshot,
    BudgetStatus,
    CandidateTrace,
    ChatResponse,
    Choice,
    DeploymentStatus,
    FunctionCall,
    Message,
    PartialOutput,
    RouteCost,
    RoutePlan,
    RouteTrace,
    StreamEvent,
    ToolCall,
    Usage,
)

__version__: str = _native.CORE_VERSION

#: Every error kind code the core knows, in its order.
ERROR_KINDS = _native.ERROR_KINDS

__all__ = [
    "Router",
    "AsyncRouter",
    "Stream",
    "AsyncStream",
    "ChatParams",
    "RoutingParams",
    "MessageLike",
    "TimeoutLike",
    "PolicyLike",
    "EventCallback",
    "http_client",
    "async_http_client",
    "RetryOnTopWarning",
    "BudgetStatus",
    "RouteCost",
    "ChatResponse",
    "Choice",
    "Message",
    "ToolCall",
    "FunctionCall",
    "Usage",
    "RouteTrace",
    "AttemptTrace",
    "CandidateTrace",
    "RoutePlan",
    "DeploymentStatus",
    "BreakerSnapshot",
    "PartialOutput",
    "StreamEvent",
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "PolyrouteError",
    "RateLimitedError",
    "QuotaExhaustedError",
    "OverloadedError",
    "ServerError",
    "RequestTimeoutError",
    "ProviderConnectionError",
    "AuthError",
    "PermissionDeniedError",
    "ContentFilterError",
    "ContextLengthExceededError",
    "InvalidRequestError",
    "NotFoundError",
    "StreamInterruptedError",
    "MalformedResponseError",
    "InvalidOutputError",
    "BudgetExceededError",
    "CircuitOpenError",
    "NoRouteError",
    "RequestCancelledError",
    "ConfigError",
    "GuardRejectedError",
    "StateUnavailableError",
    "ERROR_CLASSES",
    "ERROR_KINDS",
    "error_class",
    "__version__",
]
