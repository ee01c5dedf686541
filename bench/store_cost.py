"""What storing responses costs per request: the store's `put` and a continuation's `chain`
read, for chains of 1 to 20 turns of a tool rollout (a 1 KiB tool result and a function
call each), on SQLite (the default), in memory, and on Redis when `redis-server` exists.

    python bench/store_cost.py [--rounds 200]

Wall time per operation as the event loop sees it (thread hop included for SQLite, a round
trip for Redis on loopback), median of `--rounds`; and the process CPU per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.responses_store import (
    MemoryResponseStore,
    RedisResponseStore,
    SQLiteResponseStore,
    StoredResponse,
)

RESULT = "r" * 1024


def turn(i: int, rollout: int) -> StoredResponse:
    rid = f"resp_{rollout}_{i}"
    arguments = f'{{"key": "k{i}"}}'
    call = {"id": f"fc_{i}", "type": "function_call", "status": "completed",
            "call_id": f"call_{i}", "name": "lookup", "arguments": arguments}  # fmt: skip
    usage = {"input_tokens": 100 * i, "output_tokens": 9}
    response = {"id": rid, "object": "response", "status": "completed", "model": "m",
                "output": [call], "usage": usage}  # fmt: skip
    inp = [{"id": f"fco_{i}", "type": "function_call_output", "call_id": f"call_{i - 1}",
            "output": RESULT}]  # fmt: skip
    prev = f"resp_{rollout}_{i - 1}" if i else None
    return StoredResponse(rid, "bench", prev, time.time(), inp, response)


async def run(store: Any, rounds: int, depth: int) -> tuple[float, float, float]:
    puts, reads = [], []
    cpu0 = time.process_time()
    for rollout in range(rounds):
        for i in range(depth):
            record = turn(i, rollout)
            t0 = time.perf_counter()
            await store.put(record)
            puts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        chain = await store.chain("bench", f"resp_{rollout}_{depth - 1}")
        reads.append(time.perf_counter() - t0)
        assert chain is not None and len(chain.records) == depth
    cpu = (time.process_time() - cpu0) / (rounds * (depth + 1))
    return statistics.median(puts), statistics.median(reads), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    stores: dict[str, Any] = {
        "sqlite": lambda: SQLiteResponseStore(work / f"{time.time_ns()}.db", 1 << 30, 86400),
        "memory": lambda: MemoryResponseStore(),
    }
    redis = None
    if shutil.which("redis-server"):
        redis = subprocess.Popen(["redis-server", "--port", "6391", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
        time.sleep(0.5)
        stores["redis"] = lambda: RedisResponseStore("redis://127.0.0.1:6391/0", "b:", 86400)
    print("| store | turns in chain | put (µs) | chain read (µs) | CPU per op (µs) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    try:
        for name, make in stores.items():
            for depth in (1, 5, 20):

                async def one(make: Any = make, depth: int = depth) -> tuple:
                    store = make()
                    try:
                        return await run(store, args.rounds, depth)
                    finally:
                        await store.aclose()

                put, read, cpu = asyncio.run(one())
                print(f"| {name} | {depth} | {put * 1e6:.0f} | {read * 1e6:.0f} | "
                      f"{cpu * 1e6:.0f} |", flush=True)  # fmt: skip
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait()


if __name__ == "__main__":
    main()
