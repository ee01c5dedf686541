"""Micro-benchmark: what choosing a replica costs per request (issue 6's routing overhead).

1,000 concurrent multi-turn conversations on an 8-replica pool: each request computes its
conversation key (a hash of the conversation's opening) and picks a replica with the
route's strategy, with the in-flight counts of 1,000 requests in play. Also the full cost of
the pool's admission (admit/release) around it. Medians of several repeats:

    python bench/routing_cost.py [--conversations 1000] [--replicas 8] [--turns 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from backends.pool import Pool  # noqa: E402
from gateway.context import RequestContext  # noqa: E402
from gateway.policies import PoolPolicy  # noqa: E402

STRATEGIES = ("sticky_least_loaded", "consistent_hash", "least_loaded", "round_robin")


def rollout_bodies(conversations: int, turns: int) -> list[dict]:
    """Turn `t` of every conversation, turn-major: 1,000 rollouts advancing together."""
    bodies = []
    for t in range(turns):
        for i in range(conversations):
            messages = [
                {"role": "system", "content": "You are a careful agent. " * 20},
                {"role": "user", "content": f"Task {i}: solve the puzzle. " * 10},
            ]
            for k in range(t):
                messages += [
                    {"role": "assistant", "content": f"step {k} " * 30},
                    {"role": "user", "content": f"observation {k} " * 30},
                ]
            bodies.append({"model": "policy", "messages": messages})
    return bodies


def time_picks(strategy: str, bodies: list[dict], replicas: int, concurrent: int) -> float:
    urls = [f"http://10.0.0.{i}:8000/v1" for i in range(replicas)]
    pool = Pool.from_urls("policy", urls, PoolPolicy(strategy=strategy))
    ctx = RequestContext(request_id="bench")
    in_flight: list = []
    start = time.perf_counter()
    for body in bodies:
        replica = pool.pick(body, ctx, set())
        replica.in_flight += 1
        in_flight.append(replica)
        if len(in_flight) >= concurrent:  # keep ~`concurrent` requests in flight
            in_flight.pop(0).in_flight -= 1
    return (time.perf_counter() - start) / len(bodies) * 1e6


async def time_admission(n: int) -> float:
    pool = Pool.from_urls("policy", ["http://a/v1"], PoolPolicy(max_concurrency=100_000))
    start = time.perf_counter()
    for _ in range(n):
        await pool.admit()
        pool.release()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bodies = rollout_bodies(args.conversations, args.turns)
    print(
        f"{len(bodies)} requests, {args.conversations} concurrent conversations, "
        f"{args.replicas} replicas; median of {args.repeats} runs, µs per request"
    )
    for strategy in STRATEGIES:
        runs = [
            time_picks(strategy, bodies, args.replicas, args.conversations)
            for _ in range(args.repeats)
        ]
        print(f"  {strategy:<22} pick: {statistics.median(runs):6.2f} µs")
    admits = [asyncio.run(time_admission(20_000)) for _ in range(args.repeats)]
    print(f"  admission (admit+release, no wait): {statistics.median(admits):6.2f} µs")


if __name__ == "__main__":
    main()
