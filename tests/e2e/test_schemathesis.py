"""schemathesis against the gateway's own OpenAPI document (gateway/openapi.py), served by a
real gateway process on loopback with mock routes.

Every check runs except `positive_data_acceptance`: the schema describes the shapes the
gateway's own checks accept, and deeper checks (input items, tool choices, the mock's limit
of 128 choices) may still refuse a shape-valid request with a 400, as documented. The admin
calls that change state for everyone (pause, resume, reload) are left out of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess

MAX_EXAMPLES = 30  # per operation and phase; the run takes a few seconds
SEED = os.environ.get("GYM_GATEWAY_SCHEMATHESIS_SEED", "20261127")
CONFIG = """
server:
  log_level: warning
models:
  - {name: echo, backend: mock}
  - name: fixed
    backend: mock
    mock: {reply: "a fixed reply"}
"""


@pytest.fixture(scope="module")
def mock_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(CONFIG, tmp_path_factory.mktemp("schemathesis")).wait_ready()
    yield proc
    proc.stop()


def test_openapi_lists_every_route(mock_gateway: GatewayProcess) -> None:
    doc = httpx.get(mock_gateway.url + "/openapi.json", timeout=10).json()
    paths = set(doc["paths"])
    assert {
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/completions",
        "/tokenize",
        "/detokenize",
        "/v1/models",
        "/v1/models/{model}",
        "/health",
        "/ready",
        "/metrics",
        "/admin/reload",
        "/admin/pause",
        "/admin/resume",
        "/admin/status",
        "/admin/policy_version",
        "/admin/pools",
    } <= paths
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = doc["components"]["schemas"][body.rsplit("/", 1)[-1]]
    assert request["required"] == ["model", "messages"]
    assert request["additionalProperties"] is True
    assert doc["components"]["schemas"]["ModelName"]["enum"] == ["echo", "fixed"]
    assert set(chat["responses"]) >= {"200", "400", "404", "413", "500", "502", "504"}


def test_schemathesis_finds_no_server_error_and_conformant_answers(
    mock_gateway: GatewayProcess, tmp_path: Path
) -> None:
    st = Path(sys.executable).with_name("st")
    args = [
        str(st),
        "run",
        mock_gateway.url + "/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-path-regex",
        "^/admin/(pause|resume|reload)$",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",  # CPython 3.11's ast module is not thread-safe under schemathesis' workers
        "--request-timeout",
        "10",
        "--no-color",
    ]
    # cwd: schemathesis keeps its state in ./.schemathesis
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "passed" in output
    assert mock_gateway.proc.poll() is None
    assert httpx.get(mock_gateway.url + "/health", timeout=10).status_code == 200
