"""NeMo Gym itself as the client: its `vllm_model` training server (the code path NeMo RL
drives) talks to the gateway in front of the real vLLM for two turns with a tool call.

Needs a Python 3.13 venv with nemo-gym (tests/vllm/nemo_gym_venv.sh installs it, about 4
minutes the first time, then cached). `GYM_GATEWAY_NEMO_GYM=off` skips it; without a Python
3.13 (none found by running the candidates, none installable) it skips, unless `GYM_GATEWAY_REQUIRE_VLLM=1` (CI), where a skip fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.provision import run_visible

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def gym_python(pytestconfig: pytest.Config) -> str:
    def unavailable(reason: str) -> None:
        if os.environ.get("GYM_GATEWAY_REQUIRE_VLLM") == "1":
            pytest.fail(f"NeMo Gym client test required but {reason}", pytrace=False)
        pytest.skip(reason)

    if os.environ.get("GYM_GATEWAY_NEMO_GYM") == "off":
        pytest.skip("GYM_GATEWAY_NEMO_GYM=off")
    done = run_visible(
        pytestconfig,
        "NeMo Gym's venv (Python 3.13; installs it the first time, ~4 min)",
        ["bash", str(HERE / "nemo_gym_venv.sh"), "install"],
        stdout=subprocess.PIPE,
    )
    if done.returncode != 0:
        unavailable(f"nemo_gym_venv.sh install failed (exit {done.returncode}; see above)")
    return done.stdout.strip().splitlines()[-1]


def test_nemo_gym_vllm_model_two_turns_with_a_tool_call(
    gym_python: str, vllm_gateway: GatewayProcess
) -> None:
    body = {
        "model": "tiny-train",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 0,
        "return_tokens_as_token_ids": True,
    }
    raw = httpx.post(vllm_gateway.url + "/v1/chat/completions", json=body, timeout=60).text
    run = subprocess.run(
        [gym_python, str(HERE / "nemo_gym_client.py"), vllm_gateway.url + "/v1", "tiny-train", raw],
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
    assert result["contiguous"]  # NeMo RL's invariant, checked on Gym's own output items


def test_nemo_gym_openai_model_three_responses_turns(
    gym_python: str, vllm_gateway: GatewayProcess
) -> None:
    """Gym's `openai_model` server, Responses API, token capture as extra body: three turns,
    each sending the previous messages back. Text logprobs stay empty (not asked for), the
    token bundle carries them, and Gym validates every Response (NeMoGymResponse)."""
    run = subprocess.run(
        [gym_python, str(HERE / "nemo_gym_client.py"), vllm_gateway.url + "/v1", "tiny-train",
         "--openai-model"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.get("turns") == 3, result
    assert result["bundles_complete"] and result["text_logprobs_empty"]
