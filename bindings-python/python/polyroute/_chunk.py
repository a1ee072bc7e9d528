"""Views over OpenAI ``chat.completion.chunk`` objects, as ``Stream.chunks()`` yields them.

The attribute names are those of the openai SDK's ``ChatCompletionChunk`` (``chunk.choices[0]
.delta.content``, ``.delta.tool_calls[0].function.arguments``, ``chunk.usage``), so a loop
written for ``client.chat.completions.create(stream=True)`` reads these unchanged, without
importing openai. The chunks themselves are built by the core (``StreamHandle::
next_chunk_value``, the same writer the gateway streams with); this module only reads them.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ._types import Usage, _int, _opt_str, _View

__all__ = [
    "ChatCompletionChunk",
    "ChunkChoice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
]


class ChoiceDeltaToolCallFunction(_View):
    """A piece of a tool call: ``name`` on its first piece, ``arguments`` text on every one."""

    __slots__ = ()

    @property
    def name(self) -> Optional[str]:
        return _opt_str(self._get("name"))

    @property
    def arguments(self) -> Optional[str]:
        return _opt_str(self._get("arguments"))


class ChoiceDeltaToolCall(_View):
    """A piece of tool call number ``index``; ``id`` and ``type`` come with its first piece."""

    __slots__ = ()

    @property
    def index(self) -> int:
        return _int(self._get("index"))

    @property
    def id(self) -> Optional[str]:
        return _opt_str(self._get("id"))

    @property
    def type(self) -> Optional[str]:
        return _opt_str(self._get("type"))

    @property
    def function(self) -> ChoiceDeltaToolCallFunction:
        # Always an object (openai's may be None): `tc.function.arguments` needs no guard.
        return ChoiceDeltaToolCallFunction(self._get("function") or {})


class ChoiceDelta(_View):
    """What one chunk adds to the message; fields it does not carry are ``None``."""

    __slots__ = ()

    @property
    def role(self) -> Optional[str]:
        return _opt_str(self._get("role"))

    @property
    def content(self) -> Optional[str]:
        return _opt_str(self._get("content"))

    @property
    def refusal(self) -> Optional[str]:
        return _opt_str(self._get("refusal"))

    @property
    def reasoning_content(self) -> Optional[str]:
        return _opt_str(self._get("reasoning_content"))

    @property
    def tool_calls(self) -> Optional[List[ChoiceDeltaToolCall]]:
        calls = self._get("tool_calls")
        return [ChoiceDeltaToolCall(t) for t in calls] if calls else None


class ChunkChoice(_View):
    __slots__ = ()

    @property
    def index(self) -> int:
        return _int(self._get("index"))

    @property
    def delta(self) -> ChoiceDelta:
        return ChoiceDelta(self._get("delta") or {})

    @property
    def finish_reason(self) -> Optional[str]:
        """Set on the last chunk of the answer (``stop``, ``length``, ``tool_calls``, ...)."""
        return _opt_str(self._get("finish_reason"))

    @property
    def logprobs(self) -> Any:
        return self._get("logprobs")


class ChatCompletionChunk(_View):
    """One OpenAI ``chat.completion.chunk``. The last one before the end has no choices and
    carries the answer's ``usage`` (``None`` on every other chunk), as openai streams with
    ``stream_options={"include_usage": True}``."""

    __slots__ = ()

    @property
    def id(self) -> str:
        return str(self._get("id", ""))

    @property
    def object(self) -> str:
        return str(self._get("object", "chat.completion.chunk"))

    @property
    def created(self) -> int:
        return _int(self._get("created"))

    @property
    def model(self) -> str:
        """The model serving the stream, as its provider reported it."""
        return str(self._get("model", ""))

    @property
    def choices(self) -> List[ChunkChoice]:
        return [ChunkChoice(c) for c in self._get("choices") or []]

    @property
    def usage(self) -> Optional[Usage]:
        u = self._get("usage")
        return Usage(u) if u else None

    @property
    def system_fingerprint(self) -> Optional[str]:
        return _opt_str(self._get("system_fingerprint"))

    @property
    def service_tier(self) -> Optional[str]:
        return _opt_str(self._get("service_tier"))
