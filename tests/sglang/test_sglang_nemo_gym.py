"""NeMo Gym itself as the client of the gateway in front of the real SGLang (tests/nemo_gym.py,
shared with vLLM's suite: Gym's client speaks the OpenAI API to the gateway; the gateway does
the SGLang part)."""

from __future__ import annotations

import pytest

from tests import nemo_gym
from tests.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def gym_python(pytestconfig: pytest.Config) -> str:
    return nemo_gym.gym_python(pytestconfig, "SGLANG")


def test_nemo_gym_client_two_turns_with_a_tool_call_on_sglang(
    gym_python: str, sglang_gateway: GatewayProcess
) -> None:
    nemo_gym.vllm_model_two_turns_with_a_tool_call(gym_python, sglang_gateway)


def test_nemo_gym_openai_model_three_responses_turns_on_sglang(
    gym_python: str, sglang_gateway: GatewayProcess
) -> None:
    nemo_gym.openai_model_three_responses_turns(gym_python, sglang_gateway)
