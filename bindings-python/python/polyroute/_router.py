"""``Router`` (blocking) and ``AsyncRouter`` (asyncio): the public face of the native router.

``chat()`` takes the arguments of ``openai.chat.completions.create`` so moving from the
openai SDK is a one-line change (``timeout=`` included), plus ``polyroute={...}`` (routing:
``route``, ``tenant``, ``feature``, ``tier``, ``tags``, ``data_class``, ``order``, ``timeout``)
and its ``route=`` shortcut. ``metadata=`` is OpenAI's own, forwarded like any other
parameter. This module only wraps results; ``_request.py`` assembles the body, and parsing
and validation of it, and the ``route`` shortcut, happen in the core (``polyroute::bridge``),
whose ``invalid_request`` error is raised as :class:`~polyroute.InvalidRequestError`, a
``ValueError``, before anything is sent. Which keyword arguments exist is the core's list
too (``_native.REQUEST_FIELDS``).

Streams read as events (iterate the stream) or as OpenAI chunks (``chunks()``), one or the
other, and fold into the same ``ChatResponse`` as ``chat()`` (``final_response()``).

A policy is a dict (``Router(policy_dict)``), a file (``Router(path)``, ``Router.from_file``)
or text (``Router.from_text``): a string given to the constructor is always a path.
"""

from __future__ import annotations

import os
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    AsyncIterator,
    Iterator,
    List,
    Mapping,
    Optional,
    Union,
    overload,
)

from . import _native
from ._chunk import ChatCompletionChunk
from ._request import ChatParams, MessageLike
from ._request import body as _body
from ._types import BudgetStatus, ChatResponse, DeploymentStatus, RouteCost, RoutePlan, RouteTrace, StreamEvent

if TYPE_CHECKING:
    # Imported when first needed at run time (asyncio alone is most of a cold import).
    import asyncio
    from types import TracebackType
    from typing import Literal, Type

    from typing_extensions import Self, Unpack

__all__ = ["Router", "AsyncRouter", "Stream", "AsyncStream", "ChatParams", "MessageLike", "PolicyLike", "EventCallback"]

#: A policy: a dict, or the path of a YAML/JSON file (``str`` or ``os.PathLike``). Policy
#: text goes through ``from_text`` / ``reload_text``.
PolicyLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]

#: Breaker states accepted by ``set_breaker``.
BreakerStateName = str

#: A router event callback: receives each event as a dict with a ``type`` key
#: (``request_started``, ``attempt_started``, ``attempt_finished``, ``fallback_taken``,
#: ``breaker_changed``, ``request_finished``, ``budget_threshold``, ...).
EventCallback = Callable[[Dict[str, Any]], object]


# One completion bridge per event loop (see src/aio.rs): finished requests wake the loop
# through a socket pair, so no native thread ever needs the GIL. The native side writes to
# one end; the loop watches the other with add_reader where it can (selector loops, uvloop)
# and with a task awaiting sock_recv where it cannot (Windows' default ProactorEventLoop).
_BRIDGES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bridge]" = weakref.WeakKeyDictionary()


class _Bridge:
    """A loop's `_native.LoopBridge` and the read end of its wake-up socket pair."""

    __slots__ = ("native", "_sock", "_pump", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop, use_reader: bool = True) -> None:
        import socket

        rsock, wsock = socket.socketpair()
        rsock.setblocking(False)
        self._sock = rsock
        self._pump: Optional["asyncio.Task[None]"] = None
        try:
            if not use_reader:
                raise NotImplementedError
            loop.add_reader(rsock.fileno(), self._on_readable)
            readers = True
        except NotImplementedError:
            readers = False
        # The native side owns the write end from here (and closes it). A loop that watches
        # sockets for us can also run calls itself, their sockets watched the same way.
        self.native = _native.LoopBridge(wsock.detach(), readers)
        # Driven calls' sockets, all in one set (Linux): one descriptor watched for good.
        sockets = self.native.sockets_fd
        if sockets is not None:
            loop.add_reader(sockets, self.native.poll_sockets)
        if not readers:
            self._pump = loop.create_task(self._pump_loop(loop))

    def _on_readable(self) -> None:
        try:
            while len(self._sock.recv(4096)) == 4096:
                pass
        except (BlockingIOError, InterruptedError):
            pass
        # A loop callback, not a task: the calls it resolves resume at its end.
        self.native.drain(eager=True)

    async def _pump_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while await loop.sock_recv(self._sock, 4096):
                self.native.drain()
        finally:
            # Cancelled when the loop shuts down (asyncio.run cancels every task): release
            # both descriptors now; the task and loop form a cycle only GC would break.
            self._sock.close()
            self.native.close()
            # The ended task holds the loop, and `_BRIDGES` keeps this bridge (and so the task)
            # as long as the loop lives: a cycle through a weak dict's value, never collected.
            self._pump = None


