"""Server-sent events: split an upstream byte stream into events, and frame events out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None


def _parse_event(block: bytes) -> SSEEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # nearly every event: one line
        return SSEEvent(block[6:])
    data_lines: list[bytes] = []
    event: str | None = None
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data_lines.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        # comments (": ping"), id: and retry: lines carry nothing we forward
    if not data_lines:
        return None
    return SSEEvent(b"\n".join(data_lines), event)


def split_events(buffer: bytes, chunk: bytes) -> tuple[list[SSEEvent], bytes]:
    """The complete events in `buffer + chunk`, and the incomplete rest to keep.

    A plain function so a reader loop can call it without an async-generator layer per
    network read (relaying slow streams is dominated by such per-chunk overheads).
    """
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n")
    buffer = buffer + chunk if buffer else chunk
    if b"\n\n" not in buffer:
        return [], buffer
    *blocks, rest = buffer.split(b"\n\n")
    return [event for block in blocks if (event := _parse_event(block)) is not None], rest


def final_event(buffer: bytes) -> SSEEvent | None:
    """A partial event left when the stream ended (the caller judges if it was truncated)."""
    return _parse_event(buffer.strip(b"\n")) if buffer.strip() else None


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield the complete events of each network read as one batch (fewer writes downstream).

    A partial event at the end of the stream is yielded too: the caller decides whether an
    upstream that stopped without `[DONE]` was truncated.
    """
    buffer = b""
    async for chunk in chunks:
        batch, buffer = split_events(buffer, chunk)
        if batch:
            yield batch
    tail = final_event(buffer)
    if tail is not None:
        yield [tail]


def frame_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def frame_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def frame_named(event_type: str, obj: object) -> bytes:
    """Responses API framing: an `event:` line naming the type, then the JSON payload."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
