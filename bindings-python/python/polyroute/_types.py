"""Typed, attribute-access views over the core's JSON shapes.

The core serialises every result to JSON (a chat response is OpenAI's ``chat.completion``
object plus ``provider``, ``cost_usd`` and ``trace``); the native module hands that over as
plain dicts. These classes only *read* those dicts: no field is computed here that the core
did not send, so they cannot drift from the core. Sub-objects are built on access (most
callers read ``.content`` and nothing else), and ``to_dict()`` returns a deep copy of the
original data, which for a response is the OpenAI shape an openai-SDK caller already knows.
A routed answer comes still native (``_native.NativeAnswer``): ``content`` is read from it,
and it becomes a dict the first time anything else is read; its ``trace`` becomes part of that
dict the first time anything reads the trace (``ChatResponse._whole``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from ._native import NativeAnswer as _NativeAnswer

if TYPE_CHECKING:
    from ._native import NativeTrace

__all__ = [
    "Usage",
    "FunctionCall",
    "ToolCall",
    "Message",
    "Choice",
    "ChatResponse",
    "CandidateTrace",
    "AttemptTrace",
    "RouteTrace",
    "RoutePlan",
    "BreakerSnapshot",
    "DeploymentStatus",
    "PartialOutput",
    "StreamEvent",
    "BudgetStatus",
    "RouteCost",
]

JsonDict = Dict[str, Any]


class _View:
    """A read-only view over one JSON object."""

    __slots__ = ("_d",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        # No copy: views are made over dicts the native module just built for this call.
        self._d: JsonDict = data if isinstance(data, dict) else dict(data)

    def to_dict(self) -> JsonDict:
        """A deep copy of the underlying JSON object."""
        return copy.deepcopy(self._whole())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _View) and type(other) is type(self) and self._whole() == other._whole()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking data: unhashable, like dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._whole()!r})"

    def _whole(self) -> JsonDict:
        """The whole object, parts kept native until read included (``ChatResponse``)."""
        return self._d

    def _get(self, key: str, default: Any = None) -> Any:
        return self._d.get(key, default)


def _opt_str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def _opt_float(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Usage(_View):
    """Token counts, OpenAI's meaning: ``prompt_tokens`` includes cached tokens and
    ``completion_tokens`` includes reasoning tokens."""

    __slots__ = ()

    @property
    def prompt_tokens(self) -> int:
        return _int(self._get("prompt_tokens"))

    @property
    def completion_tokens(self) -> int:
        return _int(self._get("completion_tokens"))

    @property
    def total_tokens(self) -> int:
        return _int(self._get("total_tokens"))

    @property
    def input_tokens(self) -> int:
        """Alias of ``prompt_tokens``."""
        return self.prompt_tokens

    @property
    def output_tokens(self) -> int:
        """Alias of ``completion_tokens``."""
        return self.completion_tokens

    @property
    def cached_tokens(self) -> int:
        details = self._get("prompt_tokens_details") or {}
        return _int(details.get("cached_tokens"))

    @property
    def reasoning_tokens(self) -> int:
        details = self._get("completion_tokens_details") or {}
        return _int(details.get("reasoning_tokens"))


class FunctionCall(_View):
    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self._get("name", ""))

    @property
    def arguments(self) -> str:
        """The arguments as the model wrote them (JSON text, not parsed)."""
        return str(self._get("arguments", ""))


class ToolCall(_View):
    __slots__ = ()

    @property
    def id(self) -> str:
        return str(self._get("id", ""))

    @property
    def type(self) -> str:
        return str(self._get("type", "function"))

    @property
    def function(self) -> FunctionCall:
        return FunctionCall(self._get("function") or {})

    @property
    def name(self) -> str:
        """Shortcut for ``function.name``."""
        return self.function.name

    @property
    def arguments(self) -> str:
        """Shortcut for ``function.arguments``."""
        return self.function.arguments


class Message(_View):
    __slots__ = ()

    @property
    def role(self) -> str:
        return str(self._get("role", "assistant"))

    @property
    def content(self) -> Optional[str]:
        """The text; parts, if a provider answered with parts, are joined."""
        c = self._get("content")
        if c is None or isinstance(c, str):
            return c
        if isinstance(c, list):
            return "".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text")
        return None

    @property
    def tool_calls(self) -> List[ToolCall]:
        return [ToolCall(t) for t in self._get("tool_calls") or []]

    @property
    def refusal(self) -> Optional[str]:
        return _opt_str(self._get("refusal"))

    @property
    def reasoning_content(self) -> Optional[str]:
        return _opt_str(self._get("reasoning_content"))


class Choice(_View):
    __slots__ = ()

    @property
    def index(self) -> int:
        return _int(self._get("index"))

    @property
    def message(self) -> Message:
        return Message(self._get("message") or {})

    @property
    def finish_reason(self) -> Optional[str]:
        return _opt_str(self._get("finish_reason"))

    @property
    def logprobs(self) -> Any:
        return self._get("logprobs")


class CandidateTrace(_View):
    """A deployment the route considered; ``skipped`` says why it was not tried."""

    __slots__ = ()

    @property
    def deployment(self) -> str:
        return str(self._get("deployment", ""))

    @property
    def provider(self) -> str:
        return str(self._get("provider", ""))

    @property
    def model(self) -> str:
        return str(self._get("model", ""))

    @property
    def tier(self) -> int:
        return _int(self._get("tier"))

    @property
    def skipped(self) -> Optional[str]:
        return _opt_str(self._get("skipped"))


class AttemptTrace(_View):
    """One attempt: where it went and how it ended (``outcome`` is ``ok`` or an error kind)."""

    __slots__ = ()

    @property
    def deployment(self) -> str:
        return str(self._get("deployment", ""))

    @property
    def provider(self) -> str:
        return str(self._get("provider", ""))

    @property
    def model(self) -> str:
        return str(self._get("model", ""))

    @property
    def tier(self) -> int:
        return _int(self._get("tier"))

    @property
    def outcome(self) -> str:
        return str(self._get("outcome", ""))

    @property
    def error(self) -> Optional[str]:
        return _opt_str(self._get("error"))

    @property
    def status(self) -> Optional[int]:
        s = self._get("status")
        return s if isinstance(s, int) else None

    @property
    def latency_ms(self) -> float:
        return _opt_float(self._get("latency_ms")) or 0.0

    @property
    def ttft_ms(self) -> Optional[float]:
        return _opt_float(self._get("ttft_ms"))

    @property
    def backoff_ms(self) -> float:
        return _opt_float(self._get("backoff_ms")) or 0.0

    @property
    def usage(self) -> Optional[Usage]:
        u = self._get("usage")
        return Usage(u) if u else None

    @property
    def cost_usd(self) -> Optional[float]:
        return _opt_float(self._get("cost_usd"))

    @property
    def hedge(self) -> bool:
        return bool(self._get("hedge", False))


class RouteTrace(_View):
    """Why a request went where it went: ``explain()`` is the one-sentence answer, the rest
    is the evidence."""

    __slots__ = ()

    def explain(self) -> str:
        return self.explanation

    @property
    def explanation(self) -> str:
        return str(self._get("explanation", ""))

    @property
    def request_id(self) -> str:
        return str(self._get("request_id", ""))

    @property
    def route(self) -> str:
        return str(self._get("route", ""))

    @property
    def matched(self) -> str:
        return str(self._get("matched", ""))

    @property
    def strategy(self) -> str:
        return str(self._get("strategy", ""))

    @property
    def candidates(self) -> List[CandidateTrace]:
        return [CandidateTrace(c) for c in self._get("candidates") or []]

    @property
    def attempts(self) -> List[AttemptTrace]:
        return [AttemptTrace(a) for a in self._get("attempts") or []]

    @property
    def served_by(self) -> Optional[str]:
        return _opt_str(self._get("served_by"))

    @property
    def degraded(self) -> bool:
        return bool(self._get("degraded", False))

    @property
    def cache(self) -> Optional[str]:
        """What the response cache did: ``hit``, ``fallback``, ``miss``, ``stored``,
        ``bypass``; ``None`` when the route does not cache."""
        return _opt_str(self._get("cache"))

    @property
    def total_cost_usd(self) -> Optional[float]:
        return _opt_float(self._get("total_cost_usd"))

    @property
    def total_ms(self) -> float:
        return _opt_float(self._get("total_ms")) or 0.0

    @property
    def notes(self) -> List[str]:
        return [str(n) for n in self._get("notes") or []]

    def __str__(self) -> str:
        return self.explanation


class ChatResponse(_View):
    """A complete answer. Reads like the openai SDK's ``ChatCompletion`` (``choices[0].message
    .content``), with shortcuts (``content``, ``tool_calls``) and Polyroute's additions:
    ``provider``, ``cost_usd`` and ``trace``."""

    # `_n`: the native answer until anything but `content` is read, when it becomes `_d`
    # (building the dict was a tenth of an async call's instructions, and most callers read
    # only `content`). `_trace`: the native route trace until something reads it (converting
    # it was a fifth of a call's instructions). Issue 18.
    __slots__ = ("_trace", "_n")

    def __init__(self, data: "Union[Mapping[str, Any], _NativeAnswer]", trace: "Optional[NativeTrace]" = None) -> None:
        if type(data) is _NativeAnswer:
            # `_d` stays unset: its first read lands in `__getattr__`.
            self._n: Optional[_NativeAnswer] = data
            self._trace: "Optional[NativeTrace]" = None
            return
        # `_View.__init__`'s line, not a `super()` call: this runs once per answer.
        self._d = data if isinstance(data, dict) else dict(data)
        self._n = None
        self._trace = trace

    def __getattr__(self, name: str) -> Any:
        # Only reached for a slot never set: `_d` of an answer still native.
        if name == "_d":
            n = self._n
            if n is not None:
                self._d = d = n.to_dict()
                self._trace = n.trace
                self._n = None
                return d
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _whole(self) -> JsonDict:
        d = self._d
        t = self._trace
        if t is not None:
            d["trace"] = t.to_dict()
            self._trace = None
        return d

    def __reduce__(self) -> "tuple[type[ChatResponse], tuple[JsonDict]]":
        # The native trace does not pickle: the dict, trace converted, does.
        return (type(self), (self._whole(),))

    @property
    def id(self) -> str:
        return str(self._get("id", ""))

    @property
    def object(self) -> str:
        return str(self._get("object", "chat.completion"))

    @property
    def created(self) -> int:
        return _int(self._get("created"))

    @property
    def model(self) -> str:
        """The model that actually served the request, as its provider reported it."""
        return str(self._get("model", ""))

    @property
    def choices(self) -> List[Choice]:
        return [Choice(c) for c in self._get("choices") or []]

    @property
    def message(self) -> Message:
        """The first choice's message."""
        choices = self._get("choices") or []
        return Message(choices[0].get("message") or {}) if choices else Message({})

    @property
    def content(self) -> str:
        """The first choice's text (``""`` when the model only called tools)."""
        n = self._n
        if n is not None:
            return n.content
        return self.message.content or ""

    @property
    def tool_calls(self) -> List[ToolCall]:
        return self.message.tool_calls

    @property
    def finish_reason(self) -> Optional[str]:
        choices = self._get("choices") or []
        return _opt_str(choices[0].get("finish_reason")) if choices else None

    @property
    def usage(self) -> Optional[Usage]:
        u = self._get("usage")
        return Usage(u) if u else None

    @property
    def provider(self) -> Optional[str]:
        """The configured provider that served the request."""
        return _opt_str(self._get("provider"))

    @property
    def cost_usd(self) -> Optional[float]:
        """Cost of the whole request (all attempts) in USD, when prices are known."""
        return _opt_float(self._get("cost_usd"))

    @property
    def cost(self) -> Optional[float]:
        """Alias of ``cost_usd``."""
        return self.cost_usd

    @property
    def trace(self) -> Optional[RouteTrace]:
        t = self._whole().get("trace")
        return RouteTrace(t) if t else None

    @property
    def deployment(self) -> Optional[str]:
        """The deployment that served the request (from the trace)."""
        t = self._whole().get("trace")
        return _opt_str(t.get("served_by")) if t else None

    def explain(self) -> str:
        """Why this request went where it went, in one sentence."""
        t = self.trace
        return t.explain() if t else ""

    @property
    def system_fingerprint(self) -> Optional[str]:
        return _opt_str(self._get("system_fingerprint"))


