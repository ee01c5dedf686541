"""The refit control plane against the real SGLang 0.5.23 server.

SGLang has no `is_paused`; a pause is proven by a request sent straight to the engine that
does not finish while paused and finishes after the resume. The gateway maps its modes onto
SGLang's `POST /pause_generation` (keep and wait -> retract, abort -> abort) and resumes
with `POST /continue_generation`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.sglang.conftest import FIRST_MODEL, SECOND_MODEL
from tests.tiny_llama import HELLO

DIRECT = {"model": "tiny-llama", "messages": HELLO, "max_tokens": 4, "temperature": 0}


@pytest.fixture
def gw(sglang_gateway: GatewayProcess) -> Iterator[GatewayProcess]:
    yield sglang_gateway
    httpx.post(sglang_gateway.url + "/admin/resume", timeout=60)  # whatever a test left


async def engine_request_blocked(client: httpx.AsyncClient, sglang_url: str) -> asyncio.Task:
    """A chat sent straight to the engine; asserts it is still waiting after 2 s."""
    task = asyncio.create_task(client.post(sglang_url + "/chat/completions", json=DIRECT))
    await asyncio.sleep(2.0)
    assert not task.done(), "the engine answered while it should be paused"
    return task


@pytest.mark.parametrize(("mode", "engine_mode"), [("wait", "retract"), ("keep", "retract"),
                                                    ("abort", "abort")])  # fmt: skip
def test_gateway_pause_really_pauses_the_engine(
    gw: GatewayProcess, sglang_url: str, mode: str, engine_mode: str
) -> None:
    async def scenario() -> tuple[dict, httpx.Response, dict]:
        async with httpx.AsyncClient(timeout=120) as client:
            paused = await client.post(gw.url + "/admin/pause", json={"mode": mode})
            assert paused.status_code == 200, paused.text
            blocked = await engine_request_blocked(client, sglang_url)
            resumed = (await client.post(gw.url + "/admin/resume")).json()
            return paused.json(), await blocked, resumed

    paused, direct, resumed = asyncio.run(scenario())
    assert paused["paused"] is True and paused["mode"] == mode
    [engine] = paused["engines"]
    assert engine["ok"] and engine["call"] == "/pause_generation"
    assert engine["body"] == {"mode": engine_mode} and engine["status"] == 200
    assert direct.status_code == 200  # it waited inside SGLang and finished after the resume
    assert resumed["paused"] is False and [e["call"] for e in resumed["engines"]] == [
        "/continue_generation"
    ]


def test_health_stays_green_during_a_pause(gw: GatewayProcess, sglang_root: str) -> None:
    """The default health path on SGLang routes is /ping, which answers while generation is
    paused (its /health would block, then fail, and eject the replica)."""

    async def scenario() -> tuple[int, list, httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            await client.post(gw.url + "/admin/pause", json={"mode": "keep"})
            ping = await client.get(sglang_root + "/ping")
            waiting = asyncio.create_task(
                client.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "tiny", "messages": HELLO, "max_tokens": 2},
                )
            )
            await asyncio.sleep(4.0)  # four health polls (interval 1 s)
            pools = (await client.get(gw.url + "/admin/pools")).json()["pools"]
            assert not waiting.done()  # held at the gateway, not failed
            await client.post(gw.url + "/admin/resume")
            return ping.status_code, pools, await waiting

    ping, pools, answer = asyncio.run(scenario())
    assert ping == 200
    states = [r["state"] for pool in pools for r in pool["replicas"]]
    assert states and set(states) == {"healthy"}, pools
    assert answer.status_code == 200, answer.text


def test_abort_cuts_off_an_in_flight_request(gw: GatewayProcess, sglang_root: str) -> None:
    """The engine is paused first (in place), so a request through the gateway waits inside
    SGLang; the gateway's pause in mode abort must end it with a 503 the client retries."""

    async def scenario() -> tuple[httpx.Response, dict]:
        async with httpx.AsyncClient(timeout=180) as client:
            await client.post(sglang_root + "/pause_generation", json={"mode": "in_place"})
            request = asyncio.create_task(
                client.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "tiny", "messages": HELLO, "max_tokens": 8, "temperature": 0},
                )
            )
            await asyncio.sleep(2.0)
            assert not request.done()
            paused = await client.post(
                gw.url + "/admin/pause", json={"mode": "abort", "timeout_s": 30}
            )
            result = await request
            await client.post(gw.url + "/admin/resume")
            return result, paused.json()

    result, paused = asyncio.run(scenario())
    assert paused["aborted"] >= 1 and paused["drained"] is True, paused
    assert result.status_code == 503
    assert result.json()["error"]["code"] == "aborted_for_refit"
    assert httpx.post(gw.url + "/v1/chat/completions", timeout=60,
                      json={"model": "tiny", "messages": HELLO, "max_tokens": 2}).status_code == 200  # fmt: skip


