"""The ranges OpenAI's API reference defines, checked on Chat, Responses and Completions."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.validation import (
    COMPLETIONS_RANGES,
    check_chat_body,
    check_ranges,
    check_responses_body,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "m", "input": "hi"}


def _check_completions(body: dict[str, Any]) -> None:
    check_ranges(body, COMPLETIONS_RANGES)


OUT_OF_RANGE = [
    ("temperature", -1),
    ("temperature", 5),
    ("temperature", -1e308),
    ("temperature", 1e308),
    ("top_p", 1.5),
    ("top_p", -0.1),
    ("presence_penalty", 2.5),
    ("frequency_penalty", -3),
]


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
@pytest.mark.parametrize(
    ("check", "base"),
    [(check_chat_body, CHAT), (check_responses_body, RESPONSES), (_check_completions, {})],
    ids=["chat", "responses", "completions"],
)
def test_sampling_out_of_range_is_400_naming_it(check: Any, base: dict, name: str, value: float):
    with pytest.raises(InvalidRequest) as info:
        check({**base, name: value})
    assert info.value.param == name
    assert name in info.value.message


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": -1}, "top_logprobs"),
        ({"logit_bias": {"50256": -101}}, "logit_bias"),
        ({"logit_bias": {"50256": 100.5}}, "logit_bias"),
        ({"logit_bias": {"50256": "x"}}, "logit_bias"),
    ],
)
def test_chat_ranges(patch: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_chat_body({**CHAT, **patch})
    assert info.value.param == param


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"max_tool_calls": 0}, "max_tool_calls"),
    ],
)
def test_responses_ranges(patch: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_responses_body({**RESPONSES, **patch})
    assert info.value.param == param


@pytest.mark.parametrize(
    "patch",
    [
        {"temperature": 0, "top_p": 1, "presence_penalty": -2, "frequency_penalty": 2},
        {"temperature": 2.0, "top_p": 0.0, "n": 128, "top_logprobs": 20, "logprobs": True},
        {"temperature": -0.0, "max_tokens": 1, "logit_bias": {"1": -100, "2": 100}},
        # engine extras keep the engine's own checks
        {"top_k": -1, "min_p": 7, "repetition_penalty": 50},
    ],
)
def test_edges_and_extras_pass(patch: dict) -> None:
    check_chat_body({**CHAT, **patch})


def test_completions_allow_max_tokens_zero() -> None:
    # with echo, max_tokens 0 scores a prompt (OpenAI's reference: minimum 0 on completions)
    _check_completions({"max_tokens": 0, "n": 1})
    with pytest.raises(InvalidRequest) as info:
        _check_completions({"max_tokens": -1})
    assert info.value.param == "max_tokens"
