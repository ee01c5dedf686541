"""HTTP/1.1 requests read off a connection's buffer, for the benchmark's own servers
(fake_upstream.py, sim_engine.py): Content-Length or chunked bodies (SMG streams request
bodies chunked on some policies); no trailers."""

from __future__ import annotations


def dechunk(buf: bytes, start: int) -> tuple[bytes, int] | None:
    """A chunked body from `start`: (body, end offset), or None while incomplete."""
    parts, pos = [], start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(buf[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return (b"".join(parts), line_end + 4) if len(buf) >= line_end + 4 else None
        if len(buf) < line_end + 2 + size + 2:
            return None
        parts.append(buf[line_end + 2 : line_end + 2 + size])
        pos = line_end + 2 + size + 2


def take_request(buf: bytes) -> tuple[list[bytes], bytes, int] | None:
    """The first whole request in `buf`: (request line split on spaces: method, path,
    version; body; offset just past it), or None while it is incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end]
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parsed = dechunk(buf, head_end + 4)
        if parsed is None:
            return None
        body, end = parsed
    else:
        end = head_end + 4 + length
        if len(buf) < end:
            return None
        body = buf[head_end + 4 : end]
    return head.split(b"\r\n", 1)[0].split(b" ", 2), body, end
