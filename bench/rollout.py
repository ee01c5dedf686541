"""The rollout routing benchmark: one GRPO × multi-turn batch through every router and policy,
against the same simulated vLLM replicas, in one run, one table.

    bash bench/rollout.sh [--replicas N] [--prompts P] [--group G] [--turns T] [--seed S]
                          [--only NAME…]

NAME is a router (`direct`, `gym-gateway`, `vllm-router`, `smg`) or `router:policy`.
Writes bench/results/rollout-latest.json (one row per router and policy), .md, .html and a
-detail.json (machine, parameters, per-replica counters). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import rollout_report
import rollout_routers as routers
from procs import ROOT, Proc, core_speed_ms, cpu_seconds, http_post, machine
from rollout_workload import Shape, build, play

RESULTS = ROOT / "bench" / "results"


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _get(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def start_engines(opts: argparse.Namespace, logdir: Path) -> tuple[Proc, list[str]]:
    port_file = logdir / f"sim-{opts.replicas}.json"
    port_file.unlink(missing_ok=True)
    argv = [
        sys.executable, str(ROOT / "bench" / "sim_engine.py"),
        "--replicas", str(opts.replicas), "--port-file", str(port_file),
        "--speed", str(opts.speed), "--kv-tokens", str(opts.kv_tokens),
        "--max-batch", str(opts.max_batch),
    ]  # fmt: skip
    proc = Proc("sim-engine", argv, logdir / f"sim-{opts.replicas}.log").start()
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the simulated engines did not start:\n{proc.tail()}")
        time.sleep(0.05)
    ports = json.loads(port_file.read_text())["ports"]
    return proc, [f"http://127.0.0.1:{p}" for p in ports]


def reset_engines(urls: list[str]) -> None:
    for url in urls:
        _get(f"{url}/sim/reset", "POST")


def wait_ready(started: routers.Started, gateway: bool, timeout: float = 120.0) -> float:
    """Seconds until the router answers a chat request with 200."""
    body = json.dumps(
        {"model": routers.MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    ).encode()
    url = started.client.direct_urls[0] if started.client.direct_urls else started.client.url
    port = int(url.split(":")[2].split("/")[0])
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if started.proc is not None and not started.proc.alive():
            raise RuntimeError(f"{started.proc.name} exited:\n{started.proc.tail()}")
        if gateway:
            # the gateway has its routes once /health answers; a probe conversation would
            # stay in its placement state (the peers need one: they register workers late)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    return time.perf_counter() - t0
            except OSError:
                time.sleep(0.2)
                continue
        if http_post(port, "/v1/chat/completions", body, timeout=5.0) == 200:
            return time.perf_counter() - t0
        time.sleep(0.2)
    tail = started.proc.tail() if started.proc else ""
    raise RuntimeError(f"no 200 within {timeout:.0f} s:\n{tail}")


async def run_arm(
    arm: routers.Arm, opts: argparse.Namespace, shape: Shape, urls: list[str], logdir: Path
) -> dict[str, Any]:
    started = routers.start(arm, opts.python, urls, logdir)
    try:
        wait_ready(started, arm.router == "gym-gateway")
        await asyncio.sleep(0.5)  # start-up work done before measuring
        reset_engines(urls)
        pids = started.proc.tree() if started.proc else []
        cpu0 = cpu_seconds(pids)
        result = await play(started.client, build(shape), shape)
        cpu = cpu_seconds(pids) - cpu0
    finally:
        if started.proc is not None:
            started.proc.stop()
    stats = [_get(f"{u}/sim/stats") for u in urls]
    prompt = sum(s["prompt_tokens"] for s in stats)
    served = [s["served"] for s in stats]
    busy = [s["busy_sim_s"] for s in stats]
    row = {
        "router": arm.router,
        "policy": arm.policy,
        "makespan_s": round(result.makespan_s, 3),
        "hit_rate": round(sum(s["cached_tokens"] for s in stats) / prompt, 4) if prompt else 0.0,
        "p50_turn_ms": round(quantile(result.turn_ms, 0.5), 1),
        "p99_turn_ms": round(quantile(result.turn_ms, 0.99), 1),
        "busiest_share": round(max(served) / sum(served), 4) if sum(served) else 0.0,
        "router_cpu_s": round(cpu, 3) if started.proc else 0.0,
    }
    detail = {
        **row,
        "errors": len(result.errors),
        "first_errors": result.errors[:3],
        "turns": len(result.turn_ms),
        "busiest_engine_share": round(max(busy) / sum(busy), 4) if sum(busy) else 0.0,
        "replicas": stats,
        "turn_ms": [round(x, 1) for x in result.turn_ms],
    }
    return {"row": row, "detail": detail}


def _range(text: str, kind: type = int) -> tuple[Any, Any]:
    low, _, high = text.partition(":")
    return kind(low), kind(high or low)


def selected(only: list[str] | None) -> list[routers.Arm]:
    arms = routers.all_arms()
    if not only:
        return arms
    return [a for a in arms if a.router in only or a.name in only]


async def main_async(opts: argparse.Namespace) -> dict[str, Any]:
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    shape = Shape(
        prompts=opts.prompts,
        group=opts.group,
        turns=opts.turns,
        seed=opts.seed,
        system_tokens=opts.system_tokens,
        prompt_tokens=_range(opts.prompt_tokens),
        tool_tokens=_range(opts.tool_tokens),
        output_tokens=_range(opts.output_tokens),
        tool_seconds=_range(opts.tool_seconds, float),
        speed=opts.speed,
        stream=opts.stream,
    )
    meta: dict[str, Any] = {
        **machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "args": {k: v for k, v in vars(opts).items() if k != "python"},
    }
    engines, urls = start_engines(opts, logdir)
    rows, details, skipped = [], [], []
    try:
        for arm in selected(opts.only):
            if arm.router in ("vllm-router", "smg") and routers.peer_binary(arm.router) is None:
                skipped.append(f"{arm.name}: not installed ({routers.PEERS / arm.router})")
                continue
            print(f"== {arm.name}", flush=True)
            try:
                out = await run_arm(arm, opts, shape, urls, logdir)
            except Exception as exc:
                skipped.append(f"{arm.name}: {type(exc).__name__}: {str(exc)[:400]}")
                print(f"   failed: {exc}", flush=True)
                continue
            rows.append(out["row"])
            details.append(out["detail"])
            print("   " + json.dumps(out["row"]), flush=True)
            if out["detail"]["errors"]:
                print(f"   {out['detail']['errors']} errors: {out['detail']['first_errors']}")
    finally:
        engines.stop()
    meta["loadavg_end"] = __import__("os").getloadavg()
    meta["core0_speed_ms_end"] = core_speed_ms(0)
    meta["skipped"] = skipped
    return {"meta": meta, "rows": rows, "details": details}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--prompts", type=int, default=16, help="P: prompts in the GRPO batch")
    p.add_argument("--group", type=int, default=8, help="G: samples per prompt")
    p.add_argument("--turns", type=int, default=3, help="T: turns per trajectory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", metavar="NAME", help="router or router:policy")
    p.add_argument("--stream", action="store_true", help="SSE instead of JSON answers")
    p.add_argument("--system-tokens", type=int, default=1500, help="shared by every prompt")
    p.add_argument("--prompt-tokens", default="300:3000", help="task prompt, LOW:HIGH")
    p.add_argument("--tool-tokens", default="50:800", help="tool result per turn, LOW:HIGH")
    p.add_argument("--output-tokens", default="30:250", help="answer per turn, LOW:HIGH")
    p.add_argument("--tool-seconds", default="0.2:2", help="tool run time (simulated), LOW:HIGH")
    p.add_argument("--speed", type=float, default=5.0, help="simulated time per real second")
    p.add_argument("--kv-tokens", type=int, default=24_000, help="KV cache per replica")
    p.add_argument("--max-batch", type=int, default=256, help="running sequences per replica")
    p.add_argument("--python", default=sys.executable, help="runs the gateway")
    p.add_argument("--out", default=str(RESULTS / "rollout-latest"))
    p.add_argument("--svg-dir", help="also write the plots as SVG files here (docs/img)")
    return p.parse_args(argv)


def main() -> None:
    opts = parse_args()
    results = asyncio.run(main_async(opts))
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results["rows"], indent=1))
    Path(f"{out}-detail.json").write_text(json.dumps(results, indent=1))
    table = rollout_report.markdown(results)
    out.with_suffix(".md").write_text(table)
    out.with_suffix(".html").write_text(rollout_report.html(results))
    if opts.svg_dir:
        for name, text in rollout_report.svg_files(results).items():
            (Path(opts.svg_dir) / name).write_text(text)
    print(table)
    if results["rows"]:
        best = min(results["rows"], key=lambda r: r["makespan_s"])
        print(f"fastest: {best['router']}:{best['policy']} {best['makespan_s']} s")


if __name__ == "__main__":
    main()
