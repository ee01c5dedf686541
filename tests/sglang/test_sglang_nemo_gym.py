"""NeMo Gym itself as the client (its `vllm_model` training server, the code path NeMo RL
drives) through the gateway to the real SGLang: two turns with a tool call, contiguous.

Reuses tests/vllm/nemo_gym_venv.sh and tests/vllm/nemo_gym_client.py unchanged (Gym's client
speaks the OpenAI API to the gateway; the gateway does the SGLang part).
`GYM_GATEWAY_NEMO_GYM=off` skips it; under `GYM_GATEWAY_REQUIRE_SGLANG=1` (CI) a skip fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess

VLLM_TESTS = Path(__file__).resolve().parent.parent / "vllm"


@pytest.fixture(scope="module")
def gym_python() -> str:
    if os.environ.get("GYM_GATEWAY_NEMO_GYM") == "off":
        pytest.skip("GYM_GATEWAY_NEMO_GYM=off")
    done = subprocess.run(
        ["bash", str(VLLM_TESTS / "nemo_gym_venv.sh"), "install"], capture_output=True, text=True
    )
    if done.returncode != 0:
        reason = f"nemo_gym_venv.sh install failed: {done.stderr.strip()[-500:]}"
        if os.environ.get("GYM_GATEWAY_REQUIRE_SGLANG") == "1":
            pytest.fail(f"NeMo Gym client test required but {reason}", pytrace=False)
        pytest.skip(reason)
    return done.stdout.strip().splitlines()[-1]


def test_nemo_gym_client_two_turns_with_a_tool_call_on_sglang(
    gym_python: str, sglang_gateway: GatewayProcess
) -> None:
    body = {
        "model": "tiny-train",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 0,
        "return_tokens_as_token_ids": True,
    }
    raw = httpx.post(sglang_gateway.url + "/v1/chat/completions", json=body, timeout=60).text
    run = subprocess.run(
        [
            gym_python,
            str(VLLM_TESTS / "nemo_gym_client.py"),
            sglang_gateway.url + "/v1",
            "tiny-train",
            raw,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["schema_ok"]  # NeMoGymChatCompletion accepts the gateway's answer
    assert result["turn1_types"][-1] == "function_call"
    assert result["turn2_types"][-1] == "message"
    assert result["bundles_complete"] and result["lengths_match"]
    assert result["contiguous"]
