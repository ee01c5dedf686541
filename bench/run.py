"""The benchmark: direct, gateway, nginx (LiteLLM with --litellm; vllm-router and SMG with
--peers) in one run, one table.

    bash bench/run.sh [--quick] [--litellm] [--peers]     (see docs/performance.md)

Layout on the machine: the gateway (or a peer) alone on core 0, one worker; the
fake upstreams, the load generator and this script on core 1. Everything on loopback.
Results: bench/results/<time>.md and .json (and latest.md / latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
import targets
from bodies import chat_body, responses_body
from loadgen import Scenario, build_request, closed_loop, many_streams, quantile
from procs import (
    ROOT,
    core_speed_ms,
    cpu_seconds,
    fake_upstream,
    free_port,
    machine,
    pin,
    raise_fd_limit,
    raise_somaxconn,
    rss_bytes,
)

SCENARIOS = ("chat", "chat_stream", "responses", "responses_stream")
CHAT_DONE, CHAT_ERROR = b"data: [DONE]", b'data: {"error"'
# Markers found with or without `event:` lines (LiteLLM sends only `data:`).
RESP_DONE, RESP_ERROR = b"response.completed", b"response.failed"


def scenario(name: str, target: targets.Target, model: str = targets.MODEL) -> Scenario:
    stream = name.endswith("_stream")
    if name.startswith("chat"):
        body, path, done, error = (
            chat_body(model, stream),
            "/v1/chat/completions",
            CHAT_DONE,
            CHAT_ERROR,
        )
    else:
        body, path, done, error = (
            responses_body(model, stream),
            "/v1/responses",
            RESP_DONE,
            RESP_ERROR,
        )
    port = target.slow_port if model == targets.SLOW_MODEL else target.port
    request = build_request("127.0.0.1", port, path, orjson.dumps(body), target.headers)
    return Scenario(name, request, stream, done if stream else b"", error if stream else b"")


class Meter:
    """CPU time and RSS of a target's processes, sampled by the load generator's loop."""

    def __init__(self, target: targets.Target) -> None:
        self.pids = target.pids()
        self.cpu_marks: list[float] = []
        self.sys_marks: list[float] = []  # the kernel's part of the same
        self.peak = 0

    def mark(self, _: bool) -> None:
        self.cpu_marks.append(cpu_seconds(self.pids))
        self.sys_marks.append(cpu_seconds(self.pids, system_only=True))

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pids))
            await asyncio.sleep(0.1)


async def run_cell(target: targets.Target, name: str, conc: int, opts: argparse.Namespace) -> dict:
    meter = Meter(target)
    sc = scenario(name, target)
    res = await closed_loop(
        "127.0.0.1", target.port, sc, conc, opts.warmup, opts.duration, on_window=meter.mark
    )
    cell: dict[str, Any] = {
        "rps": round(res.rps, 1),
        "completed": res.completed,
        "errors": res.errors,
        "p50_ms": _ms(quantile(res.latencies, 0.5)),
        "p99_ms": _ms(quantile(res.latencies, 0.99)),
    }
    if sc.stream:
        cell["ttft_p50_ms"] = _ms(quantile(res.ttfts, 0.5))
        cell["ttft_p99_ms"] = _ms(quantile(res.ttfts, 0.99))
    if meter.pids and len(meter.cpu_marks) == 2 and res.completed:
        cell["cpu_us_per_req"] = round(
            (meter.cpu_marks[1] - meter.cpu_marks[0]) / res.completed * 1e6
        )
    return cell


async def run_slow(target: targets.Target, count: int, opts: argparse.Namespace) -> dict:
    meter = Meter(target)
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(meter.sample_rss(stop))
    sc = scenario("chat_stream", target, targets.SLOW_MODEL)
    # Bounded, but long enough for an overloaded target to finish ("all complete?").
    deadline = opts.slow_chunks * opts.slow_delay_ms / 1000 * 3 + (
        150 if count > opts.slow_many else 30
    )
    meter.mark(True)
    # All `count` streams are open at once from the end of the ramp until the first ends.
    ramp = opts.slow_ramp * (4 if count > opts.slow_many else 1)
    res = await many_streams("127.0.0.1", target.slow_port, sc, count, deadline, count / ramp)
    meter.mark(False)
    stop.set()
    await sampler
    await asyncio.sleep(1.0)  # let closed connections settle before the next test
    return {
        "requested": count,
        "completed": res.completed,
        "failed": res.failed + res.connect_errors,
        "unfinished": res.unfinished,
        "failure_reasons": res.reasons,
        "seconds": round(res.seconds, 1),
        "ttft_p50_ms": _ms(quantile(res.ttfts, 0.5)),
        "ttft_p99_ms": _ms(quantile(res.ttfts, 0.99)),
        "peak_rss_mib": round(meter.peak / 2**20, 1) if meter.pids else None,
        # CPU time of the target per stream (its own processes), from start to last stream
        "cpu_ms_per_stream": round((meter.cpu_marks[1] - meter.cpu_marks[0]) / count * 1000, 2)
        if meter.pids
        else None,
        "sys_ms_per_stream": round((meter.sys_marks[1] - meter.sys_marks[0]) / count * 1000, 2)
        if meter.pids
        else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


async def bench_target(
    target: targets.Target,
    opts: argparse.Namespace,
    out: dict,
    restart: Callable[[], targets.Target | None],
) -> targets.Target:
    """Runs every test on `target`; returns the target process last used (to be stopped)."""
    print(f"== {target.name}", flush=True)
    first = target  # start-up and idle RSS are the first process's
    if target.proc is not None:
        await asyncio.sleep(0.5)
        target.idle_rss = rss_bytes(target.pids())
    cells: dict[str, dict[str, dict]] = {}
    for name in SCENARIOS:
        if name.startswith("responses") and not target.responses:
            continue
        if name in opts.skip_scenarios:
            continue
        for conc in opts.conc:
            if target.proc is not None and not target.proc.alive():
                note = f"the process died before {name} c={conc}; later cells skipped"
                if note not in first.notes:
                    first.notes.append(note)
                    print(f"   {note}\n{target.proc.tail()}", flush=True)
                break
            cell = await run_cell(target, name, conc, opts)
            cells.setdefault(name, {})[str(conc)] = cell
            print(f"   {name:17s} c={conc:<4d} {report.cell_text(cell)}", flush=True)
    slow: dict[str, dict] = {}
    if not opts.no_slow:
        for label, count in (("many", opts.slow_many), ("huge", opts.slow_huge)):
            if label == "huge" and (target.name == "litellm" or opts.no_huge):
                continue  # minutes per run and it does not finish the smaller test either
            if label == "huge" and target.proc is not None:
                # A fresh process: the upstream connections the earlier test left in its
                # keep-alive pool would hold descriptors the 10,000 streams need.
                target.stop()
                target = restart() or target
            # Two descriptors per stream through a proxy (client + upstream), one direct;
            # 2,000 spare for logs, listeners and a proxy's idle upstream connections.
            cap = (opts.nofile - 2000) // (1 if target.proc is None else 2)
            slow[label] = await run_slow(target, min(count, cap), opts)
            slow[label]["capped_by_nofile"] = count > cap
            print(f"   {count} slow streams: {slow[label]}", flush=True)
        if slow.get("huge", {}).get("capped_by_nofile") and target.name == "gateway":
            target.stop()
            target, slow["huge_split"] = await huge_split(opts)
    out[first.name] = {
        "startup_s": None if first.startup_s is None else round(first.startup_s, 3),
        "idle_rss_mib": None if first.idle_rss is None else round(first.idle_rss / 2**20, 1),
        "cells": cells,
        "slow": slow,
        "notes": first.notes,
    }
    return target


async def huge_split(opts: argparse.Namespace) -> tuple[targets.Target, dict]:
    """All the very many streams when one process may not hold them (two descriptors per
    stream, `ulimit -n` per process): `--workers k` with every worker pinned to the same
    core 0, so the gateway still has one core."""
    per_process = (opts.nofile - 2000) // 2
    workers = -(-opts.slow_huge // per_process)
    logdir = opts.out / "logs"
    fast, slow = opts.upstream_ports
    split = targets.start_gateway(sys.executable, free_port(), fast, slow, logdir, pin(0), workers)
    await asyncio.sleep(2.0)  # every worker up, not only the first to answer
    result = await run_slow(split, opts.slow_huge, opts)
    result["workers"] = workers
    print(f"   {opts.slow_huge} slow streams, {workers} workers on core 0: {result}", flush=True)
    return split, result


def translation_micro(python: str) -> dict:
    cmd = [
        "taskset",
        "-c",
        pin(0) or "0",
        python,
        str(ROOT / "bench" / "translate_cost.py"),
        "--json",
    ]
    if not pin(0):
        cmd = cmd[3:]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    return json.loads(done.stdout)


async def workers_check(
    python: str, fast: int, slow: int, logdir: Path, opts: argparse.Namespace
) -> dict:
    """`--workers N` spreads load over cores: N workers, unpinned, Chat at 32 and 256."""
    n = opts.workers_check
    target = targets.start_gateway(python, free_port(), fast, slow, logdir, "", workers=n)
    try:
        await asyncio.sleep(1.0)
        pids = target.proc.tree()[1:] if target.proc else []
        before = {pid: cpu_seconds([pid]) for pid in pids}
        cells = {str(c): await run_cell(target, "chat", c, opts) for c in (32, 256)}
        busy = sum(1 for pid in pids if cpu_seconds([pid]) - before[pid] > 0.05)
        return {"workers": n, "processes": len(pids), "workers_busy": busy, "chat": cells}
    finally:
        target.stop()


async def main_async(opts: argparse.Namespace) -> dict:
    python = sys.executable
    logdir = opts.out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": {**machine(), "mode": "quick" if opts.quick else "full"}}
    results["meta"]["nofile"] = opts.nofile
    results["meta"]["somaxconn"] = opts.somaxconn
    results["meta"]["slow"] = {
        "chunks": opts.slow_chunks, "delay_ms": opts.slow_delay_ms, "ramp_s": opts.slow_ramp
    }  # fmt: skip
    results["meta"]["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["translation_micro"] = translation_micro(python)
    print(f"translation micro-benchmark: {results['translation_micro']}", flush=True)

    fast_port, slow_port = free_port(), free_port()
    opts.upstream_ports = (fast_port, slow_port)
    upstreams = [
        fake_upstream(fast_port, 50, 0, logdir, targets.MODEL).start(pin(1)),
        fake_upstream(
            slow_port, opts.slow_chunks, opts.slow_delay_ms, logdir, targets.SLOW_MODEL
        ).start(pin(1)),
    ]
    rows: dict[str, Any] = {}
    try:
        for up in upstreams:
            targets.wait_answer(up, int(up.name.split(":")[1]), "/v1/chat/completions", b"{}")
        for name in opts.targets:
            target = None
            try:
                target = start(name, python, fast_port, slow_port, logdir, opts)
                if target is not None:

                    def restart(name: str = name) -> targets.Target | None:
                        return start(name, python, fast_port, slow_port, logdir, opts)

                    target = await bench_target(target, opts, rows, restart)
            except RuntimeError as exc:
                print(f"   {name} failed: {exc}", flush=True)
                rows[name] = {"error": str(exc)[-2000:]}
            finally:
                if target is not None:
                    target.stop()
        if opts.workers_check > 1:
            results["workers_check"] = await workers_check(
                python, fast_port, slow_port, logdir, opts
            )
            print(f"== workers check: {results['workers_check']}", flush=True)
    finally:
        for up in upstreams:
            up.stop()
    results["targets"] = rows
    results["meta"]["loadavg_end"] = os.getloadavg()
    results["meta"]["core0_speed_ms_end"] = core_speed_ms(0)
    return results


def start(
    name: str, python: str, fast: int, slow: int, logdir: Path, opts: argparse.Namespace
) -> targets.Target | None:
    if name == "direct":
        return targets.direct(fast, slow)
    if name == "gateway":
        return targets.start_gateway(python, free_port(), fast, slow, logdir, pin(0))
    if name == "nginx":
        binary = targets.ensure_nginx()
        if binary is None:
            return None
        return targets.start_nginx(
            binary, free_port(), free_port(), fast, slow, logdir, pin(0), opts.nofile
        )
    if name == "litellm":
        binary = targets.ensure_litellm()
        return (
            None
            if binary is None
            else targets.start_litellm(binary, free_port(), fast, slow, logdir, pin(0))
        )
    if name == "floor":
        return targets.start_floor(python, fast, slow, logdir, pin(0))
    if name in ("vllm-router", "smg"):
        if targets.ensure_peers() is None:
            return None
        return targets.start_peer(name, fast, slow, logdir, pin(0))
    raise ValueError(name)


PEERS = ["vllm-router", "smg"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: short cells, small slow tests"
    )
    parser.add_argument(
        "--litellm", action="store_true", help="add the LiteLLM row (installs it once)"
    )
    parser.add_argument(
        "--peers", action="store_true",
        help="add the vllm-router 0.1.17 and SMG 1.13 rows (installs them once) and the floor",
    )  # fmt: skip
    parser.add_argument("--no-nginx", action="store_true", help="leave out the nginx row")
    parser.add_argument(
        "--only", nargs="+", choices=["direct", "gateway", "nginx", "litellm", "floor", *PEERS]
    )
    parser.add_argument("--no-slow", action="store_true", help="leave out the slow-stream tests")
    parser.add_argument(
        "--no-huge", action="store_true", help="leave out the very many (10,000) slow streams"
    )
    parser.add_argument("--conc", type=int, nargs="+", default=[1, 32, 256], help="concurrencies")
    parser.add_argument("--duration", dest="duration_arg", type=float, help="seconds per cell")
    parser.add_argument("--skip-scenarios", nargs="*", default=[], choices=SCENARIOS)
    parser.add_argument(
        "--slow-ramp", type=float, default=2.0,
        help="seconds over which the many slow streams start (x4 for the very many)",
    )  # fmt: skip
    parser.add_argument("--workers-check", type=int, default=None, help="also run --workers N")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    opts = parser.parse_args(argv)
    opts.conc = tuple(opts.conc)
    if opts.quick:
        opts.warmup, opts.duration = 0.5, 1.5
        opts.slow_many, opts.slow_huge, opts.slow_chunks, opts.slow_delay_ms = 300, 1000, 20, 100
        opts.slow_ramp = min(opts.slow_ramp, 0.4)  # streams of 2 s: keep them all concurrent
    else:
        opts.warmup, opts.duration = 1.0, 5.0
        opts.slow_many, opts.slow_huge, opts.slow_chunks, opts.slow_delay_ms = 2000, 10000, 100, 100
    if opts.duration_arg:
        opts.duration = opts.duration_arg
    if opts.workers_check is None:
        opts.workers_check = 0 if opts.quick else 2
    default = ["direct", "gateway"] + ([] if opts.no_nginx else ["nginx"])
    extra = ([*PEERS, "floor"] if opts.peers else []) + (["litellm"] if opts.litellm else [])
    opts.targets = opts.only or default + extra
    return opts


def main() -> None:
    opts = parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the upstreams
    opts.nofile = raise_fd_limit()
    opts.somaxconn = raise_somaxconn()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results = asyncio.run(main_async(opts))
    table = report.render(results)
    print()
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    opts.out.mkdir(parents=True, exist_ok=True)
    for name in (stamp, "latest"):
        (opts.out / f"{name}.md").write_text(table)
        (opts.out / f"{name}.json").write_text(json.dumps(results, indent=1))
    print(f"saved {opts.out / stamp}.md and .json")


if __name__ == "__main__":
    main()
