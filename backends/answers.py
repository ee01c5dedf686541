"""Answer fixes shared by the family drivers, for JSON answers and for stream chunks.

The documented shape (docs/backends.md, "Answers"): reasoning text is always in `reasoning`
(vLLM's current name, which NeMo Gym reads); an engine that used `reasoning_content`
(SGLang, vLLM before 0.11) keeps that field too. Every other field of an answer is kept as
the engine sent it.

Stream chunks stay bytes: each transform looks for a byte pattern first and parses only the
chunks that need a change, so a family with nothing to fix costs one substring search.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from backends.base import ChatStream

ChunkTransform = Callable[[bytes], bytes]

_REASONING_CONTENT = re.compile(rb'"reasoning_content"\s*:\s*"')


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def alias_reasoning(message: dict[str, Any]) -> None:
    """Copy `reasoning_content` into `reasoning` when only the former is set."""
    text = message.get("reasoning_content")
    if text is not None and message.get("reasoning") is None:
        message["reasoning"] = text


def choices_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    choices = answer.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def answer_problem(answer: dict[str, Any], item: str | None) -> str | None:
    """Why an upstream's 200 is no Chat answer (`item` "message") or Completions answer
    (`item` None), or None. Only the shape every client reads; other fields pass as sent."""
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return "has no 'choices' list" if choices is None else "has a 'choices' that is no list"
    for choice in choices:
        if not isinstance(choice, dict):
            return "has a choice that is not a JSON object"
        if item is not None and not isinstance(choice.get(item), dict):
            return f"has a choice without a '{item}' object"
    return None


def normalize_reasoning(answer: dict[str, Any]) -> dict[str, Any]:
    for choice in choices_of(answer):
        message = choice.get("message")
        if isinstance(message, dict):
            alias_reasoning(message)
    return answer


def reasoning_chunk(payload: bytes) -> bytes:
    """Stream form of normalize_reasoning: only chunks with reasoning text are parsed."""
    if b'"reasoning_content"' not in payload or not _REASONING_CONTENT.search(payload):
        return payload
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(doc, dict):
        return payload
    for choice in choices_of(doc):
        delta = choice.get("delta")
        if isinstance(delta, dict):
            alias_reasoning(delta)
    return orjson.dumps(doc)


def fix_tool_finish(
    answer: dict[str, Any], renames: dict[str, str] | None = None
) -> dict[str, Any]:
    """finish_reason "tool_calls" whenever a choice made tool calls (TGI and Gemini report the
    generation's own reason, usually "stop"), plus family-specific renames."""
    for choice in choices_of(answer):
        message = choice.get("message")
        reason = choice.get("finish_reason")
        if isinstance(message, dict) and message.get("tool_calls"):
            if reason in (None, "stop", "eos_token", "stop_sequence"):
                choice["finish_reason"] = "tool_calls"
        elif renames and reason in renames:
            choice["finish_reason"] = renames[reason]
    return answer


class FinishFixer:
    """Stream form of fix_tool_finish; one per stream (it remembers whether a call was made).

    `on_chunk` lets a family fix other fields of the (rare) chunks it parses anyway.
    """

    def __init__(
        self,
        renames: dict[str, str] | None = None,
        on_chunk: Callable[[dict[str, Any], FinishFixer], None] | None = None,
    ) -> None:
        self.renames = renames or {}
        self.on_chunk = on_chunk
        self.saw_tool_call = False
        self._reasons = [b'"finish_reason":"' + r.encode() + b'"' for r in self.renames]

    def _needs_parse(self, payload: bytes) -> bool:
        if b'"tool_calls":[{' in payload or b'"tool_calls": [{' in payload:
            return True
        if self.saw_tool_call and (
            b'"finish_reason":"' in payload or b'"finish_reason": "' in payload
        ):
            return True
        return any(r in payload for r in self._reasons)

    def __call__(self, payload: bytes) -> bytes:
        if not self._needs_parse(payload):
            return payload
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload
        if not isinstance(doc, dict):
            return payload
        for choice in choices_of(doc):
            delta = choice.get("delta")
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self.saw_tool_call = True
            reason = choice.get("finish_reason")
            if reason is None:
                continue
            if self.saw_tool_call and reason in ("stop", "eos_token", "stop_sequence"):
                choice["finish_reason"] = "tool_calls"
            elif reason in self.renames:
                choice["finish_reason"] = self.renames[reason]
        if self.on_chunk is not None:
            self.on_chunk(doc, self)
        return orjson.dumps(doc)


def chain(*transforms: ChunkTransform) -> ChunkTransform:
    def run(payload: bytes) -> bytes:
        for transform in transforms:
            payload = transform(payload)
        return payload

    return run


class TransformedStream(ChatStream):
    """An upstream stream whose chunks pass through a per-chunk transform."""

    def __init__(self, inner: ChatStream, transform: ChunkTransform) -> None:
        self._inner = inner
        self._transform = transform

    @property
    def saw_done(self) -> bool:
        return getattr(self._inner, "saw_done", True)

    async def _events(self) -> AsyncIterator[list[bytes]]:
        transform = self._transform
        async for batch in self._inner:
            yield [transform(p) for p in batch]

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._events()

    async def aclose(self) -> None:
        await self._inner.aclose()
