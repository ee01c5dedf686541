"""Gateway CPU per relayed stream chunk, end to end: a real gateway process (from the given
source tree) between bench/fake_upstream.py and the closed-loop load generator. For
before/after comparisons of the relay path (issue 18: SSE parsing and chunk checks):

    .venv/bin/python bench/relay_cpu.py                 # this tree
    .venv/bin/python bench/relay_cpu.py /path/to/tree   # another checkout (e.g. main)

Prints the gateway's CPU seconds (user + system, /proc) per 1,000 chunks relayed over a
measuring window, at 8 concurrent streams of 200 chunks each.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Scenario, build_request, closed_loop
from procs import cpu_seconds, free_port, http_post, process_tree

CHUNKS = 200
CONCURRENCY = 8


def main() -> None:
    tree = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    here = Path(__file__).resolve().parent
    up_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gateway.yaml"
        config.write_text(
            f"""server: {{port: {gw_port}, request_log: false, log_level: warning}}
models:
  - {{name: bench, backend: vllm, base_url: "http://127.0.0.1:{up_port}/v1",
      upstream_model: fake}}
"""
        )
        upstream = subprocess.Popen(
            [sys.executable, str(here / "fake_upstream.py"), "--port", str(up_port),
             "--chunks", str(CHUNKS)], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1.0)
            body = orjson.dumps(
                {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            )
            probe = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "x"}]})
            wait_answer_proc(gateway, gw_port, probe)
            scenario = Scenario(
                "stream", build_request("127.0.0.1", gw_port, "/v1/chat/completions", body),
                stream=True, done_marker=b"[DONE]", error_marker=b'data: {"error"',
            )  # fmt: skip
            pids = process_tree(gateway.pid)
            marks: list[float] = []

            def on_window(start: bool) -> None:
                marks.append(cpu_seconds(pids))

            result = asyncio.run(
                closed_loop("127.0.0.1", gw_port, scenario, CONCURRENCY, 2.0, 10.0,
                            on_window=on_window)
            )  # fmt: skip
            cpu = marks[1] - marks[0]
            chunks = result.completed * (CHUNKS + 3)
            print(
                f"{tree}: {result.completed} streams ({result.errors} errors) in "
                f"{result.seconds:.1f} s; gateway CPU {cpu:.2f} s = "
                f"{cpu / chunks * 1e6:.1f} µs per relayed chunk"
            )
        finally:
            for proc in (gateway, upstream):
                proc.terminate()
                proc.wait(10)


def wait_answer_proc(proc: subprocess.Popen[bytes], port: int, body: bytes) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if http_post(port, "/v1/chat/completions", body, timeout=2.0) == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("the gateway did not answer")


if __name__ == "__main__":
    main()
