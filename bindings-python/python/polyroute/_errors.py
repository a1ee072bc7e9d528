"""Exceptions: one class per core ``ErrorKind``, all under :class:`PolyrouteError`.

The kind codes are the core's stable contract (``polyroute._native.ERROR_KINDS``; a test
checks this module has a class for each). Classes also derive from the builtin exception a
caller would naturally catch where one fits: ``InvalidRequestError`` and ``ConfigError`` are
``ValueError`` (bad arguments and bad policies are rejected before anything is sent),
``RequestTimeoutError`` is a ``TimeoutError``, ``ProviderConnectionError`` a
``ConnectionError``.

Errors pickle (``__reduce__`` keeps the full data), so they cross process pools intact.
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type

from ._types import PartialOutput, RouteTrace

__all__ = [
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
    "error_class",
]


class PolyrouteError(Exception):
    """Base of every Polyroute error.

    Attributes mirror the core error: ``kind`` (stable snake_case code), ``message``,
    ``provider``, ``model``, ``status`` (HTTP), ``provider_code`` (the provider's own code,
    e.g. ``insufficient_quota``), ``request_id``, ``retry_after`` (seconds the provider asked
    to wait), ``partial`` (what an interrupted stream had delivered) and ``trace`` (every
    attempt that led here).
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        status: Optional[int] = None,
        provider_code: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        partial: Optional[Mapping[str, Any]] = None,
        trace: Optional[Mapping[str, Any]] = None,
    ) -> None:
        data: Dict[str, Any] = {"kind": self.kind, "message": message}
        for key, value in (
            ("provider", provider),
            ("model", model),
            ("status", status),
            ("provider_code", provider_code),
            ("request_id", request_id),
            ("retry_after", retry_after),
            ("partial", dict(partial) if partial is not None else None),
            ("trace", dict(trace) if trace is not None else None),
        ):
            if value is not None:
                data[key] = value
        self._init(data, message)

    def _init(self, data: Dict[str, Any], display: str) -> None:
        Exception.__init__(self, display)
        self._data = data
        self._display = display

    @property
    def message(self) -> str:
        return str(self._data.get("message", ""))

    @property
    def code(self) -> str:
        """The kind code of this error (the core's ``kind``; same as the class's ``kind``
        except for a kind this version of the package has no class for)."""
        return str(self._data.get("kind", self.kind))

    @property
    def provider(self) -> Optional[str]:
        return self._data.get("provider")

    @property
    def model(self) -> Optional[str]:
        return self._data.get("model")

    @property
    def status(self) -> Optional[int]:
        return self._data.get("status")

    @property
    def provider_code(self) -> Optional[str]:
        return self._data.get("provider_code")

    @property
    def request_id(self) -> Optional[str]:
        return self._data.get("request_id")

    @property
    def retry_after(self) -> Optional[float]:
        return self._data.get("retry_after")

    @property
    def partial(self) -> Optional[PartialOutput]:
        p = self._data.get("partial")
        return PartialOutput(p) if p is not None else None

    @property
    def trace(self) -> Optional[RouteTrace]:
        t = self._data.get("trace")
        return RouteTrace(t) if t is not None else None

    def to_dict(self) -> Dict[str, Any]:
        """The core error's JSON form."""
        import copy

        return copy.deepcopy(self._data)

    def __str__(self) -> str:
        return self._display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._display!r})"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_restore, (type(self), self._data, self._display))


def _restore(cls: Type[PolyrouteError], data: Dict[str, Any], display: str) -> PolyrouteError:
    exc = cls.__new__(cls)
    exc._init(data, display)
    return exc


class RateLimitedError(PolyrouteError):
    """Throttled (HTTP 429 ``rate_limit_exceeded``); ``retry_after`` says how long to wait."""

    kind = "rate_limited"


class QuotaExhaustedError(PolyrouteError):
    """Billing or daily quota used up (``insufficient_quota``): waiting seconds will not help."""

    kind = "quota_exhausted"


class OverloadedError(PolyrouteError):
    """The provider is over capacity (HTTP 503/529, ``overloaded_error``)."""

    kind = "overloaded"


class ServerError(PolyrouteError):
    """A 5xx that is not an overload."""

    kind = "server_error"


