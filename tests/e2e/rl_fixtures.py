"""Fixtures and helpers of the RL token e2e tests: the real gateway process in front of the
toy token engine (tests/token_engine.py), with one route per behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.token_engine import ToyEngine

CAPTURE = {"logprobs": True, "top_logprobs": 0, "return_tokens_as_token_ids": True}
USER = [{"role": "user", "content": "count to 5"}]
TOOLS = [{"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}]
PING = {"type": "function", "function": {"name": "ping"}}


def _routes(url: str) -> str:
    def route(name: str, backend: str, model: str, *extra: str) -> list[str]:
        lines = [f"  - name: {name}", f"    backend: {backend}", f"    base_url: {url}"]
        lines += [f"    upstream_model: {model}", "    retries: {attempts: 0}", *extra]
        return lines

    lines = ["models:"]
    lines += route("toy", "vllm", "toy")
    lines += route("toy-train", "vllm", "toy", "    training: {temperature: 1.0, top_p: 1.0}")
    lines += route("toy-always", "vllm", "toy", "    token_ids: always")
    lines += route("toy-pass", "vllm", "toy", "    token_ids: passthrough")
    lines += route("toy-ignores", "vllm", "toy-ignores")
    lines += route("toy-no-ids", "vllm", "toy-no-ids")
    lines += route("toy-window", "vllm", "toy-window", "    eos_token_id: 2")
    lines += route("sg", "sglang", "sg-toy")
    lines += route("oa", "openai", "gpt-x", "    api_key: sk-test-key-123")
    lines += ["  - name: echo", "    backend: mock"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def engine() -> Iterator[ToyEngine]:
    server = ToyEngine().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(engine: ToyEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(_routes(engine.base_url), tmp_path_factory.mktemp("rl")).wait_ready()
    yield proc
    proc.stop()


def chat(gw: GatewayProcess, **body: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


def assistant(answer: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as NeMo Gym sends it back: with its token bundle."""
    message = dict(answer["choices"][0]["message"])
    return {k: v for k, v in message.items() if v is not None}