# The loop the last call ran on and its bridge, both weakly (a closed loop's bridge must go
# with it): nearly every program has one loop, and this skips `_BRIDGES`'s lookup, which
# makes a weakref per call. `asyncio.get_running_loop`, once asyncio is imported.
_last: "Optional[tuple[weakref.ReferenceType[asyncio.AbstractEventLoop], weakref.ReferenceType[_Bridge]]]" = None
_running_loop: "Optional[Callable[[], asyncio.AbstractEventLoop]]" = None


def _future() -> "tuple[_native.LoopBridge, _native.Waiter]":
    global _last, _running_loop
    running = _running_loop
    if running is None:
        # Not at module level: a sync-only program never pays for importing asyncio.
        import asyncio

        running = _running_loop = asyncio.get_running_loop
    loop = running()
    last = _last
    bridge = last[1]() if last is not None and last[0]() is loop else None
    if bridge is None:
        bridge = _BRIDGES.get(loop)
        if bridge is None:
            bridge = _BRIDGES[loop] = _Bridge(loop, use_reader=not _FORCE_PUMP)
        _last = (weakref.ref(loop), weakref.ref(bridge))
    # Not `loop.create_future()`: a Waiter wakes its task in the loop callback that resolved
    # it, one loop turn sooner (src/waiter.rs).
    return bridge.native, _native.Waiter(loop)


# Tests set this to run the proactor loop's path (a task awaiting sock_recv) on Linux.
_FORCE_PUMP = os.environ.get("POLYROUTE_ASYNC_WAKE") == "pump"


def _native_router(policy: PolicyLike) -> _native.NativeRouter:
    if isinstance(policy, Mapping):
        return _native.NativeRouter.from_dict(dict(policy))
    if isinstance(policy, (str, os.PathLike)):
        return _native.NativeRouter.from_file(os.fspath(policy))
    raise TypeError(f"policy must be a dict or the path of a policy file, not {type(policy).__name__}")


def _reload(native: _native.NativeRouter, policy: PolicyLike) -> None:
    if isinstance(policy, Mapping):
        native.reload_dict(dict(policy))
    elif isinstance(policy, (str, os.PathLike)):
        native.reload_file(os.fspath(policy))
    else:
        raise TypeError(f"policy must be a dict or the path of a policy file, not {type(policy).__name__}")


class _RouterBase:
    __slots__ = ("_native",)

    def __init__(self, policy: PolicyLike) -> None:
        """Build from a policy: a dict, or the path of a YAML/JSON policy file (``str`` or
        ``os.PathLike``; a string is always a path, never policy text: use
        :meth:`from_text` for that). An invalid policy raises
        :class:`~polyroute.ConfigError` listing every problem (an unreadable file too)."""
        self._native = _native_router(policy)

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "Self":
        """Build from a YAML/JSON policy file."""
        self = cls.__new__(cls)
        self._native = _native.NativeRouter.from_file(os.fspath(path))
        return self

    @classmethod
    def from_text(cls, text: str) -> "Self":
        """Build from policy text, YAML or JSON."""
        self = cls.__new__(cls)
        self._native = _native.NativeRouter.from_text(text)
        return self

    @classmethod
    def from_dict(cls, policy: Mapping[str, Any]) -> "Self":
        """Build from a policy given as a dict (the structure of the YAML file)."""
        self = cls.__new__(cls)
        self._native = _native.NativeRouter.from_dict(dict(policy))
        return self

    def plan(self, messages: Iterable[MessageLike], **params: "Unpack[ChatParams]") -> RoutePlan:
        """Where this request would go, and why, without sending anything."""
        return RoutePlan(self._native.plan(_body(messages, params, "plan")))

    def reload(self, policy: PolicyLike) -> None:
        """Swap the policy atomically: a dict, or the path of a policy file (as the
        constructor). An invalid policy raises ``ConfigError`` and the current one keeps
        serving; breaker state survives for unchanged deployments."""
        _reload(self._native, policy)

    def reload_text(self, text: str) -> None:
        """:meth:`reload` from policy text, YAML or JSON."""
        self._native.reload_text(text)

    @property
    def policy(self) -> Dict[str, Any]:
        """The policy currently serving (literal API keys are never included)."""
        result: Dict[str, Any] = self._native.policy()
        return result

    def deployments(self) -> List[DeploymentStatus]:
        """Breaker state and health of every deployment."""
        return [DeploymentStatus(d) for d in self._native.deployments()]

    def breaker(self, deployment: str) -> DeploymentStatus:
        """Breaker state and health of one deployment (``KeyError`` if unknown)."""
        for d in self._native.deployments():
            if d.get("deployment") == deployment:
                return DeploymentStatus(d)
        raise KeyError(deployment)

    def set_breaker(self, deployment: str, state: BreakerStateName) -> None:
        """Force a breaker: ``closed`` (reset), ``open``, ``half_open``, ``forced_open``
        (stays open until changed) or ``disabled`` (never opens)."""
        self._native.set_breaker(deployment, state)

    def reset_breaker(self, deployment: str) -> None:
        """Close a deployment's breaker and forget its failures."""
        self._native.reset_breaker(deployment)

    def budgets(self) -> List[BudgetStatus]:
        """Spent, reserved and remaining of every budget in its current period."""
        return [BudgetStatus(b) for b in self._native.budgets()]

    def route_costs(self) -> List[RouteCost]:
        """Per route: requests, successes, total cost and cost per success."""
        return [RouteCost(c) for c in self._native.route_costs()]

    def metrics_text(self) -> str:
        """This router's metrics in the Prometheus text format (serve it at ``/metrics``)."""
        return self._native.metrics_text()

    def subscribe(self, callback: EventCallback) -> int:
        """Call ``callback(event)`` for every router event; returns an id for
        :meth:`unsubscribe`. Events are dicts with a ``type`` key and never contain prompt or
        answer text. The callback runs on a delivery thread of its own, in event order (from
        asyncio, hand events over with ``loop.call_soon_threadsafe``); a slow callback drops
        events rather than slowing requests, and an exception in it is reported through
        ``sys.unraisablehook``."""
        return self._native.subscribe(callback)

    def unsubscribe(self, subscription: int) -> bool:
        """Stop a subscription; ``False`` if it was not active."""
        return self._native.unsubscribe(subscription)