class RequestTimeoutError(PolyrouteError, builtins.TimeoutError):
    """A connect, first-token, idle or total deadline elapsed."""

    kind = "timeout"


class ProviderConnectionError(PolyrouteError, builtins.ConnectionError):
    """Connection refused, reset or closed before a response; DNS; TLS."""

    kind = "connection"


class AuthError(PolyrouteError):
    """HTTP 401: key missing, wrong or revoked."""

    kind = "auth"


class PermissionDeniedError(PolyrouteError):
    """HTTP 403: the key may not do this (a provider's policy ban looks like this)."""

    kind = "permission_denied"


class ContentFilterError(PolyrouteError):
    """The provider refused for content-policy reasons."""

    kind = "content_filter"


class ContextLengthExceededError(PolyrouteError):
    """The request does not fit the model's context window."""

    kind = "context_length_exceeded"


class InvalidRequestError(PolyrouteError, builtins.ValueError):
    """The request is malformed: rejected before sending, or by the provider (HTTP 400/422)."""

    kind = "invalid_request"


class NotFoundError(PolyrouteError):
    """HTTP 404: the model or endpoint does not exist for this key."""

    kind = "not_found"


class StreamInterruptedError(PolyrouteError):
    """A stream broke after content had been delivered; ``partial`` holds what arrived."""

    kind = "stream_interrupted"


class MalformedResponseError(PolyrouteError):
    """The provider answered with something that cannot be parsed."""

    kind = "malformed_response"


class InvalidOutputError(PolyrouteError):
    """The answer does not satisfy the requested JSON schema."""

    kind = "invalid_output"


class BudgetExceededError(PolyrouteError):
    """A spend or token budget would be exceeded."""

    kind = "budget_exceeded"


class CircuitOpenError(PolyrouteError):
    """Every candidate's circuit breaker is open."""

    kind = "circuit_open"


class NoRouteError(PolyrouteError):
    """No route or deployment can serve this request."""

    kind = "no_route"


class RequestCancelledError(PolyrouteError):
    """The request was cancelled by the caller (e.g. its stream was closed while an event was
    awaited). Cancelling an asyncio task raises ``asyncio.CancelledError`` as usual."""

    kind = "cancelled"


class ConfigError(PolyrouteError, builtins.ValueError):
    """Invalid policy or configuration, detected before anything was sent.

    Also how an internal error of polyroute itself (a panic in the core: a bug) is raised, from
    any call; its message starts with ``internal error:``."""

    kind = "config"


class GuardRejectedError(PolyrouteError):
    """A guard of the policy found data it must not send (action ``reject``): nothing was
    sent, and the request is never retried and never falls over. The message names the guard
    and what it detected, never the matched text."""

    kind = "guard_rejected"


class StateUnavailableError(PolyrouteError):
    """The shared state store of the policy (``state.redis``: Redis or Valkey) did not
    answer in time and the policy says ``on_error: fail_closed``: nothing was sent. With
    ``on_error: local`` (the default) or ``fail_open`` the request is served instead."""

    kind = "state_unavailable"


ERROR_CLASSES: Dict[str, Type[PolyrouteError]] = {
    c.kind: c
    for c in (
        RateLimitedError,
        QuotaExhaustedError,
        OverloadedError,
        ServerError,
        RequestTimeoutError,
        ProviderConnectionError,
        AuthError,
        PermissionDeniedError,
        ContentFilterError,
        ContextLengthExceededError,
        InvalidRequestError,
        NotFoundError,
        StreamInterruptedError,
        MalformedResponseError,
        InvalidOutputError,
        BudgetExceededError,
        CircuitOpenError,
        NoRouteError,
        RequestCancelledError,
        ConfigError,
        GuardRejectedError,
        StateUnavailableError,
    )
}


def error_class(kind: str) -> Type[PolyrouteError]:
    """The exception class for a kind code (the base class for a code it does not know)."""
    return ERROR_CLASSES.get(kind, PolyrouteError)


def _from_native(data: Dict[str, Any], display: str) -> PolyrouteError:
    """Called by the native module with the core error's JSON and its ``Display`` text."""
    cls = error_class(str(data.get("kind", "")))
    return _restore(cls, data, display)