class RoutePlan(_View):
    """Where a request would go, without sending it."""

    __slots__ = ()

    def explain(self) -> str:
        return self.explanation

    @property
    def explanation(self) -> str:
        return str(self._get("explanation", ""))

    @property
    def route(self) -> str:
        return str(self._get("route", ""))

    @property
    def matched(self) -> str:
        return str(self._get("matched", ""))

    @property
    def strategy(self) -> str:
        return str(self._get("strategy", ""))

    @property
    def order(self) -> List[str]:
        """Eligible deployments in the order they would be tried."""
        return [str(o) for o in self._get("order") or []]

    @property
    def candidates(self) -> List[CandidateTrace]:
        return [CandidateTrace(c) for c in self._get("candidates") or []]


class BreakerSnapshot(_View):
    __slots__ = ()

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled``."""
        return str(self._get("state", ""))

    @property
    def calls_in_window(self) -> int:
        return _int(self._get("calls_in_window"))

    @property
    def failures_in_window(self) -> int:
        return _int(self._get("failures_in_window"))

    @property
    def consecutive_failures(self) -> int:
        return _int(self._get("consecutive_failures"))

    @property
    def retry_in_ms(self) -> Optional[int]:
        r = self._get("retry_in_ms")
        return r if isinstance(r, int) else None

    @property
    def trips(self) -> int:
        return _int(self._get("trips"))

    @property
    def last_error(self) -> Optional[str]:
        return _opt_str(self._get("last_error"))


class DeploymentStatus(_View):
    __slots__ = ()

    @property
    def deployment(self) -> str:
        return str(self._get("deployment", ""))

    @property
    def provider(self) -> str:
        return str(self._get("provider", ""))

    @property
    def model(self) -> str:
        return str(self._get("model", ""))

    @property
    def breaker(self) -> BreakerSnapshot:
        return BreakerSnapshot(self._get("breaker") or {})

    @property
    def ttft_ewma_ms(self) -> Optional[float]:
        return _opt_float(self._get("ttft_ewma_ms"))

    @property
    def ttft_p95_ms(self) -> Optional[float]:
        return _opt_float(self._get("ttft_p95_ms"))

    @property
    def success_rate(self) -> float:
        return _opt_float(self._get("success_rate")) or 0.0


class PartialOutput(_View):
    """What an interrupted stream had delivered. Never a complete answer."""

    __slots__ = ()

    @property
    def text(self) -> str:
        return str(self._get("text", ""))

    @property
    def tool_calls(self) -> List[ToolCall]:
        return [ToolCall(t) for t in self._get("tool_calls") or []]

    @property
    def usage(self) -> Optional[Usage]:
        u = self._get("usage")
        return Usage(u) if u else None


class StreamEvent(_View):
    """One streaming event. ``type`` is one of ``start``, ``content_delta``,
    ``reasoning_delta``, ``refusal_delta``, ``tool_call_delta``, ``usage``, ``finish`` and
    ``reset`` (restart mode: discard what was received, the answer streams again); the other
    attributes are set for the types that carry them and ``None`` otherwise."""

    __slots__ = ()

    @property
    def type(self) -> str:
        return str(self._get("type", ""))

    @property
    def text(self) -> Optional[str]:
        """Content, reasoning or refusal text of a ``*_delta`` event."""
        return _opt_str(self._get("text"))

    @property
    def index(self) -> Optional[int]:
        """Tool call number of a ``tool_call_delta``."""
        i = self._get("index")
        return i if isinstance(i, int) else None

    @property
    def id(self) -> Optional[str]:
        return _opt_str(self._get("id"))

    @property
    def name(self) -> Optional[str]:
        return _opt_str(self._get("name"))

    @property
    def arguments(self) -> Optional[str]:
        return _opt_str(self._get("arguments"))

    @property
    def model(self) -> Optional[str]:
        return _opt_str(self._get("model"))

    @property
    def usage(self) -> Optional[Usage]:
        u = self._get("usage")
        return Usage(u) if u else None

    @property
    def finish_reason(self) -> Optional[str]:
        """Normalised reason of a ``finish`` event (``stop``, ``length``, ``tool_calls``, ...)."""
        return _opt_str(self._get("reason"))

    @property
    def native_finish_reason(self) -> Optional[str]:
        return _opt_str(self._get("native"))

    @property
    def reason(self) -> Optional[str]:
        """``finish``: the finish reason; ``reset``: why the stream restarts."""
        return _opt_str(self._get("reason"))

    @property
    def signature(self) -> Optional[str]:
        return _opt_str(self._get("signature"))


class BudgetStatus(_View):
    """One budget (for one scope value) in its current period."""

    __slots__ = ()

    @property
    def budget(self) -> str:
        return str(self._get("budget", ""))

    @property
    def scope(self) -> str:
        """``all``, ``tenant:acme``, ``route:chat``, ..."""
        return str(self._get("scope", ""))

    @property
    def unit(self) -> str:
        """``usd`` or ``tokens``."""
        return str(self._get("unit", ""))

    @property
    def limit(self) -> float:
        return _opt_float(self._get("limit")) or 0.0

    @property
    def spent(self) -> float:
        return _opt_float(self._get("spent")) or 0.0

    @property
    def reserved(self) -> float:
        """Held by requests in flight (released or settled when they end)."""
        return _opt_float(self._get("reserved")) or 0.0

    @property
    def remaining(self) -> float:
        return _opt_float(self._get("remaining")) or 0.0

    @property
    def resets_at(self) -> float:
        """Unix time (seconds) when the period resets."""
        return _opt_float(self._get("resets_at")) or 0.0


class RouteCost(_View):
    """Requests, successes and spend of one route since the router started."""

    __slots__ = ()

    @property
    def route(self) -> str:
        return str(self._get("route", ""))

    @property
    def requests(self) -> int:
        return _int(self._get("requests"))

    @property
    def successes(self) -> int:
        return _int(self._get("successes"))

    @property
    def total_cost_usd(self) -> float:
        return _opt_float(self._get("total_cost_usd")) or 0.0

    @property
    def cost_per_success_usd(self) -> Optional[float]:
        """Cost of all attempts (failed ones included) divided by successes."""
        return _opt_float(self._get("cost_per_success_usd"))
