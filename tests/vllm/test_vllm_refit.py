"""The refit control plane against the real vLLM server (started with VLLM_SERVER_DEV_MODE=1,
which registers its /pause, /resume and /is_paused)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.tiny_llama import HELLO


@pytest.fixture(scope="module")
def refit_gateway(
    vllm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = f"""
models:
  - name: tiny
    backend: vllm
    base_url: {vllm_url}
    upstream_model: tiny-llama
    engine_control: true
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("refit")).wait_ready()
    yield proc
    httpx.post(proc.url + "/admin/resume", timeout=30)
    proc.stop()


def engine_paused(vllm_url: str) -> bool:
    root = vllm_url.removesuffix("/v1")
    return httpx.get(root + "/is_paused", timeout=10).json()["is_paused"]


def chat(gw: GatewayProcess, max_tokens: int = 4, timeout: float = 120) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        timeout=timeout,
        json={"model": "tiny", "messages": HELLO, "max_tokens": max_tokens, "temperature": 0},
    )


@pytest.mark.parametrize("mode", ["wait", "keep", "abort"])
def test_pause_and_resume_reach_the_engine(
    refit_gateway: GatewayProcess, vllm_url: str, mode: str
) -> None:
    paused = httpx.post(refit_gateway.url + "/admin/pause", json={"mode": mode}, timeout=60)
    assert paused.status_code == 200, paused.text
    doc = paused.json()
    assert doc["paused"] is True and doc["mode"] == mode
    assert [e["status"] for e in doc["engines"]] == [200]
    assert engine_paused(vllm_url) is True
    resumed = httpx.post(refit_gateway.url + "/admin/resume", timeout=60).json()
    assert resumed["paused"] is False and [e["status"] for e in resumed["engines"]] == [200]
    assert engine_paused(vllm_url) is False
    assert chat(refit_gateway).status_code == 200


def test_requests_wait_while_paused_and_carry_the_policy_version(
    refit_gateway: GatewayProcess, vllm_url: str
) -> None:
    httpx.post(refit_gateway.url + "/admin/policy_version", json={"version": "v1"})
    assert chat(refit_gateway).headers["x-policy-version"] == "v1"

    async def scenario() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(timeout=120) as client:
            await client.post(refit_gateway.url + "/admin/pause", json={"mode": "keep"})
            started = time.monotonic()
            waiting = asyncio.create_task(
                client.post(
                    refit_gateway.url + "/v1/chat/completions",
                    json={"model": "tiny", "messages": HELLO, "max_tokens": 4, "temperature": 0},
                )
            )
            await asyncio.sleep(1.0)
            assert not waiting.done()  # held at the gateway, not failed
            await client.post(refit_gateway.url + "/admin/policy_version", json={"version": "v2"})
            await client.post(refit_gateway.url + "/admin/resume")
            return await waiting, time.monotonic() - started

    answer, waited = asyncio.run(scenario())
    assert answer.status_code == 200 and waited >= 1.0
    assert answer.headers["x-policy-version"] == "v2"  # admitted after the update


def test_abort_cuts_off_an_in_flight_request(refit_gateway: GatewayProcess, vllm_url: str) -> None:
    """The tiny model generates faster than a test can pause, so the engine is paused first
    (its own /pause?mode=keep): the request then waits inside vLLM, in flight at the gateway,
    and the gateway's pause in mode abort must cut it off with a 503 the client can retry."""
    root = vllm_url.removesuffix("/v1")

    async def scenario() -> tuple[httpx.Response, dict]:
        async with httpx.AsyncClient(timeout=180) as client:
            await client.post(root + "/pause", params={"mode": "keep"})
            request = asyncio.create_task(
                client.post(
                    refit_gateway.url + "/v1/chat/completions",
                    json={"model": "tiny", "messages": HELLO, "max_tokens": 8, "temperature": 0},
                )
            )
            await asyncio.sleep(1.0)
            assert not request.done()  # held by the paused engine
            paused = await client.post(
                refit_gateway.url + "/admin/pause", json={"mode": "abort", "timeout_s": 30}
            )
            result = await request
            await client.post(refit_gateway.url + "/admin/resume")
            return result, paused.json()

    result, paused = asyncio.run(scenario())
    assert paused["aborted"] >= 1 and paused["drained"] is True
    assert result.status_code == 503
    assert result.json()["error"]["code"] == "aborted_for_refit"
    assert result.headers["retry-after"] == "1"
    assert engine_paused(vllm_url) is False
    assert chat(refit_gateway).status_code == 200
