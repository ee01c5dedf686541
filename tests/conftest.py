from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

# Each route of the e2e gateway maps to one behaviour of the scripted upstream.
UPSTREAM_ROUTES = [
    "ok",
    "big-stream",
    "err-openai",
    "err-vllm",
    "err-flat",
    "err-tgi",
    "err-gemini",
    "err-fastapi",
    "err-429",
    "err-notfound",
    "err-html",
    "garbage",
    "slow-json",
    "slow-stream",
    "stall",
    "reset",
    "truncated",
    "midstream-error",
    "vllm-replay",
]


def gateway_config(upstream_url: str) -> str:
    lines = [
        "server:",
        "  max_body_bytes: 65536",
        "models:",
        "  - name: echo",
        "    backend: mock",
        "  - name: dead",
        "    backend: vllm",
        "    base_url: http://127.0.0.1:9/v1",
        "    api_key: sk-dead-secret-key",
        "    retries: {attempts: 0}",
        "    health: {failures_to_eject: 1000, path: null}",
    ]
    for name in UPSTREAM_ROUTES:
        lines += [
            f"  - name: up-{name}",
            "    backend: vllm",
            f"    base_url: {upstream_url}",
            f"    upstream_model: {name}",
            "    api_key: ${TEST_UPSTREAM_KEY}",
            "    headers: {x-route-header: route-value}",
            "    timeouts: {first_byte: 2.0, idle: 2.0}",
            "    retries: {attempts: 0}",
        ]
    lines += [
        "  - name: up-sglang-replay",
        "    backend: sglang",
        f"    base_url: {upstream_url}",
        "    upstream_model: sglang-replay",
        "  - name: native",
        "    backend: openai",
        f"    base_url: {upstream_url}",
        "    upstream_model: native-model",
        "    api_key: sk-native-secret",
        "  - name: native-err",
        "    backend: openai",
        f"    base_url: {upstream_url}",
        "    upstream_model: err-429",
        "    api_key: sk-native-secret",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("gateway")
    proc = GatewayProcess(
        gateway_config(upstream.base_url),
        workdir,
        env={"TEST_UPSTREAM_KEY": "sk-test-upstream-key"},
    ).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def openai_client(gateway: GatewayProcess):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
