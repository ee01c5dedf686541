"""NeMo Gym itself as the client of the gateway in front of the real vLLM (tests/nemo_gym.py,
shared with SGLang's suite)."""

from __future__ import annotations

import pytest

from tests import nemo_gym
from tests.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gym_python(pytestconfig: pytest.Config) -> str:
    return nemo_gym.gym_python(pytestconfig, "VLLM")


def test_nemo_gym_vllm_model_two_turns_with_a_tool_call(
    gym_python: str, vllm_gateway: GatewayProcess
) -> None:
    nemo_gym.vllm_model_two_turns_with_a_tool_call(gym_python, vllm_gateway)


def test_nemo_gym_openai_model_three_responses_turns(
    gym_python: str, vllm_gateway: GatewayProcess
) -> None:
    nemo_gym.openai_model_three_responses_turns(gym_python, vllm_gateway)
