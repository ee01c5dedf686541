"""The response head goes out with the first body write (one system call per JSON answer),
or alone on the next loop turn when no body follows at once (streams, 100 Continue)."""

from __future__ import annotations

import asyncio

from gateway.connections import _HeadWithBody


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Cycle:
    transport: object


def _holder() -> tuple[_Transport, _Cycle, _HeadWithBody]:
    real, cycle = _Transport(), _Cycle()
    cycle.transport = holder = _HeadWithBody(real, cycle, asyncio.get_running_loop())
    return real, cycle, holder


async def test_head_and_body_in_one_write() -> None:
    real, cycle, holder = _holder()
    holder.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    holder.write(b"{}")
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    assert cycle.transport is real  # later writes go straight
    await asyncio.sleep(0)  # the scheduled flush finds nothing held
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


async def test_head_alone_goes_out_on_the_next_turn() -> None:
    real, cycle, holder = _holder()
    holder.write(b"HEAD")
    await asyncio.sleep(0)
    assert real.writes == [b"HEAD"]
    assert cycle.transport is real


async def test_large_body_follows_the_head_and_close_flushes() -> None:
    real, _, holder = _holder()
    body = b"x" * (_HeadWithBody.MERGE_MAX + 1)
    holder.write(b"HEAD")
    holder.write(body)
    assert real.writes == [b"HEAD", body]
    real2, _, holder2 = _holder()
    holder2.write(b"HEAD")
    holder2.close()
    assert real2.writes == [b"HEAD"] and real2.closed
