"""Managed local engines (`launch`): started at start-up, health-waited, logged with a
prefix, restarted with backoff when they die, stopped on shutdown. The engine is the fake
upstream (bench/fake_upstream.py), a real OpenAI-compatible server process."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import free_port

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "bench" / "fake_upstream.py"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().split()[2] != "Z"


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def config(port: int, launch: str, timeout: float = 20) -> str:
    return f"""
models:
  - name: local
    backend: vllm
    base_url: http://127.0.0.1:{port}/v1
    retries: {{attempts: 0}}
    launch:
      command: "{launch}"
      startup_timeout: {timeout}
      max_backoff: 1
      stop_timeout: 5
"""


def engines(gw: GatewayProcess) -> dict:
    return httpx.get(gw.url + "/health", timeout=5).json()["engines"]["local"]


def test_engine_lifecycle(tmp_path: Path) -> None:
    port = free_port()
    gw = GatewayProcess(
        config(port, f"{sys.executable} {FAKE} --port {port}"), tmp_path
    ).wait_ready(timeout=30)
    try:
        status = engines(gw)
        assert status["state"] == "running" and status["restarts"] == 0
        first = status["pid"]
        chat = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
        resp = httpx.post(gw.url + "/v1/chat/completions", json=chat, timeout=10)
        assert resp.status_code == 200 and resp.json()["model"] == "local"
        assert f"[local] fake upstream on http://127.0.0.1:{port}/v1" in gw.log()

        os.kill(first, signal.SIGKILL)  # the engine dies: restarted with backoff
        wait_for(lambda: engines(gw)["restarts"] == 1 and engines(gw)["state"] == "running")
        second = engines(gw)["pid"]
        assert second != first and alive(second)
        resp = httpx.post(gw.url + "/v1/chat/completions", json=chat, timeout=10)
        assert resp.status_code == 200
        assert "engine exited with code -9" in gw.log()
    finally:
        gw.stop()
    wait_for(lambda: not alive(second), timeout=10)  # stopped with the gateway
    assert "Traceback" not in gw.log()


@pytest.mark.parametrize(
    ("launch", "timeout", "message"),
    [
        (f"{sys.executable} -c 'import sys; print(\\\"bad flag\\\", sys.argv); sys.exit(3)' "
         "--api-key sk-launch-secret-1", 20, "exited with code 3 before it was healthy"),
        (f"{sys.executable} -c 'import time; time.sleep(60)'", 1, "was not healthy"),
    ],
)  # fmt: skip
def test_engine_that_never_gets_healthy_fails_start_up(
    tmp_path: Path, launch: str, timeout: float, message: str
) -> None:
    gw = GatewayProcess(config(free_port(), launch, timeout), tmp_path)
    with pytest.raises(RuntimeError, match="exited early"):
        gw.wait_ready(timeout=30)
    log = gw.log()
    gw.stop()
    assert message in log
    if "exited" in message:
        assert "[local] bad flag" in log and "'--api-key', '***'" in log
    assert "sk-launch-secret" not in log  # engines print their arguments: keys are masked
