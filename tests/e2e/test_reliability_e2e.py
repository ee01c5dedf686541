"""Retries and fallbacks through a real gateway process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def reliable(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    u = upstream.base_url
    config = f"""
models:
  - {{name: flaky-429, backend: vllm, base_url: "{u}", upstream_model: flaky-429,
     retries: {{attempts: 2, backoff_s: 0.01}}, health: {{path: null}}}}
  - {{name: flaky-503, backend: vllm, base_url: "{u}", upstream_model: flaky-503,
     retries: {{attempts: 2, backoff_s: 0.01}}, health: {{path: null, failures_to_eject: 100}}}}
  - {{name: no-retry-503, backend: vllm, base_url: "{u}", upstream_model: flaky-503,
     retries: {{attempts: 0}}, health: {{path: null, failures_to_eject: 100}}}}
  - {{name: overflow, backend: vllm, base_url: "{u}", upstream_model: err-vllm,
     fallbacks: [big], retries: {{attempts: 0}}}}
  - {{name: broken, backend: vllm, base_url: "http://127.0.0.1:9/v1", fallbacks: [big],
     retries: {{attempts: 0}}, health: {{path: null}}}}
  - {{name: bad-request, backend: vllm, base_url: "{u}", upstream_model: err-openai,
     fallbacks: [big], retries: {{attempts: 0}}}}
  - {{name: big, backend: mock}}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("reliable")).wait_ready()
    yield proc
    proc.stop()


def chat(gw: GatewayProcess, model: str, **body) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": HELLO, **body},
        timeout=20,
    )


@pytest.mark.parametrize("route", ["flaky-429", "flaky-503"])
def test_retry_hides_a_transient_failure(reliable: GatewayProcess, route: str) -> None:
    for _ in range(4):
        resp = chat(reliable, route)
        assert resp.status_code == 200, resp.text
    for _ in range(2):
        stream = chat(reliable, route, stream=True)
        assert stream.status_code == 200 and stream.text.rstrip().endswith("[DONE]")
    metrics = httpx.get(reliable.url + "/metrics").text
    assert f'gateway_retries_total{{route="{route}"' in metrics


def test_without_retries_the_failure_is_passed_on(reliable: GatewayProcess) -> None:
    statuses = sorted(chat(reliable, "no-retry-503").status_code for _ in range(4))
    assert statuses == [200, 200, 503, 503]


@pytest.mark.parametrize("route", ["overflow", "broken"])
def test_fallback_serves_and_names_the_route(reliable: GatewayProcess, route: str) -> None:
    resp = chat(reliable, route)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-route"] == "big"
    assert resp.json()["model"] == route  # the name the client asked for
    assert resp.json()["choices"][0]["message"]["content"] == "hello"
    stream = chat(reliable, route, stream=True)
    assert stream.status_code == 200 and stream.headers["x-gateway-route"] == "big"
    answer = httpx.post(
        reliable.url + "/v1/responses", json={"model": route, "input": "hello"}, timeout=20
    )
    assert answer.status_code == 200 and answer.headers["x-gateway-route"] == "big"
    assert answer.json()["output"][0]["content"][0]["text"] == "hello"


def test_no_fallback_for_a_client_error(reliable: GatewayProcess) -> None:
    resp = chat(reliable, "bad-request")
    assert resp.status_code == 400 and resp.headers["x-gateway-route"] == "bad-request"


def test_served_route_header_without_fallbacks(reliable: GatewayProcess) -> None:
    assert chat(reliable, "big").headers["x-gateway-route"] == "big"
