"""The real vLLM CPU server for tests marked `vllm`.

`GYM_GATEWAY_VLLM_URL=http://host:port/v1` uses a running server; otherwise the session
provisions one with tests/vllm/vllm_server.sh (cached under ~/.cache/gym-gateway; 3 to 6
minutes the first time, 30 s after; progress is printed live) and stops it at the end. `GYM_GATEWAY_VLLM=off` skips
these tests; CI sets `GYM_GATEWAY_REQUIRE_VLLM=1`, which turns any skip into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess
from tests.provision import real_engine_url
from tests.tiny_llama import MODEL

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "vllm_server.sh"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vllm)


@pytest.fixture(scope="session")
def vllm_url(pytestconfig: pytest.Config) -> Iterator[str]:
    yield from real_engine_url(pytestconfig, "vLLM", "VLLM", SCRIPT)


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