class Router(_RouterBase):
    """A blocking router. Thread-safe: share one between threads. Calls release the GIL
    while they wait, and Ctrl-C cancels the request in flight."""

    __slots__ = ()

    @overload
    def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: "Literal[False]" = False,
        **params: "Unpack[ChatParams]",
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: "Literal[True]",
        **params: "Unpack[ChatParams]",
    ) -> "Stream": ...

    def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: bool = False,
        **params: "Unpack[ChatParams]",
    ) -> Union[ChatResponse, "Stream"]:
        """Send a chat request and return the whole answer (or, with ``stream=True``, a
        :class:`Stream`, as the openai SDK does)."""
        if stream:
            return Stream(self._native.stream(_body(messages, params, "chat")))
        return ChatResponse(self._native.chat(_body(messages, params, "chat")))

    def stream(self, messages: Iterable[MessageLike], **params: "Unpack[ChatParams]") -> "Stream":
        """Open a stream. Returns once the answer has started (failures before the first
        content fail over invisibly) or raises if no deployment could start it."""
        return Stream(self._native.stream(_body(messages, params, "stream")))


class AsyncRouter(_RouterBase):
    """An asyncio router. Cancelling the task that awaits a call aborts the request."""

    __slots__ = ()

    @overload
    async def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: "Literal[False]" = False,
        **params: "Unpack[ChatParams]",
    ) -> ChatResponse: ...

    @overload
    async def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: "Literal[True]",
        **params: "Unpack[ChatParams]",
    ) -> "AsyncStream": ...

    async def chat(
        self,
        messages: Iterable[MessageLike],
        *,
        stream: bool = False,
        **params: "Unpack[ChatParams]",
    ) -> Union[ChatResponse, "AsyncStream"]:
        """Send a chat request and return the whole answer (or, with ``stream=True``, an
        :class:`AsyncStream`)."""
        body = _body(messages, params, "chat")
        bridge, fut = _future()
        if stream:
            self._native.stream_async(bridge, fut, body)
            return AsyncStream(await fut)
        self._native.chat_async(bridge, fut, body)
        return ChatResponse(await fut)

    async def stream(self, messages: Iterable[MessageLike], **params: "Unpack[ChatParams]") -> "AsyncStream":
        """Open a stream (``async for event in await router.stream(...)``)."""
        body = _body(messages, params, "stream")
        bridge, fut = _future()
        self._native.stream_async(bridge, fut, body)
        return AsyncStream(await fut)


