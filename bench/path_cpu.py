"""Gateway CPU per request and per stream, A/B between two source trees, alternating, with
the gateway pinned to one core (issue 19: the one request path must cost no more).

    .venv/bin/python bench/path_cpu.py /path/to/tree_a /path/to/tree_b [rounds]
        [--conc 8] [--only "chat json" ...]

Each round starts a gateway from each tree in turn (A, B, A, B, …) in front of
bench/fake_upstream.py (20-chunk streams) and measures, at 8 concurrent connections, the
gateway's CPU seconds (user + system, /proc) per completed answer for: Chat JSON, Chat
stream, Responses JSON and Responses stream (translated to Chat). Prints each round and
the median per tree.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Scenario, build_request, closed_loop
from procs import cpu_seconds, free_port, http_post, pin, process_tree

CHUNKS = 20
CONCURRENCY = 8
HI = [{"role": "user", "content": "hi"}]


def scenarios(port: int) -> list[Scenario]:
    def req(path: str, body: dict) -> bytes:
        return build_request("127.0.0.1", port, path, orjson.dumps(body))

    chat = {"model": "bench", "messages": HI}
    responses = {"model": "bench", "input": "hi"}
    return [
        Scenario("chat json", req("/v1/chat/completions", chat)),
        Scenario("chat stream", req("/v1/chat/completions", {**chat, "stream": True}),
                 stream=True, done_marker=b"[DONE]", error_marker=b'data: {"error"'),
        Scenario("responses json", req("/v1/responses", responses)),
        # `store` defaults to true (issue 21): the line above pays the SQLite write
        Scenario("responses json unstored", req("/v1/responses", {**responses, "store": False})),
        Scenario("responses stream", req("/v1/responses", {**responses, "stream": True}),
                 stream=True, done_marker=b"response.completed", error_marker=b"event: error"),
    ]  # fmt: skip


def start_gateway(
    tree: Path, up_port: int, tmp: Path, core: int, request_log: bool = False
) -> tuple[subprocess.Popen, int]:
    """The gateway of source tree `tree` on `core`, one `vllm` route to the fake upstream,
    answering (a Chat request got 200) when this returns."""
    port = free_port()
    config = tmp / f"gateway-{port}.yaml"
    log = "true" if request_log else "false"
    config.write_text(
        f"""server: {{port: {port}, request_log: {log}, log_level: warning}}
models:
  - {{name: bench, backend: vllm, base_url: "http://127.0.0.1:{up_port}/v1",
      upstream_model: fake}}
"""
    )
    cpu = pin(core)
    prefix = ["taskset", "-c", cpu] if cpu else []
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    probe = orjson.dumps({"model": "bench", "messages": HI})
    deadline = time.monotonic() + 60
    while http_post(port, "/v1/chat/completions", probe, timeout=2.0) != 200:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the gateway from {tree} did not answer")
        time.sleep(0.05)
    return proc, port


def measure(
    tree: Path, up_port: int, tmp: Path, conc: int = CONCURRENCY, only: list[str] | None = None
) -> dict[str, float]:
    gateway, gw_port = start_gateway(tree, up_port, tmp, core=1)
    out: dict[str, float] = {}
    try:
        pids = process_tree(gateway.pid)
        for scenario in scenarios(gw_port):
            if only and scenario.name not in only:
                continue
            marks: list[float] = []
            result = asyncio.run(
                closed_loop("127.0.0.1", gw_port, scenario, conc, 1.0, 4.0,
                            on_window=lambda start, m=marks: m.append(cpu_seconds(pids)))
            )  # fmt: skip
            if result.errors or not result.completed:
                raise RuntimeError(f"{tree} {scenario.name}: {result.errors} errors")
            out[scenario.name] = (marks[1] - marks[0]) / result.completed * 1e6
    finally:
        gateway.terminate()
        gateway.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree_a", type=Path)
    parser.add_argument("tree_b", type=Path)
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    parser.add_argument("--conc", type=int, default=CONCURRENCY, help="connections per cell")
    parser.add_argument("--only", nargs="+", help='scenario names, e.g. "chat json"')
    args = parser.parse_args()
    trees, rounds = [args.tree_a, args.tree_b], args.rounds
    here = Path(__file__).resolve().parent
    up_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(here / "fake_upstream.py"), "--port", str(up_port),
         "--chunks", str(CHUNKS)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    runs: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(rounds):
                for i in (0, 1) if n % 2 == 0 else (1, 0):
                    runs[i].append(measure(trees[i], up_port, Path(tmp), args.conc, args.only))
                    cells = ", ".join(f"{k} {v:.0f}" for k, v in runs[i][-1].items())
                    print(f"round {n + 1} {'AB'[i]}: {cells} (µs CPU per answer)", flush=True)
    finally:
        upstream.terminate()
        upstream.wait(10)
    print("median µs of gateway CPU per answer (A → B):")
    for name in runs[0][0]:
        a = statistics.median(r[name] for r in runs[0])
        b = statistics.median(r[name] for r in runs[1])
        print(f"  {name:17} {a:7.0f} → {b:7.0f}  ({(b - a) / a * 100:+.1f} %)")


if __name__ == "__main__":
    main()
