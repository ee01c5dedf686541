"""The real vLLM CPU server for tests marked `vllm`.

`GYM_GATEWAY_VLLM_URL=http://host:port/v1` uses a running server; otherwise the session
provisions one with tests/vllm/vllm_server.sh (cached under ~/.cache/gym-gateway; 3 to 6
minutes the first time, 30 s after; progress is printed live) and stops it at the end. `GYM_GATEWAY_VLLM=off` skips
these tests; CI sets `GYM_GATEWAY_REQUIRE_VLLM=1`, which turns any skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess
from tests.provision import run_visible
from tests.upstream import free_port

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "vllm_server.sh"
MODEL = "tiny-llama"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vllm)


def _unavailable(reason: str) -> None:
    if os.environ.get("GYM_GATEWAY_REQUIRE_VLLM") == "1":
        pytest.fail(f"the real vLLM server is required here but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vllm_url(pytestconfig: pytest.Config) -> Iterator[str]:
    url = os.environ.get("GYM_GATEWAY_VLLM_URL")
    if url:
        yield url.rstrip("/")
        return
    if os.environ.get("GYM_GATEWAY_VLLM") == "off":
        _unavailable("GYM_GATEWAY_VLLM=off")
    port = free_port()
    started = run_visible(
        pytestconfig,
        f"starting the real vLLM CPU server on port {port} (installs it the first time)",
        ["bash", str(SCRIPT), "start", str(port)],
    )
    if started.returncode != 0:
        _unavailable(f"vllm_server.sh start failed (exit {started.returncode})")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(port)], check=False)


@pytest.fixture(scope="session")
def vllm_gateway(
    vllm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = f"""
models:
  - name: tiny
    backend: vllm
    base_url: {vllm_url}
    upstream_model: {MODEL}
  - name: tiny-missing
    backend: vllm
    base_url: {vllm_url}
    upstream_model: no-such-model
  - name: tiny-train
    backend: vllm
    base_url: {vllm_url}
    upstream_model: {MODEL}
    training: {{temperature: 1.0, top_p: 1.0}}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("vllm-gw")).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def vllm_client(vllm_gateway: GatewayProcess):
    import openai

    return openai.OpenAI(base_url=vllm_gateway.url + "/v1", api_key="unused", max_retries=0)
