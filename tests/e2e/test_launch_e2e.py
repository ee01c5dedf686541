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


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


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


def test_engine_children_end_with_it(tmp_path: Path) -> None:
    """An engine that forks (as vLLM forks EngineCore and workers): when its main process
    dies, the children it leaves are ended before the restart; shutdown ends the group."""
    port = free_port()
    launch = f"bash -c 'sleep 3600 & exec {sys.executable} {FAKE} --port {port}'"
    gw = GatewayProcess(config(port, launch), tmp_path).wait_ready(timeout=30)
    try:
        first = engines(gw)["pid"]
        children = [p for p in group_members(first) if p != first]
        assert children, "the fake engine's child should share its process group"
        os.kill(first, signal.SIGKILL)  # only the main process: its child is orphaned
        wait_for(lambda: engines(gw)["restarts"] == 1 and engines(gw)["state"] == "running")
        assert group_members(first) == [], "the dead engine's children outlived it"
        second = engines(gw)["pid"]
        chat = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(gw.url + "/v1/chat/completions", json=chat, timeout=10).is_success
        assert len(group_members(second)) == 2
    finally:
        gw.stop()
    wait_for(lambda: group_members(second) == [], timeout=10)


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