class _StreamBase:
    __slots__ = ("_native", "_reading", "_ahead")

    def __init__(self, native: _native.NativeStream) -> None:
        self._native = native
        # "events" or "chunks" once read: the core folds one reading into chunks, so a stream
        # read both ways would hand out chunks that start mid-answer.
        self._reading: Optional[str] = None
        # What one read brought beyond the item it waited for (events that had already
        # arrived), last first: a burst of chunks costs one crossing into the core, not one
        # per chunk. The core keeps an end or a failure for the read after them.
        self._ahead: List[Dict[str, Any]] = []

    def _read_as(self, how: str) -> None:
        if self._reading != how:
            if self._reading is not None:
                raise RuntimeError(f"this stream is being read as {self._reading}; read it either as events or as chunks(), not both")
            self._reading = how

    def _keep(self, batch: List[Dict[str, Any]]) -> None:
        # Behind what is already kept (a reader in another thread or task may have kept some
        # meanwhile), last first; one list operation, atomic under the GIL.
        batch.reverse()
        self._ahead[:0] = batch

    @property
    def closed(self) -> bool:
        """Whether the stream has ended, failed or been closed."""
        return self._native.closed

    @property
    def trace(self) -> Optional[RouteTrace]:
        """The route trace, once the stream has ended (``None`` before)."""
        t = self._native.trace()
        return RouteTrace(t) if t is not None else None

    def close(self) -> None:
        """Stop reading and cancel the request. Idempotent. A read waiting in another
        thread or task raises :class:`~polyroute.RequestCancelledError`."""
        # Reads after close end, including those of items that had already arrived.
        self._ahead = []
        self._native.close()


class Stream(_StreamBase):
    """One streamed answer, read as events (iterate it) or as OpenAI chunks (:meth:`chunks`),
    one or the other; :meth:`final_response` folds it into the whole answer. Use as a
    context manager, or ``close()`` it, to cancel the request early."""

    __slots__ = ()

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> StreamEvent:
        if self._reading != "events":
            self._read_as("events")
        if not self._ahead:
            batch = self._native.next_batch()
            if batch is None:
                raise StopIteration
            self._keep(batch)
        return StreamEvent(self._ahead.pop())

    def chunks(self) -> Iterator[ChatCompletionChunk]:
        """The answer as OpenAI ``chat.completion.chunk`` objects, read like the openai SDK's
        ``ChatCompletionChunk`` (``chunk.choices[0].delta.content``), the last one carrying
        ``usage``. A failure after content raises as iterating events does
        (:class:`~polyroute.StreamInterruptedError`); so does a restart (``stream_recovery:
        restart``), which chunks cannot express."""
        self._read_as("chunks")
        while True:
            if not self._ahead:
                batch = self._native.next_chunk_batch()
                if batch is None:
                    return
                self._keep(batch)
            yield ChatCompletionChunk(self._ahead.pop())

    def final_response(self) -> ChatResponse:
        """The whole answer, as :meth:`Router.chat` would have returned it (usage,
        ``cost_usd``, trace): reads what is left of the stream first. Raises the error the
        stream failed with, or :class:`~polyroute.RequestCancelledError` if it was closed
        before its end."""
        return ChatResponse(self._native.final_response())

    def get_final_completion(self) -> ChatResponse:
        """Alias of :meth:`final_response` (the openai SDK's name)."""
        return self.final_response()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(
        self,
        exc_type: "Optional[Type[BaseException]]",
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """One streamed answer, read as events (``async for``) or as OpenAI chunks
    (:meth:`chunks`), one or the other; ``await`` :meth:`final_response` for the whole answer.
    ``async with`` it, or ``await aclose()``, to cancel the request early."""

    __slots__ = ()

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> StreamEvent:
        if self._reading != "events":
            self._read_as("events")
        if not self._ahead:
            bridge, fut = _future()
            self._native.next_batch_async(bridge, fut)
            batch: Optional[List[Dict[str, Any]]] = await fut
            if batch is None:
                raise StopAsyncIteration
            self._keep(batch)
        return StreamEvent(self._ahead.pop())

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        """:meth:`Stream.chunks` for asyncio (``async for chunk in stream.chunks()``)."""
        self._read_as("chunks")
        while True:
            if not self._ahead:
                bridge, fut = _future()
                self._native.next_chunk_batch_async(bridge, fut)
                batch: Optional[List[Dict[str, Any]]] = await fut
                if batch is None:
                    return
                self._keep(batch)
            yield ChatCompletionChunk(self._ahead.pop())

    async def final_response(self) -> ChatResponse:
        """:meth:`Stream.final_response` for asyncio."""
        bridge, fut = _future()
        self._native.final_response_async(bridge, fut)
        return ChatResponse(await fut)

    async def get_final_completion(self) -> ChatResponse:
        """Alias of :meth:`final_response` (the openai SDK's name)."""
        return await self.final_response()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncStream":
        return self

    async def __aexit__(
        self,
        exc_type: "Optional[Type[BaseException]]",
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        self.close()
