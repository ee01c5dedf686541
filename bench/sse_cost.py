"""CPU per relayed chunk of the upstream SSE path: UpstreamSSE (reads -> events, the checks
on each chunk) and relay_chat_stream (model rewrite, framing), with no network, so the
figure is the gateway's own work. Issue 18.1/18.6 changed this path; run it on two trees
to compare (docs/performance.md quotes the figures):

    .venv/bin/python bench/sse_cost.py                      # this tree
    PYTHONPATH=/path/to/old/tree .venv/bin/python bench/sse_cost.py

Scenarios: a slow stream (one event per read, as engines send tokens), a fast one (every
event of a 50-chunk answer in one read), the slow one with CRLF line ends, and a 1 MiB
(and an 8 MiB) event arriving in 64 KiB reads (the long-line case: linear, not quadratic).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from backends.http import UpstreamSSE
from backends.pool import Pool
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.relay import ModelRewriter, relay_chat_stream


def chunk(i: int) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "Qwen/Qwen3-0.6B",
        "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


class FakeResponse:
    """What UpstreamSSE reads: readany() over prepared reads, release(), close()."""

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = iter(reads)

    @property
    def content(self) -> FakeResponse:
        return self

    async def readany(self) -> bytes:
        return next(self._reads, b"")

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeUpstream:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def describe(self, replica: Any = None) -> str:
        return "route 'bench': upstream http://127.0.0.1:1"


async def relay_once(reads: list[bytes], upstream: FakeUpstream, replica: Any) -> int:
    from backends.control import ControlPlane

    stream = UpstreamSSE(FakeResponse(reads), upstream, replica, ControlPlane())
    ctx = RequestContext(request_id="r", endpoint="/v1/chat/completions")
    ctx.route_name = "bench"
    out = 0
    async for frame in relay_chat_stream(stream, ModelRewriter("Qwen/Qwen3-0.6B", "qwen"), ctx):
        out += len(frame)
    return out


def scenarios() -> dict[str, tuple[list[bytes], int]]:
    events = [chunk(i) for i in range(50)] + [b"[DONE]"]
    lf = [b"data: " + e + b"\n\n" for e in events]
    crlf = [b"data: " + e + b"\r\n\r\n" for e in events]
    return {
        "slow (1 event/read, LF)": (lf, 50),
        "fast (50 events/read, LF)": ([b"".join(lf)], 50),
        "slow (1 event/read, CRLF)": (crlf, 50),
        "1 MiB event in 64 KiB reads": (long_event(1), 1),
        "8 MiB event in 64 KiB reads": (long_event(8), 1),
    }


def long_event(mib: int) -> list[bytes]:
    big = b'{"choices":[{"index":0,"delta":{"content":"' + b"x" * (mib << 20) + b'"}}]}'
    reads = [b"data: "] + [big[i : i + 65536] for i in range(0, len(big), 65536)]
    return [*reads, b"\n\n", b"data: [DONE]\n\n"]


async def main(repeat: int) -> None:
    route = parse_config(
        "models: [{name: bench, backend: vllm, base_url: 'http://127.0.0.1:1/v1'}]", "bench"
    ).models[0]
    pool = Pool.from_urls("bench", ["http://127.0.0.1:1/v1"], route)
    upstream = FakeUpstream(pool)
    replica = pool.replicas[0]
    print(f"python {sys.version.split()[0]}; {repeat} streams per scenario")
    for name, (reads, chunks) in scenarios().items():
        n = repeat if chunks > 1 else max(1, repeat // (50 * len(reads) // 16))
        for _ in range(3):  # warm-up
            await pool.admit()
            replica.in_flight += 1
            await relay_once(reads, upstream, replica)
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(n):
                await pool.admit()
                replica.in_flight += 1
                await relay_once(reads, upstream, replica)
            best = min(best, time.process_time() - start)
        unit = "µs CPU per chunk" if chunks > 1 else "µs CPU for the event"
        print(f"{name:32s} {best / n / chunks * 1e6:10.2f} {unit}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 400))
