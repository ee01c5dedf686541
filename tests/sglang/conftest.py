"""The real SGLang 0.5.23 CPU server for tests marked `sglang`.

`GYM_GATEWAY_SGLANG_URL=http://host:port/v1` uses a running server; otherwise the session
provisions one with tests/sglang/sglang_server.sh (cached under ~/.cache/gym-gateway; about
2-3 minutes the first time, ~30 s after) and stops it at the end. `GYM_GATEWAY_SGLANG=off`
skips these tests; CI sets `GYM_GATEWAY_REQUIRE_SGLANG=1`, which turns any skip into a
failure. The script's progress lines go to the terminal while it runs (not only to its log).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess
from tests.provision import real_engine_url
from tests.tiny_llama import MODEL

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "sglang_server.sh"
CACHE = Path(os.environ.get("GYM_GATEWAY_CACHE") or Path.home() / ".cache" / "gym-gateway")
# the second tiny model (same tokenizer, other weights: make_tiny_model.py --seed 1)
SECOND_MODEL = CACHE / "tiny-llama-seed1"
FIRST_MODEL = CACHE / "tiny-llama"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.sglang)


@pytest.fixture(scope="session")
def sglang_url(pytestconfig: pytest.Config) -> Iterator[str]:
    yield from real_engine_url(pytestconfig, "SGLang", "SGLANG", SCRIPT)


@pytest.fixture(scope="session")
def sglang_root(sglang_url: str) -> str:
    return sglang_url.removesuffix("/v1")


@pytest.fixture(scope="session")
def sglang_gateway(
    sglang_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    # one route with engine_control (each engine is paused once per /admin/pause)
    config = f"""
models:
  - name: tiny
    backend: sglang
    base_url: {sglang_url}
    upstream_model: {MODEL}
    engine_control: true
    health: {{interval_s: 1.0}}
  - name: tiny-missing
    backend: sglang
    base_url: {sglang_url}
    upstream_model: no-such-model
  - name: tiny-train
    backend: sglang
    base_url: {sglang_url}
    upstream_model: {MODEL}
    training: {{temperature: 1.0, top_p: 1.0}}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("sglang-gw")).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sglang_client(sglang_gateway: GatewayProcess):
    import openai

    return openai.OpenAI(base_url=sglang_gateway.url + "/v1", api_key="unused", max_retries=0)
