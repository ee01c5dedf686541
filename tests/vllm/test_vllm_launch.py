"""A managed real vLLM engine (`launch:`) leaves no process behind (issue 18 item 12).

vLLM's CPU server forks `VLLM::EngineCore` and `VLLM::Worker` processes (plus a resource
tracker) into the engine's process group. Killing the main process used to orphan them
(~2 GB here; GPU memory on a GPU) and shutdown did not reach them either.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.e2e.test_launch_e2e import group_members, wait_for
from tests.gateway_process import GatewayProcess
from tests.provision import engine_unavailable
from tests.upstream import free_port
from tests.vllm.conftest import MODEL

CACHE = Path(os.environ.get("GYM_GATEWAY_CACHE", Path.home() / ".cache" / "gym-gateway"))
VENV_PYTHON = CACHE / "vllm-venv" / "bin" / "python"
START_S = 600  # two vLLM start-ups on 2 shared CPU cores


def _names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
        except OSError:
            continue
    return names


def _config(port: int) -> str:
    command = (
        f"{VENV_PYTHON} -m vllm.entrypoints.openai.api_server --model {CACHE / MODEL} "
        f"--served-model-name {MODEL} --host 127.0.0.1 --port {port} --dtype float32 "
        "--max-model-len 2048 --enforce-eager"
    )
    return f"""
models:
  - name: tiny
    backend: vllm
    base_url: http://127.0.0.1:{port}/v1
    upstream_model: {MODEL}
    retries: {{attempts: 0}}
    launch:
      command: "{command}"
      startup_timeout: {START_S}
      max_backoff: 1
      stop_timeout: 30
      env: {{VLLM_CPU_KVCACHE_SPACE: "1", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1",
             VLLM_NO_USAGE_STATS: "1", DO_NOT_TRACK: "1"}}
"""


def _engine(gw: GatewayProcess) -> dict:
    return httpx.get(gw.url + "/health", timeout=10).json()["engines"]["tiny"]


def test_killed_vllm_leaves_no_engine_core_or_worker(tmp_path: Path) -> None:
    if os.environ.get("GYM_GATEWAY_VLLM") == "off":
        engine_unavailable("vLLM", "VLLM", "GYM_GATEWAY_VLLM=off")
    if not VENV_PYTHON.exists() or not (CACHE / MODEL).exists():
        engine_unavailable(
            "vLLM",
            "VLLM",
            "the vLLM venv is not installed (bash tests/vllm/vllm_server.sh install)",
        )
    gw = GatewayProcess(_config(free_port()), tmp_path)
    second = None
    try:
        gw.wait_ready(timeout=START_S)
        first = _engine(gw)["pid"]
        first_group = group_members(first)
        names = _names(first_group)
        assert any("EngineCore" in n for n in names), names  # what used to be orphaned

        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: _engine(gw)["restarts"] == 1 and _engine(gw)["state"] == "running",
            timeout=START_S,
        )
        assert group_members(first) == [], _names(group_members(first))
        assert all(not Path(f"/proc/{p}").exists() for p in first_group)

        second = _engine(gw)["pid"]
        chat = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        answers: list[httpx.Response] = []

        def served() -> bool:
            # the pool ejected the replica while it was down; the active health check
            # (every 5 s) lets it back in
            answers.append(httpx.post(gw.url + "/v1/chat/completions", json=chat, timeout=300))
            return answers[-1].status_code == 200

        wait_for(served, timeout=120)
        assert answers[-1].json()["model"] == "tiny"
    finally:
        gw.proc.terminate()  # the gateway's own shutdown stops the engine (up to stop_timeout)
        gw.proc.wait(120)
        gw.stop()
    if second is not None:
        wait_for(lambda: group_members(second) == [], timeout=60)
