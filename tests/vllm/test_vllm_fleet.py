"""The fleet in front of the real vLLM server: two gateway members sharing their refit state
on a real redis-server (docs/scaling.md). A pause taken by one member pauses the engine once
and holds a request sent to the other member until the resume; that request then carries the
version set in between, through the other member."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def two_members(
    vllm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[GatewayProcess]]:
    workdir = tmp_path_factory.mktemp("vllm-fleet")
    redis = RedisServer(workdir).start()
    config = f"""
cluster: {{redis_url: '{redis.url}', heartbeat_s: 0.25, member_ttl_s: 1.0}}
models:
  - name: tiny
    backend: vllm
    base_url: {vllm_url}
    upstream_model: tiny-llama
    engine_control: true
"""
    members = [GatewayProcess(config, workdir) for _ in range(2)]
    try:
        yield [m.wait_ready(60) for m in members]
    finally:
        httpx.post(members[0].url + "/admin/resume", timeout=30)
        for member in members:
            member.stop()
        redis.stop()


def test_pause_via_one_member_holds_a_request_via_the_other(
    two_members: list[GatewayProcess], vllm_url: str
) -> None:
    a, b = two_members
    root = vllm_url.removesuffix("/v1")
    paused = httpx.post(a.url + "/admin/pause", json={"mode": "wait"}, timeout=120)
    assert paused.status_code == 200, paused.text
    doc = paused.json()
    assert doc["fleet"]["members"] == 2 and doc["fleet"]["confirmed"]
    assert [e["status"] for e in doc["engines"]] == [200]  # once, by the member called
    assert httpx.get(root + "/is_paused", timeout=10).json()["is_paused"] is True

    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 4, "temperature": 0}  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, b.url + "/v1/chat/completions", json=body, timeout=300)
        time.sleep(1.0)
        assert not held.done()  # waiting at member b, not sent to the paused engine
        status_b = httpx.get(b.url + "/admin/status", timeout=10).json()
        assert status_b["paused"] is True
        version = httpx.post(b.url + "/admin/policy_version", json={"version": "step-7"},
                             timeout=30)  # fmt: skip
        assert version.status_code == 200, version.text
        assert not held.done()
        resumed = httpx.post(a.url + "/admin/resume", timeout=120)
        assert resumed.status_code == 200, resumed.text
        answer = held.result(timeout=300)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-policy-version"] == "step-7"
    assert answer.json()["policy_version"] == "step-7"
    assert httpx.get(root + "/is_paused", timeout=10).json()["is_paused"] is False
