"""NeMo Gym itself as the client, shared by tests/vllm and tests/sglang: its training servers
(`vllm_model`, the code path NeMo RL drives; `openai_model`, Responses) run in their own
Python 3.13 venv (tests/vllm/nemo_gym_venv.sh, about 4 minutes the first time, then cached)
and talk to the gateway in front of a real engine (tests/vllm/nemo_gym_client.py).

`GYM_GATEWAY_NEMO_GYM=off` skips these tests; without a Python 3.13 (none found by running the
candidates, none installable) they skip, unless the engine is required
(`GYM_GATEWAY_REQUIRE_<ENGINE>=1`, as in CI), where a skip fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_process import GatewayProcess
from tests.provision import run_visible

VLLM_TESTS = Path(__file__).resolve().parent / "vllm"
CLIENT = VLLM_TESTS / "nemo_gym_client.py"


def gym_python(config: pytest.Config, env_name: str) -> str:
    """The NeMo Gym venv's interpreter, installed the first time (progress shown live)."""
    if os.environ.get("GYM_GATEWAY_NEMO_GYM") == "off":
        pytest.skip("GYM_GATEWAY_NEMO_GYM=off")
    done = run_visible(
        config,
        "NeMo Gym's venv (Python 3.13; installs it the first time, ~4 min)",
        ["bash", str(VLLM_TESTS / "nemo_gym_venv.sh"), "install"],
        stdout=subprocess.PIPE,
    )
    if done.returncode != 0:
        reason = f"nemo_gym_venv.sh install failed (exit {done.returncode}; see above)"
        if os.environ.get(f"GYM_GATEWAY_REQUIRE_{env_name}") == "1":
            pytest.fail(f"NeMo Gym client test required but {reason}", pytrace=False)
        pytest.skip(reason)
    return done.stdout.strip().splitlines()[-1]


def run_client(python: str, gateway: GatewayProcess, *args: str) -> dict[str, Any]:
    run = subprocess.run(
        [python, str(CLIENT), gateway.url + "/v1", "tiny-train", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def vllm_model_two_turns_with_a_tool_call(python: str, gateway: GatewayProcess) -> None:
    body = {
        "model": "tiny-train",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 0,
        "return_tokens_as_token_ids": True,
    }
    raw = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=60).text
    result = run_client(python, gateway, raw)
    assert result["schema_ok"]  # NeMoGymChatCompletion accepts the gateway's answer
    assert result["turn1_types"][-1] == "function_call"
    assert result["turn2_types"][-1] == "message"
    assert result["bundles_complete"] and result["lengths_match"]
    assert result["contiguous"]  # NeMo RL's invariant, checked on Gym's own output items


def openai_model_three_responses_turns(python: str, gateway: GatewayProcess) -> None:
    """Gym's `openai_model` server, Responses API, token capture as extra body: three turns,
    each sending the previous messages back. Text logprobs stay empty (not asked for), the
    token bundle carries them, and Gym validates every Response (NeMoGymResponse)."""
    result = run_client(python, gateway, "--openai-model")
    assert result.get("turns") == 3, result
    assert result["bundles_complete"] and result["text_logprobs_empty"]
