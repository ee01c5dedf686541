"""Auth, limits, CORS, metrics, readiness, structured logs and graceful shutdown, through
real gateway processes."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.upstream import ScriptedUpstream

HELLO = [{"role": "user", "content": "hello ops"}]


@pytest.fixture(scope="module")
def secured(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("secured")
    keys = workdir / "keys.yaml"
    keys.write_text("- {name: from-file, key: file-key-123456, routes: [echo]}\n")
    config = f"""
server:
  api_keys:
    - {{name: team-a, key: "${{TEAM_A_KEY}}", routes: [echo]}}
    - {{name: ops, key: ops-key-abcdefgh}}
  api_keys_file: {keys}
  admin_key: admin-key-0000
  cors_origins: [https://app.example]
  max_header_bytes: 4096
models:
  - {{name: echo, backend: mock}}
  - name: up
    backend: vllm
    base_url: {upstream.base_url}
    upstream_model: ok
    api_key: sk-upstream-never-logged
"""
    proc = GatewayProcess(config, workdir, env={"TEAM_A_KEY": "team-a-key-123"}).wait_ready()
    yield proc
    proc.stop()


def chat(gw: GatewayProcess, key: str | None, model: str = "echo", **kw) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers=headers,
        timeout=10,
        **kw,
    )


def test_api_keys_and_route_permissions(secured: GatewayProcess) -> None:
    missing = chat(secured, None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    bad = chat(secured, "wrong-key-xyz")
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
    assert chat(secured, "team-a-key-123").status_code == 200
    assert chat(secured, "file-key-123456").status_code == 200
    denied = chat(secured, "team-a-key-123", model="up")
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "message": "API key 'team-a' may not use model 'up'",
        "type": "permission_error",
        "param": "model",
        "code": "model_not_allowed",
    }
    assert chat(secured, "ops-key-abcdefgh", model="up").status_code == 200
    client = openai.OpenAI(base_url=secured.url + "/v1", api_key="wrong-key-xyz", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="echo", messages=HELLO)
    # public probes need no key
    assert httpx.get(secured.url + "/health").status_code == 200
    assert httpx.get(secured.url + "/metrics").status_code == 200


def test_admin_key(secured: GatewayProcess) -> None:
    resp = httpx.post(
        secured.url + "/admin/anything", headers={"authorization": "Bearer ops-key-abcdefgh"}
    )
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_admin_key"
    ok = httpx.post(
        secured.url + "/admin/anything", headers={"authorization": "Bearer admin-key-0000"}
    )
    assert ok.status_code == 404  # authenticated; no such admin endpoint


def test_header_limit_is_431(secured: GatewayProcess) -> None:
    resp = chat(secured, "ops-key-abcdefgh", headers={"x-big": "v" * 5000})
    assert resp.status_code == 431 and resp.json()["error"]["code"] == "headers_too_large"
    assert chat(secured, "ops-key-abcdefgh").status_code == 200


def test_cors(secured: GatewayProcess) -> None:
    pre = httpx.options(
        secured.url + "/v1/chat/completions",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(
        secured.url + "/v1/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_metrics_count_requests_tokens_and_errors(secured: GatewayProcess) -> None:
    before = httpx.get(secured.url + "/metrics").text
    for _ in range(3):
        chat(secured, "ops-key-abcdefgh", model="up")
    chat(secured, "ops-key-abcdefgh", model="nope")
    text = httpx.get(secured.url + "/metrics").text
    assert 'gateway_tokens_total{route="up",direction="in"}' in text
    assert 'gateway_errors_total{route="-",code="model_not_found"}' in text
    assert "gateway_request_duration_seconds_bucket" in text
    # public: the replica's name, never its address (issue 18 item 11)
    assert 'gateway_upstream_requests_total{route="up",upstream="replica-0"}' in text
    assert "127.0.0.1" not in text
    assert "sk-upstream" not in text and "ops-key" not in text and text != before
    # the collector's schedule runs in a serving process (gateway/collector.py)
    for name in (
        "gateway_gc_full_passes",
        "gateway_gc_full_pass_seconds",
        "gateway_gc_freed_objects",
    ):
        [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
        assert float(line.split()[1]) >= 0


def test_logs_are_json_with_request_ids_and_no_secrets(secured: GatewayProcess) -> None:
    chat(secured, "ops-key-abcdefgh", model="up", headers={"x-request-id": "trace-ops-1"})
    deadline = time.monotonic() + 10  # request lines are written in batches (every 100 ms)
    while "trace-ops-1" not in secured.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in secured.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "trace-ops-1"]
    assert mine and mine[0]["route"] == "up" and mine[0]["status"] == 200
    assert mine[0]["key"] == "ops" and mine[0]["prompt_tokens"] == 5
    assert mine[0]["upstream"].startswith("http://127.0.0.1:")
    log_text = secured.log()
    for secret in ("sk-upstream-never-logged", "ops-key-abcdefgh", "team-a-key-123", "hello ops"):
        assert secret not in log_text


def test_ready_reports_unreachable_routes(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    config = f"""
models:
  - {{name: echo, backend: mock}}
  - {{name: up, backend: vllm, base_url: "{upstream.base_url}"}}
"""
    gw = GatewayProcess(config, tmp_path).wait_ready()
    try:
        assert httpx.get(gw.url + "/ready").json() == {
            "ready": True,
            "routes": {"echo": "ok", "up": "ok"},
        }
    finally:
        gw.stop()
    dead = GatewayProcess(config.replace(upstream.base_url, "http://127.0.0.1:9/v1"), tmp_path)
    dead.wait_ready()
    try:
        resp = httpx.get(dead.url + "/ready")
        assert resp.status_code == 503 and resp.json()["routes"]["up"] == "unreachable"
    finally:
        dead.stop()


def test_sigterm_lets_100_streams_finish(tmp_path: Path) -> None:
    config = """
server: {shutdown_grace_s: 20}
models:
  - {name: slow, backend: mock, mock: {stream_delay_ms: 100}}
"""
    gw = GatewayProcess(config, tmp_path).wait_ready()
    words = " ".join(f"w{i}" for i in range(50))  # 50 words x 100 ms = ~5 s per stream
    results: list[str] = []
    errors: list[BaseException] = []
    started = threading.Semaphore(0)

    def one() -> None:
        try:
            with (
                httpx.Client(timeout=60) as client,
                client.stream(
                    "POST",
                    gw.url + "/v1/chat/completions",
                    json={
                        "model": "slow",
                        "stream": True,
                        "messages": [{"role": "user", "content": words}],
                    },
                ) as resp,
            ):
                chunks = resp.iter_text()
                text = next(chunks)  # the stream is open and in flight
                started.release()
                results.append(text + "".join(chunks))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
            started.release()

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    # Every stream has its first bytes (a fixed 0.4 s was too short on a loaded machine).
    for _ in threads:
        assert started.acquire(timeout=60)
    gw.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    # uvicorn re-raises the signal after its graceful shutdown (so supervisors see it)
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)
    gw.stop()
    assert not errors
    assert len(results) == 100
    assert all(r.rstrip().endswith("data: [DONE]") and "w49" in r for r in results)
    # and it stopped accepting: a new connection is refused
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.url + "/health")


def test_docs_and_their_assets_need_no_key(secured: GatewayProcess) -> None:
    for path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js", "/openapi.json"):
        assert httpx.get(secured.url + path).status_code == 200, path
