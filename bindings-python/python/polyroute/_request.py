"""The request body ``chat()``/``stream()``/``plan()`` send to the core, from their arguments.

Only assembly happens here: the keyword names are checked against the core's list
(``_native.REQUEST_FIELDS``), ``timeout=`` becomes ``polyroute.timeout``, and messages given
as objects (the SDK's own, polyroute's, pydantic models, dataclasses) become plain dicts. The
body is parsed and validated by the core (``polyroute::bridge``), so a bad value is the core's
``invalid_request`` (:class:`~polyroute.InvalidRequestError`, a ``ValueError``) and the two
cannot disagree about what a field means.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, TypedDict, Union

from . import _native
from ._types import _View

__all__ = ["ChatParams", "RoutingParams", "MessageLike", "TimeoutLike", "body"]


class _ModelDump(Protocol):
    """A pydantic v2 model (the openai SDK's ``ChatCompletionMessage``, for one)."""

    def model_dump(self, *, mode: str = ..., exclude_none: bool = ...) -> Dict[str, Any]: ...


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[Dict[str, Any]]


#: One message: a dict in the OpenAI shape, or an object that converts to one (a pydantic
#: model such as openai's ``ChatCompletionMessage``, a dataclass, ``polyroute.Message``).
MessageLike = Union[Mapping[str, Any], _ModelDump, _Dataclass, _View]


class _TimeoutObject(Protocol):
    """``httpx.Timeout``'s shape: its largest phase is taken as the whole request's deadline."""

    connect: Optional[float]
    read: Optional[float]
    write: Optional[float]
    pool: Optional[float]


#: Seconds (``float``/``int``) or an ``httpx.Timeout``-like object.
TimeoutLike = Union[float, _TimeoutObject]


class RoutingParams(TypedDict, total=False):
    """The ``polyroute`` request object: what the router reads to route, never sent to a
    provider. The same object the openai SDKs send as ``extra_body={"polyroute": {...}}``."""

    #: Ask for a route by name (bypasses the match rules).
    route: str
    tenant: str
    feature: str
    #: The tenant's service tier (``free``, ``pro``, ...).
    tier: str
    tags: Sequence[str]
    #: Sensitivity of the request's data (``public``, ``internal``, ``pii``, ...).
    data_class: str
    #: Deployments of the route to try first, in this order (the rest remain fallbacks).
    order: Sequence[str]
    #: Total deadline in seconds, all attempts included (``timeout=`` sets it).
    timeout: float


class ChatParams(TypedDict, total=False):
    """Keyword arguments of ``chat()``/``stream()``/``plan()``: those of
    ``openai.chat.completions.create`` (forwarded as the OpenAI body) plus ``polyroute``
    (routing) and its ``route`` shortcut. ``None`` means "not given" (the key is left out of
    the body). For type checkers only: at run time the accepted names are the core's
    (``_native.REQUEST_FIELDS``) plus ``extra_body`` and ``timeout``."""

    #: A route name, else a deployment name (tried first; the route's others remain
    #: fallbacks), else a provider model id a deployment serves; unknown is ``NoRouteError``
    #: unless a route is asked for (then it is only a preference). Absent: the match rules.
    model: Optional[str]
    tools: Optional[Sequence[Mapping[str, Any]]]
    tool_choice: Optional[Union[str, Mapping[str, Any]]]
    parallel_tool_calls: Optional[bool]
    response_format: Optional[Mapping[str, Any]]
    temperature: Optional[float]
    top_p: Optional[float]
    max_tokens: Optional[int]
    max_completion_tokens: Optional[int]
    stop: Optional[Union[str, Sequence[str]]]
    seed: Optional[int]
    n: Optional[int]
    presence_penalty: Optional[float]
    frequency_penalty: Optional[float]
    logit_bias: Optional[Mapping[str, int]]
    logprobs: Optional[bool]
    top_logprobs: Optional[int]
    user: Optional[str]
    reasoning_effort: Optional[str]
    verbosity: Optional[str]
    service_tier: Optional[str]
    store: Optional[bool]
    modalities: Optional[Sequence[str]]
    audio: Optional[Mapping[str, Any]]
    prediction: Optional[Mapping[str, Any]]
    prompt_cache_key: Optional[str]
    safety_identifier: Optional[str]
    web_search_options: Optional[Mapping[str, Any]]
    stream_options: Optional[Mapping[str, Any]]
    #: OpenAI's ``metadata`` (string pairs stored with the completion): forwarded to
    #: OpenAI-shaped providers as any other parameter, never read for routing.
    metadata: Optional[Mapping[str, str]]
    #: Routing: ``route``, ``tenant``, ``feature``, ``tier``, ``tags``, ``data_class``,
    #: ``order``, ``timeout`` and anything else (kept for traces and callbacks, never sent).
    polyroute: Optional[Union[RoutingParams, Mapping[str, Any]]]
    #: Ask for a route by name (same as ``polyroute={"route": ...}``, and wins over it).
    route: Optional[str]
    #: The whole request's deadline in seconds, every attempt included (``polyroute.timeout``;
    #: the route's ``timeouts.total`` still applies, the shorter wins). Ends in
    #: :class:`~polyroute.RequestTimeoutError`.
    timeout: Optional[TimeoutLike]
    #: Extra top-level body fields, as with the openai SDK.
    extra_body: Optional[Mapping[str, Any]]


#: Keyword arguments accepted at run time: the request fields the core knows by name, and
#: what the openai SDK takes besides the body (``extra_body``, ``timeout``).
_PARAMS = frozenset(_native.REQUEST_FIELDS) | {"extra_body", "timeout"}

# Past this depth conversion stops and the native walk reports the problem (a cycle, say).
_MAX_DEPTH = 64


def _not_given(value: Any) -> bool:
    # openai's NOT_GIVEN / omit sentinels, passed along by code that forwards its arguments.
    return value is None or type(value).__name__ in ("NotGiven", "Omit")


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with every object in it turned into dicts; the same object when it already
    is plain JSON data (the common case costs no copy). The native conversion calls it for
    each value that is not JSON data (`convert.rs`)."""
    if isinstance(value, (str, int, float, bool)) or value is None or depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        out: Optional[Dict[Any, Any]] = None
        for k, v in value.items():
            p = _plain(v, depth + 1)
            if p is not v:
                out = dict(value) if out is None else out
                out[k] = p
        return value if out is None else out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    if isinstance(value, _View):
        # Polyroute's own views (a response's Message, ToolCall): already the core's JSON.
        return value.to_dict()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        # `exclude_none`: the SDK's response types carry `function_call: None`, `audio: None`,
        # ... which would otherwise be forwarded as fields the provider never asked for.
        try:
            dumped = dump(mode="json", exclude_none=True)
        except TypeError:
            dumped = _drop_none(dump())
        return _plain(dumped, depth + 1)
    # A dataclass instance (what `dataclasses.is_dataclass` checks, without importing
    # dataclasses, and with it inspect, into every program that never passes one).
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        import dataclasses

        return _plain(_drop_none(dataclasses.asdict(value)), depth + 1)
    if isinstance(value, Mapping):
        return _plain(dict(value), depth + 1)
    return value


def _message_list(messages: Iterable[MessageLike], caller: str) -> List[Any]:
    # Messages that are objects (SDK models, dataclasses, views) are turned into dicts by the
    # native conversion, which calls `_plain` for each one it meets: walking every message here
    # first cost ~0.5 µs per message per call (issue 18, twentieth round).
    if type(messages) is list:
        # The usual case, without the ABC check below (a measurable part of a call's Python).
        return messages
    if isinstance(messages, (str, bytes)) or isinstance(messages, Mapping):
        raise TypeError(f"{caller}(): messages must be a list of messages, not {type(messages).__name__}")
    try:
        msgs = list(messages)
    except TypeError:
        raise TypeError(f"{caller}(): messages must be a list of messages, not {type(messages).__name__}") from None
    return msgs


def _timeout_seconds(timeout: Any, caller: str) -> Optional[float]:
    if isinstance(timeout, bool):
        raise TypeError(f"{caller}(): timeout must be a number of seconds or an httpx.Timeout, not bool")
    if isinstance(timeout, (int, float)):
        return float(timeout)
    phases = ("connect", "read", "write", "pool")
    if all(hasattr(timeout, p) for p in phases):
        # httpx's phases bound single waits, not the request; the longest of them is the
        # closest honest reading as a total deadline (`httpx.Timeout(None)`: no deadline).
        values = [getattr(timeout, p) for p in phases]
        set_ = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return max(set_) if set_ else None
    raise TypeError(f"{caller}(): timeout must be a number of seconds or an httpx.Timeout, not {type(timeout).__name__}")


def body(messages: Iterable[MessageLike], params: Mapping[str, Any], caller: str) -> Dict[str, Any]:
    """The OpenAI-shaped body of one call (``caller`` names the method in errors)."""
    for name in params:
        if name not in _PARAMS:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    out: Dict[str, Any] = {"messages": _message_list(messages, caller)}
    for name, value in params.items():
        # None means "not given", as it would to a reader of the call site. `route` goes in
        # as it is: the core turns it into `polyroute.route`.
        if not _not_given(value) and name not in ("extra_body", "timeout"):
            out[name] = value
    extra = params.get("extra_body")
    if not _not_given(extra) and extra:
        out.update(extra)
    timeout = params.get("timeout")
    if not _not_given(timeout):
        seconds = _timeout_seconds(timeout, caller)
        if seconds is not None:
            routing = out.get("polyroute")
            # A copy: the caller's dict may be reused for other calls with other timeouts.
            routing = dict(routing) if isinstance(routing, Mapping) else {} if routing is None else routing
            if isinstance(routing, dict):
                routing["timeout"] = seconds
            out["polyroute"] = routing
    return out