def test_a_failed_engine_pause_is_an_error_not_a_pause(
    sglang_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A vllm route pointed at SGLang: its /pause is a 404 there."""
    config = f"""
models:
  - name: wrong-family
    backend: vllm
    base_url: {sglang_url}
    upstream_model: tiny-llama
    engine_control: true
    health: {{path: null}}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("bad-ctl")).wait_ready()
    try:
        paused = httpx.post(proc.url + "/admin/pause", json={"mode": "keep"}, timeout=60)
        assert paused.status_code == 502
        doc = paused.json()
        assert doc["paused"] is False and doc["error"]["code"] == "engine_pause_failed"
        assert doc["engines"][0]["status"] == 404
        status = httpx.get(proc.url + "/admin/status", timeout=10).json()
        assert status["paused"] is False
        assert status["engine_error"]["code"] == "engine_pause_failed"
    finally:
        proc.stop()


def test_refit_between_two_turns(gw: GatewayProcess, sglang_root: str) -> None:
    """NeMo RL's weight-update test in spirit: pause through the gateway, load other weights
    into SGLang (`/update_weights_from_disk`), resume; the same request's log-probs change and
    the stamped policy version is the engine's new one."""
    body = {
        "model": "tiny",
        "messages": HELLO,
        "max_tokens": 3,
        "temperature": 0,
        "logprobs": True,
        "return_tokens_as_token_ids": True,
    }

    def turn() -> httpx.Response:
        response = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        return response

    def load(path: str, version: str) -> None:
        done = httpx.post(
            sglang_root + "/update_weights_from_disk",
            json={"model_path": str(path), "weight_version": version},
            timeout=300,
        )
        assert done.status_code == 200 and done.json()["success"], done.text

    before = turn()
    paused = httpx.post(gw.url + "/admin/pause", json={"mode": "keep"}, timeout=60)
    assert paused.status_code == 200, paused.text
    try:
        load(SECOND_MODEL, "refit-2")
    finally:
        httpx.post(gw.url + "/admin/resume", timeout=60)
    after = turn()
    try:
        old, new = before.json(), after.json()
        old_lp = old["choices"][0]["message"]["generation_log_probs"]
        new_lp = new["choices"][0]["message"]["generation_log_probs"]
        assert old_lp != new_lp
        assert after.headers["x-policy-version"] == new["policy_version"] == "refit-2"
        assert before.headers["x-policy-version"] != "refit-2"
        model_info = httpx.get(sglang_root + "/model_info", timeout=30).json()
        assert model_info["weight_version"] == "refit-2"
    finally:
        load(FIRST_MODEL, "default")  # the other tests' weights


def test_a_generation_across_a_keep_refit_says_both_versions(
    gw: GatewayProcess, sglang_root: str
) -> None:
    """`keep` (SGLang `retract`): a request in flight during the update goes on with the new
    weights, and its answer names both versions (SGLang's `metadata.weight_versions`)."""
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 600, "temperature": 0,
            "ignore_eos": True}  # fmt: skip

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(timeout=300) as client:
            request = asyncio.create_task(client.post(gw.url + "/v1/chat/completions", json=body))
            for _ in range(100):  # admitted by the gateway, then ~75 tokens a second here
                status = (await client.get(gw.url + "/admin/status")).json()
                if status["in_flight"] >= 1:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            paused = await client.post(gw.url + "/admin/pause", json={"mode": "keep"})
            assert paused.status_code == 200, paused.text
            loaded = await client.post(
                sglang_root + "/update_weights_from_disk",
                json={"model_path": str(SECOND_MODEL), "weight_version": "span-2"},
            )
            assert loaded.json()["success"], loaded.text
            await client.post(gw.url + "/admin/resume")
            return await request

    try:
        answer = asyncio.run(scenario())
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        spans = doc["metadata"]["weight_versions"]
        if len(spans) == 1:
            pytest.skip(f"the generation was not in flight during the update: {spans}")
        assert doc["policy_versions"] == [s["version"] for s in spans] == ["default", "span-2"]
        assert doc["policy_version"] == answer.headers["x-policy-version"] == "span-2"
        assert answer.headers["x-policy-versions"] == "default,span-2"
    finally:
        httpx.post(
            sglang_root + "/update_weights_from_disk",
            json={"model_path": str(FIRST_MODEL), "weight_version": "default"},
            timeout=300,
        )
