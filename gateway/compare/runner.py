"""Send every case to every route with bounded concurrency; results in input order."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import aiohttp

from gateway.compare.client import Result, send
from gateway.compare.inputs import Case
from gateway.compare.progress import Progress


async def run_cases(
    base_url: str,
    cases: Sequence[Case],
    routes: Sequence[str],
    concurrency: int = 8,
    repeat: int = 1,
    stream: bool | None = None,
    api_key: str | None = None,
    timeout: float | None = 600.0,
    progress: Progress | None = None,
) -> list[Result]:
    """Interleaved (case, repeat, route) order, so a slow route does not run alone at the end."""
    jobs = list(itertools.product(range(repeat), cases, routes))
    results: list[Result | None] = [None] * len(jobs)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for position in range(len(jobs)):
        queue.put_nowait(position)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                position = queue.get_nowait()
                rep, case, route = jobs[position]
                result = await send(session, base_url, case, route, rep, stream, headers)
                results[position] = result
                if progress is not None:
                    progress.advance(result.ok)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(jobs))))))
    if progress is not None:
        progress.close()
    return [r for r in results if r is not None]
