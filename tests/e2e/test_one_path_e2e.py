"""Every generation request takes one path (gateway/path.py): /v1/completions gets what Chat
and Responses have (fallbacks, the route and fidelity headers, `policy_version`, recording,
the stream relay's error end), through a real gateway process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    workdir = tmp_path_factory.mktemp("one_path")
    config = f"""
server:
  record: {workdir}/all.jsonl
models:
  - name: echo
    backend: mock
    defaults: {{temperature: 0.5}}
  - name: dead
    backend: vllm
    base_url: http://127.0.0.1:9/v1
    fallbacks: [echo]
    retries: {{attempts: 0}}
    health: {{path: null}}
"""
    proc = GatewayProcess(config, workdir).wait_ready()
    yield proc, workdir
    proc.stop()


def completions(gw: GatewayProcess, model: str, **body: object) -> httpx.Response:
    doc = {"model": model, "prompt": "once upon a time", "max_tokens": 2, **body}
    return httpx.post(gw.url + "/v1/completions", json=doc, timeout=20)


def test_completions_fall_back_and_name_the_route(gateway: tuple[GatewayProcess, Path]) -> None:
    gw, _ = gateway
    for stream in (False, True):
        resp = completions(gw, "dead", stream=stream)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-gateway-route"] == "echo"
        if stream:
            assert resp.text.rstrip().endswith("data: [DONE]")
        else:
            assert resp.json()["model"] == "dead"  # the name the client asked for


def test_completions_carry_fidelity_and_policy_version(
    gateway: tuple[GatewayProcess, Path],
) -> None:
    gw, _ = gateway
    resp = completions(gw, "echo")
    assert resp.headers["x-gateway-param-fidelity"] == "added=temperature"
    assert "policy_version" not in resp.json()  # no version set yet
    set_version = httpx.post(gw.url + "/admin/policy_version", json={"version": "v3"})
    assert set_version.status_code == 200
    resp = completions(gw, "echo")
    assert resp.headers["x-policy-version"] == "v3"
    assert resp.json()["policy_version"] == "v3"
    stream = completions(gw, "echo", stream=True)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-gateway-param-fidelity"] == "added=temperature"


def test_completions_are_recorded(gateway: tuple[GatewayProcess, Path]) -> None:
    gw, workdir = gateway
    request_id = "req_one_path_completions"
    resp = httpx.post(
        gw.url + "/v1/completions",
        json={"model": "echo", "prompt": "hello there", "max_tokens": 1},
        headers={"x-request-id": request_id},
    )
    assert resp.status_code == 200
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        path = workdir / "all.jsonl"
        lines = path.read_bytes().splitlines() if path.exists() else []
        found = [orjson.loads(x) for x in lines if request_id.encode() in x]
        record = found[0] if found else None
        time.sleep(0.05)
    assert record is not None
    assert record["endpoint"] == "/v1/completions" and record["route"] == "echo"
    assert record["status"] == 200 and record["fidelity"]["added"] == ["temperature"]
