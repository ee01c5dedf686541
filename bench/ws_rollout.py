"""WebSocket mode against HTTP for multi-turn tool rollouts, and the store's cost per request.

    python bench/ws_rollout.py [--turns 20] [--rollouts 8] [--repeat 3]

Starts the gateway (its state dir in a temporary directory) and bench/fake_upstream.py as a
slow engine (10 streamed chunks, 5 ms apart: ~50 ms a turn), then runs `--rollouts`
concurrent rollouts of `--turns` turns on two routes:

* `mock`: the built-in mock, every turn a forced function call, the next input its
  function_call_output (a 1 KiB tool result): a tool rollout;
* `slow`: the fake engine (text answers), the next input a user message with a 1 KiB result.

and five ways of sending them:

* `http-json-full`: HTTP JSON (no stream), `store: false`, the whole conversation resent each
  turn: what NeMo Gym does today;
* `http-full`: the same as an SSE stream;
* `http-stored`: HTTP SSE, `store: true`, only the new input + `previous_response_id`;
* `ws`: one WebSocket per rollout, `store: false`, only the new input (connection memory);
* `ws-stored`: the same with `store: true` (each turn also written to SQLite).

Reported per mode: the rollout's end-to-end time (median over repeats) and the gateway's
CPU time per turn (utime + stime of its process, /proc). The client runs in this process
and is not counted. Figures go in docs/performance.md; never timed assertions in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Proc, cpu_seconds, free_port, process_tree

TOOL = {"type": "function", "name": "lookup", "description": "look a key up",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}}}  # fmt: skip
RESULT = "r" * 1024  # a tool result of 1 KiB
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
LAST = tuple(f'{{"type":"{t}"' for t in (*TERMINAL, "error"))


def first_input() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Look up the keys one by one, then summarise."}]


def body_for(route: str) -> dict[str, Any]:
    if route == "mock":
        return {"model": "mock", "tools": [TOOL],
                "tool_choice": {"type": "function", "name": "lookup"}}  # fmt: skip
    return {"model": "slow", "max_output_tokens": 64}


def next_input(output: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    last = output[-1]
    if last.get("type") == "function_call":
        return [{"type": "function_call_output", "call_id": last["call_id"], "output": RESULT}]
    return [{"role": "user", "content": f"result {turn}: {RESULT}"}]


async def sse_turn(session: aiohttp.ClientSession, url: str, body: dict) -> dict[str, Any]:
    async with session.post(url, json={**body, "stream": True}) as answer:
        assert answer.status == 200, await answer.text()
        buffer = b""
        async for chunk in answer.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                if frame.startswith(b"event: response.") and any(
                    frame.startswith(b"event: " + t.encode() + b"\n") for t in TERMINAL
                ):
                    return json.loads(frame.split(b"\ndata: ", 1)[1])["response"]
    raise RuntimeError("stream ended without a terminal event")


async def json_turn(session: aiohttp.ClientSession, url: str, body: dict) -> dict[str, Any]:
    async with session.post(url, json=body) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def http_rollout(url: str, route: str, turns: int, stored: bool, stream: bool = True) -> None:
    history = first_input()
    new = history
    previous = None
    async with aiohttp.ClientSession() as session:
        for turn in range(turns):
            body = {**body_for(route), "store": stored}
            if stored:
                body["input"] = new
                if previous:
                    body["previous_response_id"] = previous
            else:
                body["input"] = history
            turn_call = sse_turn if stream else json_turn
            response = await turn_call(session, url + "/v1/responses", body)
            output = response["output"]
            new = next_input(output, turn)
            history = [*history, *output, *new]
            previous = response["id"]


async def ws_rollout(url: str, route: str, turns: int, stored: bool) -> None:
    new = first_input()
    previous = None
    async with websockets.connect(url.replace("http", "ws") + "/v1/responses") as ws:
        for turn in range(turns):
            body = {"type": "response.create", **body_for(route), "store": stored, "input": new}
            if previous:
                body["previous_response_id"] = previous
            await ws.send(json.dumps(body))
            while True:  # parse only the last event, as the SSE client does
                message = await ws.recv()
                if message.startswith(LAST):
                    event = json.loads(message)
                    break
            assert event["type"] == "response.completed", event
            new = next_input(event["response"]["output"], turn)
            previous = event["response"]["id"]


MODES = {
    "http-json-full": lambda u, r, t: http_rollout(u, r, t, False, stream=False),
    "http-full": lambda u, r, t: http_rollout(u, r, t, False),
    "http-stored": lambda u, r, t: http_rollout(u, r, t, True),
    "ws": lambda u, r, t: ws_rollout(u, r, t, False),
    "ws-stored": lambda u, r, t: ws_rollout(u, r, t, True),
}


async def measure(url: str, pids: list[int], route: str, mode: str, args: Any) -> tuple:
    times, cpus = [], []
    for _ in range(args.repeat):
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        runs = [MODES[mode](url, route, args.turns) for _ in range(args.rollouts)]
        await asyncio.gather(*runs)
        times.append(time.perf_counter() - t0)
        cpus.append((cpu_seconds(pids) - cpu0) / (args.rollouts * args.turns))
    return statistics.median(times), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    engine_port, port = free_port(), free_port()
    fake = [sys.executable, "bench/fake_upstream.py", "--port", str(engine_port)]
    engine = Proc("fake", [*fake, "--chunks", "10", "--delay-ms", "5"], work / "fake.log").start()
    config = work / "gateway.yaml"
    config.write_text(
        "server: {request_log: false}\n"
        "models:\n"
        "  - {name: mock, backend: mock}\n"
        f"  - {{name: slow, backend: vllm, base_url: 'http://127.0.0.1:{engine_port}/v1'}}\n"
    )
    gateway = Proc("gateway", [sys.executable, "-m", "gateway", "serve", "--port", str(port),
                               "--config", str(config)], work / "gateway.log",
                   env={"GYM_GATEWAY_SERVER__STATE_DIR": str(work / "state")}).start()  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        pids = process_tree(gateway.pid)
        rows = []
        for route in ("mock", "slow"):
            for mode in MODES:
                if route == "slow" and mode == "http-json-full":
                    continue  # the fake engine delays streams only: not comparable
                asyncio.run(measure(url, pids, route, mode, argparse.Namespace(
                    turns=3, rollouts=1, repeat=1)))  # warm-up  # fmt: skip
                wall, cpu = asyncio.run(measure(url, pids, route, mode, args))
                rows.append((route, mode, wall, cpu))
                print(f"{route:5} {mode:15} rollout {wall * 1000:8.1f} ms   "
                      f"gateway CPU/turn {cpu * 1e6:7.0f} µs", flush=True)  # fmt: skip
        print(f"\n{args.rollouts} concurrent rollouts x {args.turns} turns, median of "
              f"{args.repeat}; 'rollout' = wall time for all of them")  # fmt: skip
        print("| route | mode | rollouts' wall time (ms) | gateway CPU per turn (µs) |")
        print("| --- | --- | ---: | ---: |")
        for route, mode, wall, cpu in rows:
            print(f"| {route} | {mode} | {wall * 1000:.0f} | {cpu * 1e6:.0f} |")
    finally:
        gateway.stop()
        engine.stop()


if __name__ == "__main__":
    main()
