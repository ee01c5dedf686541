"""SSE framing (issue 18.1): the events parsed never depend on where the network reads split
the bytes, for LF, CRLF and CR line ends (the SSE spec allows all three), and a long event
costs linear time and is refused past the limit before any part of it is returned."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sse import EventTooLarge, SSEParser

PROPERTY = settings(
    max_examples=int(os.environ.get("GYM_GATEWAY_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def reference(stream: bytes) -> list[tuple[str | None, bytes]]:
    """The spec's algorithm, line by line on the whole stream (no reads, no speed)."""
    lines: list[bytes] = []
    start = i = 0
    while i < len(stream):
        if stream[i : i + 1] in (b"\r", b"\n"):
            lines.append(stream[start:i])
            i += 2 if stream[i : i + 2] == b"\r\n" else 1
            start = i
        else:
            i += 1
    # bytes after the last line end are not a line: the spec never dispatches them
    events: list[tuple[str | None, bytes]] = []
    data: list[bytes] = []
    name: str | None = None
    for line in lines:
        if not line:
            if data:
                events.append((name, b"\n".join(data)))
            data, name = [], None
            continue
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode() or None
    return events


def parse_in_reads(stream: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    out: list[tuple[str | None, bytes]] = []
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        out += [(e.event, e.data) for e in parser.feed(stream[a:b])]
    return out


@dataclass
class Event:
    name: str | None
    data: list[bytes]
    noise: list[bytes]  # comments, id:, retry:, unknown fields


TEXT = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
).map(lambda s: s.encode())
DATA_LINE = st.one_of(
    TEXT,
    st.builds(lambda s: b'{"choices":[{"delta":{"content":' + s + b"}}]}", TEXT),
    st.just(b"[DONE]"),
)
NOISE = st.sampled_from([b": ping", b":", b"id: 7", b"retry: 100", b"x-unknown: 1", b"dat"])
EVENTS = st.lists(
    st.builds(
        Event,
        st.none() | st.sampled_from(["response.created", "message", "error"]),
        st.lists(DATA_LINE, min_size=1, max_size=3),
        st.lists(NOISE, max_size=2),
    ),
    max_size=6,
)
ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


def serialize(events: list[Event], end: bytes, spaced: bool) -> bytes:
    sep = b": " if spaced else b":"
    out = []
    for event in events:
        lines = list(event.noise)
        if event.name is not None:
            lines.append(b"event" + sep + event.name.encode())
        lines += [b"data" + sep + line for line in event.data]
        out.append(end.join(lines) + end + end)
    return b"".join(out)


@PROPERTY
@given(EVENTS, ENDS, st.booleans(), st.lists(st.integers(0, 2000), max_size=12), st.data())
def test_events_do_not_depend_on_read_splits(
    events: list[Event], end: bytes, spaced: bool, cuts: list[int], data: st.DataObject
) -> None:
    stream = serialize(events, end, spaced)
    cuts = [c % (len(stream) + 1) for c in cuts]
    # and always a cut between the CR and LF of a CRLF, the case that once merged events
    crlfs = [i + 1 for i in range(len(stream) - 1) if stream[i : i + 2] == b"\r\n"]
    if crlfs:
        cuts.append(data.draw(st.sampled_from(crlfs)))

    # the spec drops one space after the colon: a line " x" written unspaced reads "x"
    def read_back(line: bytes) -> bytes:
        return line[1:] if not spaced and line.startswith(b" ") else line

    expected = [(e.name, b"\n".join(map(read_back, e.data))) for e in events]
    assert reference(stream) == expected
    assert parse_in_reads(stream, cuts) == expected
    assert parse_in_reads(stream, list(range(len(stream)))) == expected  # byte by byte


@PROPERTY
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_any_bytes_parse_the_same_whatever_the_splits(stream: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes (mixed line ends, blank-line runs, a byte-order mark) too."""
    cuts = [c % (len(stream) + 1) for c in cuts]
    assert parse_in_reads(stream, cuts) == parse_in_reads(stream, [])
    if not stream.startswith(b"\xef\xbb\xbf"):
        assert parse_in_reads(stream, []) == reference(stream)


def test_cr_lf_of_the_blank_line_in_two_reads() -> None:
    """Issue 18.1 as reported: a read ending between the CR and LF of the blank line."""
    frames = [b'data: {"c":"a"}\r\n\r', b'\ndata: {"c":"b"}\r\n\r\n', b"data: [DONE]\r\n\r\n"]
    parser = SSEParser()
    out = [e.data for f in frames for e in parser.feed(f)]
    assert out == [b'{"c":"a"}', b'{"c":"b"}', b"[DONE]"]


def test_byte_order_mark_opens_the_stream() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb") == []
    assert [e.data for e in parser.feed(b"\xbfdata: x\n\n")] == [b"x"]


def test_tail_without_blank_line_is_returned_by_close() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"last":true}') == []
    tail = parser.close()
    assert tail is not None and tail.data == b'{"last":true}'


def test_an_event_past_the_limit_is_refused_before_any_part_of_it() -> None:
    parser = SSEParser(max_event_bytes=100)
    assert [e.data for e in parser.feed(b"data: ok\n\ndata: " + b"x" * 60)] == [b"ok"]
    with pytest.raises(EventTooLarge) as info:
        parser.feed(b"x" * 60)
    assert info.value.limit == 100 and info.value.events == []
    # in one read: the good events before it come with the error, the big one never
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge) as info:
        parser.feed(b"data: a\n\ndata: " + b"y" * 200 + b"\n\ndata: b\n\n")
    assert [e.data for e in info.value.events] == [b"a"]


def test_a_long_line_costs_linear_time() -> None:
    """A 1 MiB line in 16,384 reads of 64 bytes: the pieces wait unjoined, so each byte is
    copied a bounded number of times (buffer + chunk used to copy it again on every read)."""
    parser = SSEParser()
    piece = b"x" * 64
    assert parser.feed(b"data: ") == []
    for _ in range(16_384):
        assert parser.feed(piece) == []
    assert parser._size == 6 + 64 * 16_384
    assert len(parser._parts) == 16_385  # pieces kept, never joined until the event ends
    (event,) = parser.feed(b"\n\n")
    assert len(event.data) == 64 * 16_384
