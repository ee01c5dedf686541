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


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield the complete events of each network read as one batch (fewer writes downstream).

    A partial event at the end of the stream is yielded too: the caller decides whether an
    upstream that stopped without `[DONE]` was truncated.
    """
    buffer = b""
    async for chunk in chunks:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer += chunk
        if b"\n\n" not in buffer:
            continue
        *blocks, buffer = buffer.split(b"\n\n")
        batch = [event for block in blocks if (event := _parse_event(block)) is not None]
        if batch:
            yield batch
    if buffer.strip():
        tail = _parse_event(buffer.strip(b"\n"))
        if tail is not None:
            yield [tail]


def frame_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def frame_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def frame_named(event_type: str, obj: object) -> bytes:
    """Responses API framing: an `event:` line naming the type, then the JSON payload."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
