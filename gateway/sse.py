"""Server-sent events: split an upstream byte stream into events, and frame events out.

Parsing follows the SSE spec (html.spec.whatwg.org, "Parsing an event stream"): lines end
in LF, CRLF or CR, a blank line ends an event, `data:` lines join with LF, `event:` names
it, comments and other fields are skipped. The events found never depend on where the
network reads split the bytes (tests/unit/test_sse_framing.py checks that over random
splits, line-end styles and event streams).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"
_BOM = b"\xef\xbb\xbf"
UNLIMITED = 1 << 62


@dataclass(slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None


class EventTooLarge(ValueError):
    """An event (or its first part) longer than the parser's limit; `events` are the
    complete events the same read held before it."""

    def __init__(self, size: int, limit: int, events: list[SSEEvent] | None = None) -> None:
        super().__init__(f"an SSE event of more than {limit} bytes ({size} so far)")
        self.size = size
        self.limit = limit
        self.events = events or []


def _parse_event(block: bytes) -> SSEEvent | None:
    """One event's lines (LF-separated, no blank line inside but perhaps a leading LF)."""
    if block.startswith(b"data: ") and b"\n" not in block:  # nearly every event: one line
        return SSEEvent(block[6:])
    data_lines: list[bytes] = []
    event: str | None = None
    for line in block.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or None
        # comments (": ping"), id: and retry: lines carry nothing we forward
    if not data_lines:
        return None
    return SSEEvent(b"\n".join(data_lines), event)


class SSEParser:
    """Feed network reads, get complete events; linear in the bytes fed, whatever the reads.

    Line ends are made LF as bytes arrive, remembering a CR that ended the previous read (its
    LF may start the next one). Bytes after the last blank line wait in a list of pieces,
    joined once when the event completes: a long event costs one copy, not one per read.
    `max_event_bytes` bounds what waits: past it, feed() raises EventTooLarge before any
    part of that event is returned.
    """

    __slots__ = ("_cr", "_parts", "_size", "_start", "max_event_bytes")

    def __init__(self, max_event_bytes: int = UNLIMITED) -> None:
        self.max_event_bytes = max_event_bytes
        self._parts: list[bytes] = []  # the incomplete event, LF line ends
        self._size = 0
        self._cr = False  # the last read ended in CR: a LF starting the next one is its pair
        self._start = True  # nothing complete yet: a byte-order mark may open the stream

    def whole(self, chunk: bytes) -> bytes | None:
        """The data of `chunk` when it is exactly one whole one-line `data:` event and
        nothing waits from earlier reads (the usual read of a token stream), else None.
        Nothing waits afterwards either, so the caller may still feed() the same chunk
        (same event); when None, nothing changed."""
        if (
            chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n")
            and not self._parts
            and not self._cr
            and b"\r" not in chunk
            and len(chunk) <= self.max_event_bytes
        ):
            self._start = False  # as feed() would: a byte-order mark can only open a stream
            return chunk[6:-2]
        return None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        data = self.whole(chunk)  # the general split below gives the same, 5x slower
        if data is not None:
            return [SSEEvent(data)]
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        cut = chunk.rfind(b"\n\n")
        if cut >= 0:
            cut += 2
        elif parts and chunk[:1] == b"\n" and parts[-1][-1:] == b"\n":
            cut = 1  # the blank line's two LFs straddle the reads
        else:
            if chunk:
                parts.append(chunk)
                self._size += len(chunk)
                if self._size > self.max_event_bytes:
                    raise EventTooLarge(self._size, self.max_event_bytes)
            return []
        head = chunk[:cut]
        if parts:
            parts.append(head)
            head = b"".join(parts)
            parts.clear()
        rest = chunk[cut:]
        if rest:
            parts.append(rest)
        self._size = len(rest)
        if self._start:
            self._start = False
            if head.startswith(_BOM):
                head = head[3:]
        limit = self.max_event_bytes
        events: list[SSEEvent] = []
        check = len(head) > limit or self._size > limit
        for block in head.split(b"\n\n"):
            if check and len(block) > limit:
                raise EventTooLarge(len(block), limit, events)
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append(SSEEvent(block[6:]))
            elif block and (event := _parse_event(block)) is not None:
                events.append(event)
        if check and self._size > limit:
            raise EventTooLarge(self._size, limit, events)
        return events

    def close(self) -> SSEEvent | None:
        """The partial event left when the stream ended (the caller judges if it was
        truncated; the spec would drop it)."""
        tail = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        if self._start and tail.startswith(_BOM):
            tail = tail[3:]
        return _parse_event(tail.strip(b"\n")) if tail.strip() else None


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield the complete events of each network read as one batch (fewer writes downstream).

    A partial event at the end of the stream is yielded too: the caller decides whether an
    upstream that stopped without `[DONE]` was truncated.
    """
    parser = SSEParser()
    async for chunk in chunks:
        batch = parser.feed(chunk)
        if batch:
            yield batch
    tail = parser.close()
    if tail is not None:
        yield [tail]


def frame_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def frame_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def frame_named(event_type: str, obj: object) -> bytes:
    """Responses API framing: an `event:` line naming the type, then the JSON payload."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
