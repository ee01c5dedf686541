"""The slow-stream test of bench/run.py, several rounds with the targets taking turns: on this
2-core machine one run's TTFT p99 moves by several times from run to run, and the load
generator and the fake upstreams share core 1, which the test nearly fills (~96 % busy with
2,000 streams open), so a single run's p99 says as much about core 1 as about the target.
All targets stay up (each pinned to core 0, idle while the others are measured); each
round runs every target once, in an order rotated by one each round.

    .venv/bin/python bench/slow_rounds.py [--rounds 3] [--only gateway vllm-router smg floor]
        [--gateway-trees ../old-checkout ...] [--streams 2000] [--chunks 100] [--delay-ms 100]
        [--ramp 2] [--cold]

--cold starts every target afresh before each of its runs, so each run is the first burst of
a process: every stream opens its upstream connection (as in RL, where a batch starts after
a training step longer than the engines' 5-s keep-alive, so the pool is always cold).

Prints each run (TTFT p50/p99, CPU per stream, core 1's busy share while streams were open)
and per target the median of its runs; writes bench/results/slow-rounds-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets
from procs import ROOT, fake_upstream, free_port, pin, raise_fd_limit, raise_somaxconn
from run import run_slow, start


def core_ticks(core: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one core so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                ticks = [int(x) for x in line.split()[1:]]
                idle = ticks[3] + ticks[4]
                return sum(ticks) - idle, sum(ticks)
    return 0, 1


KEYS = ("ttft_p50_ms", "ttft_p99_ms", "cpu_ms_per_stream", "sys_ms_per_stream", "core1_busy_pct")


async def one_run(target: targets.Target, opts: argparse.Namespace) -> dict:
    busy0, total0 = core_ticks(1)
    row = await run_slow(target, opts.streams, opts)
    busy1, total1 = core_ticks(1)
    row["core1_busy_pct"] = round(100 * (busy1 - busy0) / max(total1 - total0, 1))
    return row


async def main_async(opts: argparse.Namespace) -> dict:
    logdir = opts.out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    fast_port, slow_port = free_port(), free_port()
    upstreams = [
        fake_upstream(fast_port, 50, 0, logdir, targets.MODEL).start(pin(1)),
        fake_upstream(slow_port, opts.chunks, opts.delay_ms, logdir, targets.SLOW_MODEL).start(
            pin(1)
        ),
    ]
    up: dict[str, targets.Target] = {}
    starters: dict[str, Callable[[], targets.Target | None]] = {}
    runs: dict[str, list[dict]] = {}
    try:
        for proc, port in zip(upstreams, (fast_port, slow_port), strict=True):
            targets.wait_answer(proc, port, "/v1/chat/completions", b"{}")
        for name in opts.only:
            starter = partial(start, name, sys.executable, fast_port, slow_port, logdir, opts)
            target = starter()
            if target is None:
                print(f"   {name}: not available, left out", flush=True)
                continue
            up[name], starters[name] = target, starter
            runs[name] = []
        for tree in opts.gateway_trees:  # A/B: the same test on other source trees
            starter = partial(
                targets.start_gateway, sys.executable, free_port(), fast_port, slow_port,
                logdir, pin(0), tree=tree,
            )  # fmt: skip
            target = starter()
            up[target.name], starters[target.name] = target, starter
            runs[target.name] = []
        names = list(up)
        for round_no in range(opts.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                if opts.cold and (round_no or name != order[0]):
                    up[name].stop()  # the first run of the first target is fresh already
                    up[name] = starters[name]() or up[name]
                row = await one_run(up[name], opts)
                runs[name].append(row)
                print(
                    f"round {round_no + 1} {name:12s} {row['completed']}/{row['requested']} · "
                    f"ttft p50/p99 {row['ttft_p50_ms']:.1f}/{row['ttft_p99_ms']:.1f} ms · "
                    f"CPU {row['cpu_ms_per_stream']} ms/stream "
                    f"(kernel {row['sys_ms_per_stream']}) · core 1 {row['core1_busy_pct']} % busy",
                    flush=True,
                )
    finally:
        for target in up.values():
            target.stop()
        for proc in upstreams:
            proc.stop()
    summary = {}
    for name, rows in runs.items():
        if not rows:
            continue
        summary[name] = {
            key: statistics.median(r[key] for r in rows if r[key] is not None)
            for key in KEYS
            if any(r[key] is not None for r in rows)
        }
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rounds": opts.rounds}
    meta["cold"] = opts.cold
    meta.update(streams=opts.streams, chunks=opts.chunks, delay_ms=opts.delay_ms)
    meta.update(ramp_s=opts.slow_ramp, loadavg_end=os.getloadavg())
    return {"meta": meta, "runs": runs, "median": summary}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", nargs="+", default=["gateway", "vllm-router", "smg", "floor"],
        choices=["direct", "gateway", "nginx", "floor", "vllm-router", "smg"],
    )  # fmt: skip
    parser.add_argument(
        "--gateway-trees", nargs="*", type=Path, default=[],
        help="also the gateway of these source trees (gateway@<dir>), e.g. an older checkout",
    )  # fmt: skip
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--ramp", dest="slow_ramp", type=float, default=2.0)
    parser.add_argument(
        "--cold", action="store_true",
        help="start each target afresh before each run (every stream connects upstream)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    opts = parser.parse_args()
    # what bench/run.py's run_slow reads
    opts.slow_chunks, opts.slow_delay_ms, opts.slow_many = opts.chunks, opts.delay_ms, opts.streams
    return opts


def main() -> None:
    opts = parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # as bench/run.py: the load generator on core 1
    opts.nofile = raise_fd_limit()
    raise_somaxconn()
    import uvloop

    result = uvloop.run(main_async(opts))
    print("median of the runs per target:")
    for name, row in result["median"].items():
        print(f"  {name:12s} {row}")
    out = opts.out / "slow-rounds-latest.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
