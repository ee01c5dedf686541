"""Profile the gateway under load with py-spy: one scenario, one concurrency, a few seconds.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile.py chat_stream --conc 32 --seconds 10

Writes bench/results/profile-<scenario>-c<conc>.collapsed (py-spy's raw stacks; feed them to
any flame-graph tool, or use `py-spy record -o x.svg --pid ...` for an SVG) and .txt (the
functions with the most samples, self and inclusive). Same layout as bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets
from loadgen import closed_loop, many_streams, quantile
from procs import ROOT, fake_upstream, free_port, pin, raise_fd_limit
from run import SCENARIOS, scenario


def summarize(collapsed: Path, top: int = 40) -> str:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [f"{samples} samples", "", "self %  function"]
    out += [f"{c / samples * 100:6.1f}  {f}" for f, c in own.most_common(top)]
    out += ["", "total %  function"]
    out += [f"{c / samples * 100:6.1f}  {f}" for f, c in total.most_common(top)]
    return "\n".join(out) + "\n"


async def load(target: targets.Target, name: str, conc: int, seconds: float, slow: int) -> None:
    if slow:
        sc = scenario("chat_stream", target, targets.SLOW_MODEL)
        many = await many_streams("127.0.0.1", target.slow_port, sc, slow, seconds * 3 + 30)
        p99 = quantile(many.ttfts, 0.99) or 0
        print(f"{slow} slow streams: {many.completed} completed in {many.seconds:.1f} s, "
              f"TTFT p99 {p99 * 1000:.0f} ms")  # fmt: skip
        return
    res = await closed_loop("127.0.0.1", target.port, scenario(name, target), conc, 0.5, seconds)
    print(f"{name} c={conc}: {res.rps:,.0f}/s, {res.errors} errors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--conc", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slow", type=int, default=0, help="N slow streams (100 x 100 ms)")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    raise_fd_limit()
    out = ROOT / "bench" / "results"
    logdir = out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    fast, slow = free_port(), free_port()
    ups = [
        fake_upstream(fast, 50, 0, logdir).start(pin(1)),
        fake_upstream(slow, 100, 100, logdir).start(pin(1)),
    ]
    target = None
    try:
        for up, port in zip(ups, (fast, slow), strict=True):
            targets.wait_answer(up, port, "/v1/chat/completions", b"{}")
        target = targets.start_gateway(sys.executable, free_port(), fast, slow, logdir, pin(0))
        assert target.proc is not None
        label = f"slow{args.slow}" if args.slow else f"{args.scenario}-c{args.conc}"
        stem = out / f"profile-{label}"
        common = ["--pid", str(target.proc.pid), "--duration", str(int(args.seconds)), "-r", "250"]
        common += ["--native"] if args.native else []
        spy = subprocess.Popen(
            [pyspy, "record", "-f", "raw", "-o", f"{stem}.collapsed", *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        asyncio.run(load(target, args.scenario, args.conc, args.seconds + 1, args.slow))
        spy.wait(60)
        collapsed = Path(f"{stem}.collapsed")
        if collapsed.exists():
            Path(f"{stem}.txt").write_text(summarize(collapsed))
            print(f"wrote {stem}.txt and {stem}.collapsed")
    finally:
        if target is not None:
            target.stop()
        for up in ups:
            up.stop()


if __name__ == "__main__":
    main()
