"""Zero admissions after a pause, under load: 10,000 requests from 32 clients over the fleet
(tests/e2e/test_fleet_e2e.py's: 5 member processes, 3 fake replicas counting requests), with
a `wait` pause taken by a different member every ~1,000 answers. While paused, the replicas'
count must not move; the figure is how many requests reached an engine between a pause
call's return and its resume (the target: 0).

    .venv/bin/python -m bench.fleet_pause_load [--requests 10000] [--every 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.e2e.test_fleet_e2e import Fleet, _load, admin


async def run(fleet: Fleet, requests: int, every: int) -> None:
    urls = [m.url for m in fleet.members]
    stop, answers = asyncio.Event(), []
    load = asyncio.create_task(_load(urls, stop, answers, clients=32))
    pauses, leaked, durations = 0, 0, []
    while len(answers) < requests:
        await asyncio.sleep(0.01)
        if len(answers) >= (pauses + 1) * every:
            member = urls[pauses % len(urls)]
            start = time.perf_counter()
            paused = await asyncio.to_thread(admin, member, "/admin/pause", {"mode": "wait"})
            durations.append((time.perf_counter() - start) * 1000)
            assert paused.status_code == 200, paused.text
            before = await asyncio.to_thread(fleet.engine_count)
            await asyncio.sleep(0.3)
            leaked += await asyncio.to_thread(fleet.engine_count) - before
            await asyncio.to_thread(admin, urls[(pauses + 1) % len(urls)], "/admin/resume")
            pauses += 1
    stop.set()
    await load
    ok = sum(a.status_code == 200 for a in answers)
    print(f"{len(answers)} requests ({ok} answered 200), {pauses} wait-mode pauses under load "
          f"(pause call p50 {sorted(durations)[len(durations) // 2]:.0f} ms): "
          f"{leaked} reached an engine while paused")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp))
        try:
            asyncio.run(run(fleet, args.requests, args.every))
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
