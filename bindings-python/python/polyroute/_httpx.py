"""Drop-in under the openai SDK: an httpx transport that answers in-process through a router.

::

    client = openai.OpenAI(api_key="unused", max_retries=0, http_client=polyroute.http_client(router))
    aclient = openai.AsyncOpenAI(api_key="unused", max_retries=0, http_client=polyroute.async_http_client(router))

Every ``POST .../chat/completions`` is answered by the router, with no socket and no gateway:
the body is exactly what OpenAI would send (JSON, or SSE of ``chat.completion.chunk`` ending
``data: [DONE]``), failures are the status and OpenAI error body that make the SDK raise its
own exception, and a stream cut after content ends with an ``{"error": ...}`` event (the SDK
raises ``APIError``). The answer is the core's (``polyroute::bridge::openai_http``, the same
code as the ``polyroute serve`` gateway); this module only moves bytes between httpx and the
native router. Any other path is a 404 in OpenAI's error shape.

httpx is optional: it is imported when a client is built. openai-python 3.x uses ``httpx2``
(the same API under another name), older versions ``httpx``; the library is picked to match
the installed openai (``library=`` to choose).

The async transport runs on asyncio (the router's completions wake the loop through
``add_reader``; trio is not supported). Deadlines are the policy's: the SDK's ``timeout=`` is
not applied to the routed call.

The router retries and fails over: set ``max_retries=0`` on the openai client. The SDK sends
``x-stainless-retry-count`` with every request; the first time it is above 0 (the SDK is
retrying on top of the router) this module warns once per process.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple, Union

from . import _native
from ._router import _future

if TYPE_CHECKING:
    from ._router import AsyncRouter, Router

    RouterLike = Union[Router, AsyncRouter]

__all__ = ["http_client", "async_http_client", "RetryOnTopWarning"]

#: Base URL the clients get (any host works: nothing is resolved or connected).
BASE_URL = "http://polyroute.invalid/v1"


class RetryOnTopWarning(UserWarning):
    """The openai SDK retried a request the router had already retried (``max_retries`` > 0)."""


_warned_retry = False


def _warn_if_sdk_retries(headers: List[Tuple[str, str]]) -> None:
    global _warned_retry
    if _warned_retry:
        return
    for name, value in headers:
        if name.lower() == "x-stainless-retry-count" and value.strip() not in ("", "0"):
            _warned_retry = True
            warnings.warn(
                "the openai client is retrying a request polyroute already retried and failed over "
                "(its max_retries > 0): create it with max_retries=0",
                RetryOnTopWarning,
                stacklevel=2,
            )
            return


def _library(library: Optional[str]) -> ModuleType:
    """httpx2 or httpx: the one asked for, else the one the installed openai uses, else
    whichever is installed."""
    names: List[str]
    if library is not None:
        if library not in ("httpx", "httpx2"):
            raise ValueError(f"library must be 'httpx' or 'httpx2', not {library!r}")
        names = [library]
    else:
        # Here, not at module level: it is a large part of a cold `import polyroute`.
        from importlib import metadata

        try:
            requires = metadata.requires("openai") or []
        except metadata.PackageNotFoundError:
            requires = []
        uses_httpx2 = any(r.replace(" ", "").lower().startswith("httpx2") for r in requires)
        names = ["httpx2", "httpx"] if uses_httpx2 or not requires else ["httpx", "httpx2"]
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        "polyroute.http_client() needs httpx (or httpx2, which openai>=3 uses): pip install httpx; "
        "it is an optional dependency of polyroute"
    ) from None


def _is_chat(request: Any) -> bool:
    return bool(request.method == "POST" and request.url.path.rstrip("/").endswith("/chat/completions"))


def _request_headers(request: Any) -> List[Tuple[str, str]]:
    headers: List[Tuple[str, str]] = [(k, v) for k, v in request.headers.multi_items()]
    _warn_if_sdk_retries(headers)
    # All of them: which headers mean something (routing, the SDK's timeout) is the core's
    # call, as it is for the gateway.
    return headers


def _not_found(request: Any) -> "_native._OpenAiReply":
    status, headers, body = _native.openai_not_found(
        f"no such endpoint: {request.method} {request.url.path} (polyroute's transport serves POST /v1/chat/completions)"
    )
    return status, headers, body


_CLASSES: Dict[str, Tuple[type, type]] = {}


def _classes(hx: ModuleType) -> Tuple[type, type]:
    """The transport classes for one httpx-API library (built once per library)."""
    cached = _CLASSES.get(hx.__name__)
    if cached is not None:
        return cached

    # The library's classes, as values (it is chosen at run time).
    sync_stream: Any = hx.SyncByteStream
    async_stream: Any = hx.AsyncByteStream
    sync_transport: Any = hx.BaseTransport
    async_transport: Any = hx.AsyncBaseTransport

    class SseBody(sync_stream):  # type: ignore[misc]
        def __init__(self, sse: _native.NativeSse) -> None:
            self._sse = sse

        def __iter__(self) -> Iterator[bytes]:
            while True:
                frame = self._sse.next()
                if frame is None:
                    return
                yield frame

        def close(self) -> None:
            self._sse.close()

    class AsyncSseBody(async_stream):  # type: ignore[misc]
        def __init__(self, sse: _native.NativeSse) -> None:
            self._sse = sse

        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                bridge, fut = _future()
                self._sse.next_async(bridge, fut)
                frame: Optional[bytes] = await fut
                if frame is None:
                    return
                yield frame

        async def aclose(self) -> None:
            self._sse.close()

    def response(request: Any, reply: "_native._OpenAiReply", stream_cls: type) -> Any:
        status, headers, body = reply
        if isinstance(body, bytes):
            return hx.Response(status, headers=headers, content=body, request=request)
        return hx.Response(status, headers=headers, stream=stream_cls(body), request=request)

    class Transport(sync_transport):  # type: ignore[misc]
        """Answers chat completions through a router, in-process (see ``polyroute.http_client``)."""

        def __init__(self, router: "RouterLike") -> None:
            self._native = router._native

        def handle_request(self, request: Any) -> Any:
            if not _is_chat(request):
                return response(request, _not_found(request), SseBody)
            reply = self._native.openai_chat(request.read(), _request_headers(request))
            return response(request, reply, SseBody)

    class AsyncTransport(async_transport):  # type: ignore[misc]
        """The asyncio twin of the transport (see ``polyroute.async_http_client``)."""

        def __init__(self, router: "RouterLike") -> None:
            self._native = router._native

        async def handle_async_request(self, request: Any) -> Any:
            if not _is_chat(request):
                return response(request, _not_found(request), AsyncSseBody)
            body = await request.aread()
            bridge, fut = _future()
            self._native.openai_chat_async(bridge, fut, body, _request_headers(request))
            reply: "_native._OpenAiReply" = await fut
            return response(request, reply, AsyncSseBody)

    _CLASSES[hx.__name__] = (Transport, AsyncTransport)
    return Transport, AsyncTransport


def http_client(router: "RouterLike", *, library: Optional[str] = None, **client_kwargs: Any) -> Any:
    """An ``httpx.Client`` (``httpx2.Client`` under openai 3.x) whose chat-completion requests
    are answered by ``router`` in-process: pass it as the openai client's ``http_client``
    (with ``max_retries=0``). ``library`` picks ``"httpx"`` or ``"httpx2"``; other keyword
    arguments go to the client (``base_url`` defaults to a placeholder: nothing connects)."""
    hx = _library(library)
    transport, _ = _classes(hx)
    client_kwargs.setdefault("base_url", BASE_URL)
    return hx.Client(transport=transport(router), **client_kwargs)


def async_http_client(router: "RouterLike", *, library: Optional[str] = None, **client_kwargs: Any) -> Any:
    """:func:`http_client` for ``openai.AsyncOpenAI``: an ``httpx.AsyncClient`` (or
    ``httpx2.AsyncClient``) answered by ``router`` on the running event loop."""
    hx = _library(library)
    _, transport = _classes(hx)
    client_kwargs.setdefault("base_url", BASE_URL)
    return hx.AsyncClient(transport=transport(router), **client_kwargs)
