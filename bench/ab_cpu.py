"""Gateway CPU per answer, A/B between two source trees with both gateways up at once,
pinned to the same core, alternating short cells (A, B, B, A, …): on a shared machine whose
speed moves within minutes, the pairs see the same minute, so the paired ratio is the figure.

    .venv/bin/python bench/ab_cpu.py /path/to/tree_a /path/to/tree_b [--pairs 12]
        [--conc 32] [--seconds 1.5] [--only "chat json" "chat stream"] [--delay-ms 0]

Layout as bench/run.py: both gateways on core 0, the fake upstream and this script on
core 1. Prints each pair, then per scenario the median CPU µs per answer of A and of B and
the median of the paired ratios B/A.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import closed_loop
from path_cpu import scenarios, start_gateway
from procs import cpu_seconds, free_port, process_tree


def start(tree: Path, up_port: int, tmp: Path, request_log: bool) -> tuple[subprocess.Popen, int]:
    return start_gateway(tree, up_port, tmp, core=0, request_log=request_log)


def cell(proc: subprocess.Popen, port: int, name: str, conc: int, seconds: float) -> float:
    scenario = next(s for s in scenarios(port) if s.name == name)
    pids = process_tree(proc.pid)
    marks: list[float] = []
    result = asyncio.run(
        closed_loop("127.0.0.1", port, scenario, conc, 0.3, seconds,
                    on_window=lambda _, m=marks: m.append(cpu_seconds(pids)))
    )  # fmt: skip
    if result.errors or not result.completed:
        raise RuntimeError(f"{name}: {result.errors} errors")
    return (marks[1] - marks[0]) / result.completed * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree_a", type=Path)
    parser.add_argument("tree_b", type=Path)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--conc", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--only", nargs="+", default=["chat json", "chat stream"])
    parser.add_argument("--request-log", action="store_true", help="as `serve` by default")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0,
        help="the fake upstream's gap between stream chunks (slow streams: one chunk a read)",
    )  # fmt: skip
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    here = Path(__file__).resolve().parent
    up_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(here / "fake_upstream.py"), "--port", str(up_port),
         "--chunks", "20", "--delay-ms", str(args.delay_ms)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    procs: list[tuple[subprocess.Popen, int]] = []
    got: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in args.only}
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            for tree in (args.tree_a, args.tree_b):
                procs.append(start(tree, up_port, Path(tmp), args.request_log))
            for n in range(args.pairs):
                for name in args.only:
                    order = (0, 1) if n % 2 == 0 else (1, 0)
                    for i in order:
                        got[name][i].append(cell(*procs[i], name, args.conc, args.seconds))
                    a, b = got[name][0][-1], got[name][1][-1]
                    print(f"pair {n + 1:2d} {name:12s} A {a:6.0f}  B {b:6.0f}  B/A {b / a:.3f}")
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(10)
        upstream.terminate()
        upstream.wait(10)
    print(f"µs of gateway CPU per answer at {args.conc} connections, median (A → B), paired B/A:")
    for name, (a, b) in got.items():
        ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
        print(f"  {name:12s} {statistics.median(a):6.0f} → {statistics.median(b):6.0f}  "
              f"B/A {ratio:.3f} ({(ratio - 1) * 100:+.1f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
