"""Recording through the real server: every routed request is one complete JSON line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream


def wait_lines(path: Path, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    lines: list[bytes] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_bytes().splitlines()
            if len(lines) >= count:
                break
        time.sleep(0.05)
    return [orjson.loads(line) for line in lines]


@pytest.fixture(scope="module")
def recorded(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, Path]]:
    workdir = tmp_path_factory.mktemp("recording")
    config = f"""
server:
  record: {workdir}/all.jsonl
models:
  - name: echo
    backend: mock
    mock: {{params: {{top_k: drop}}}}
  - name: bodies
    backend: mock
    record: {workdir}/bodies.jsonl
    record_bodies: true
  - name: up
    backend: vllm
    base_url: {upstream.base_url}
    upstream_model: ok
    api_key: sk-recording-secret-key
  - name: dead
    backend: vllm
    base_url: http://127.0.0.1:9/v1
"""
    proc = GatewayProcess(config, workdir).wait_ready()
    yield proc, workdir
    proc.stop()


def test_every_request_is_recorded_completely(recorded: tuple[GatewayProcess, Path]) -> None:
    proc, workdir = recorded
    client = httpx.Client(base_url=proc.url, timeout=10)
    chat = {"messages": [{"role": "user", "content": "private words"}], "temperature": 0.5}
    ids = {}
    r = client.post("/v1/chat/completions", json={**chat, "model": "echo", "top_k": 4})
    assert r.status_code == 200
    assert r.headers["x-gateway-param-fidelity"] == "dropped=top_k"
    ids["echo"] = r.headers["x-request-id"]
    r = client.post("/v1/chat/completions", json={**chat, "model": "up"})
    assert r.status_code == 200 and r.headers["x-gateway-param-fidelity"] == "ok"
    ids["up"] = r.headers["x-request-id"]
    r = client.post("/v1/chat/completions", json={**chat, "model": "dead"})
    assert r.status_code >= 500
    dead = (r.status_code, r.json()["error"]["code"])
    ids["dead"] = r.headers["x-request-id"]
    assert client.post("/v1/chat/completions", json={**chat, "model": "nope"}).status_code == 404

    records = {rec["route"]: rec for rec in wait_lines(workdir / "all.jsonl", 3)}
    assert set(records) == {"echo", "up", "dead"}
    for route, record in records.items():
        assert record["request_id"] == ids[route]
        assert record["endpoint"] == "/v1/chat/completions"
        assert record["latency_ms"] > 0 and "answer" not in record
        assert record["request"] == {"model": route, "temperature": 0.5, **(
            {"top_k": 4} if route == "echo" else {})}  # fmt: skip
    assert records["echo"]["fidelity"] == {"honoured": ["temperature"], "dropped": ["top_k"]}
    assert records["echo"]["upstream"] == "mock"
    assert records["echo"]["tokens_in"] == 2 and records["echo"]["tokens_out"] == 2
    assert records["up"]["upstream"] == f"127.0.0.1:{proc_port(records['up'])}"
    assert records["up"]["status"] == 200 and records["up"]["tokens_out"] == 3
    assert (records["dead"]["status"], records["dead"]["error"]["code"]) == dead
    raw = (workdir / "all.jsonl").read_text()
    assert "private words" not in raw and "sk-recording-secret-key" not in raw


def proc_port(record: dict) -> str:
    return record["upstream"].rsplit(":", 1)[1]


def test_bodies_are_recorded_for_json_and_streams(recorded: tuple[GatewayProcess, Path]) -> None:
    proc, workdir = recorded
    client = httpx.Client(base_url=proc.url, timeout=10)
    message = [{"role": "user", "content": "hello there gym"}]
    client.post("/v1/chat/completions", json={"model": "bodies", "messages": message})
    with client.stream(
        "POST", "/v1/chat/completions",
        json={"model": "bodies", "messages": message, "stream": True,
              "stream_options": {"include_usage": True}},
    ) as r:  # fmt: skip
        r.read()
    client.post("/v1/responses", json={"model": "bodies", "input": "a responses call"})
    with client.stream(
        "POST", "/v1/responses", json={"model": "bodies", "input": "streamed one", "stream": True}
    ) as r:
        r.read()
    records = wait_lines(workdir / "bodies.jsonl", 4)
    assert len(records) == 4
    json_chat, stream_chat, json_resp, stream_resp = records
    assert json_chat["request"]["messages"] == message
    assert json_chat["answer"]["choices"][0]["message"]["content"] == "hello there gym"
    assert stream_chat["stream"] is True and stream_chat["ttft_ms"] is not None
    assert stream_chat["answer"]["choices"][0]["message"]["content"] == "hello there gym"
    assert stream_chat["tokens_out"] == 3
    assert json_resp["endpoint"] == "/v1/responses"
    assert json_resp["answer"]["output"][0]["content"][0]["text"] == "a responses call"
    assert stream_resp["answer"]["status"] == "completed"
    assert stream_resp["answer"]["output"][0]["content"][0]["text"] == "streamed one"
    # the recording only has its own route: the global file did not get these
    assert all(r["route"] != "bodies" for r in wait_lines(workdir / "all.jsonl", 0, 0.1))
