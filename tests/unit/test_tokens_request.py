"""Reading the token side of a chat request, and the sampling checks (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import GatewayError, InvalidRequest
from gateway.tokens import (
    SamplingPin,
    apply_training,
    capture_requested,
    check_capture,
    clamp_max_tokens,
    eos_from_renders,
    read_token_request,
    wants_token_ids,
)

BUNDLE = {
    "prompt_token_ids": [1, 2],
    "generation_token_ids": [5, 2],
    "generation_log_probs": [-0.5, -0.1],
}


def conversation(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo", **BUNDLE, "routed_experts": None},
            {"role": "user", "content": "more"},
        ],
        **extra,
    }


def test_prefix_comes_from_the_last_bundle_and_fields_are_stripped() -> None:
    body = conversation()
    tr = read_token_request(body)
    assert tr.required_prefix == [1, 2, 5, 2]
    assert tr.source_index == 1
    assert tr.prefix_end == 2  # the template prefix renders messages[:2]
    assert tr.messages[1] == {"role": "assistant", "content": "yo"}
    assert "prompt_token_ids" in body["messages"][1]  # the input is not mutated
    assert tr.messages[0] is body["messages"][0]  # untouched messages are not copied


def test_explicit_prefix_wins() -> None:
    tr = read_token_request(conversation(required_prefix_token_ids=[1, 2, 5]))
    assert tr.required_prefix == [1, 2, 5]
    assert tr.source_index is None


def test_no_prefix_and_no_assistant() -> None:
    tr = read_token_request({"messages": [{"role": "user", "content": "x"}]})
    assert tr.required_prefix is None
    assert tr.prefix_end == 1


def test_continue_final_message_excludes_the_open_turn() -> None:
    body = conversation()
    body["messages"].append({"role": "assistant", "content": "par"})
    body["continue_final_message"] = True
    assert read_token_request(body).prefix_end == 2


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"generation_log_probs": None}, "messages[1]"),
        ({"prompt_token_ids": "1 2"}, "messages[1].prompt_token_ids"),
        ({"generation_token_ids": [5, True]}, "messages[1].generation_token_ids"),
        ({"generation_log_probs": [-0.5]}, "messages[1].generation_log_probs"),
        ({"generation_log_probs": ["x", 1]}, "messages[1].generation_log_probs"),
    ],
)
def test_bad_bundles_are_400_naming_the_field(change: dict[str, Any], param: str) -> None:
    body = conversation()
    body["messages"][1].update(change)
    with pytest.raises(InvalidRequest) as info:
        read_token_request(body)
    assert info.value.param == param


def test_bad_explicit_prefix() -> None:
    with pytest.raises(InvalidRequest) as info:
        read_token_request(conversation(required_prefix_token_ids=[1, -2]))
    assert info.value.param == "required_prefix_token_ids"


@pytest.mark.parametrize(
    ("body", "always", "expected"),
    [
        ({"logprobs": True, "return_tokens_as_token_ids": True}, False, True),
        ({"logprobs": True}, False, False),
        ({"return_tokens_as_token_ids": True}, False, False),
        ({}, True, True),
    ],
)
def test_capture_requested(body: dict[str, Any], always: bool, expected: bool) -> None:
    assert capture_requested(body, always) is expected


def test_wants_token_ids() -> None:
    assert wants_token_ids({"required_prefix_token_ids": [1]})
    assert wants_token_ids({"logprobs": True, "return_tokens_as_token_ids": True})
    assert not wants_token_ids({"logprobs": True})


# ---- training checks (NeMo RL's server: sampling equals the trainer's, top_k unset/-1) ------

TRAIN = [SamplingPin(1.0, 1.0)]
TRAIN_AND_VAL = [SamplingPin(1.0, 1.0), SamplingPin(0.0, 1.0)]


def test_training_fills_the_pins_and_disables_top_k() -> None:
    out = apply_training({"messages": []}, TRAIN)
    assert (out["temperature"], out["top_p"], out["top_k"]) == (1.0, 1.0, -1)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 0.7}, "temperature"),
        ({"top_p": 0.9}, "top_p"),
        ({"temperature": 1.0, "top_p": 0.95}, "top_p"),
        ({"top_k": 20}, "top_k"),
        ({"top_k": 0}, "top_k"),
        ({"n": 2}, "n"),
    ],
)
def test_training_refuses_other_sampling(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        apply_training(body, TRAIN)
    assert info.value.param == param
    assert param in info.value.message


@pytest.mark.parametrize(
    "body",
    [{"temperature": 1, "top_p": 1}, {"top_k": -1}, {"top_k": None}, {"n": 1}, {}],
)
def test_training_accepts_the_same_sampling(body: dict[str, Any]) -> None:
    apply_training(body, TRAIN)


def test_validation_pair() -> None:
    assert apply_training({"temperature": 0.0}, TRAIN_AND_VAL)["top_p"] == 1.0
    with pytest.raises(InvalidRequest):
        apply_training({"temperature": 0.0, "top_p": 0.5}, TRAIN_AND_VAL)


def test_capture_checks_n_and_explicit_null_top_logprobs() -> None:
    check_capture({"top_logprobs": 0, "n": 1})
    check_capture({})
    with pytest.raises(InvalidRequest) as info:
        check_capture({"top_logprobs": None})
    assert info.value.param == "top_logprobs"
    with pytest.raises(InvalidRequest) as info:
        check_capture({"n": 3})
    assert info.value.param == "n"


# ---- the clamp --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 5000}, {"max_tokens": 48}),
        ({"max_tokens": 10}, {"max_tokens": 10}),
        ({"max_completion_tokens": 99}, {"max_completion_tokens": 48}),
        ({}, {}),
    ],
)
def test_clamp(body: dict[str, Any], expected: dict[str, Any]) -> None:
    clamp_max_tokens(body, 2000, 2048)
    assert body == expected


def test_clamp_without_a_known_length_does_nothing() -> None:
    body = {"max_tokens": 5000}
    clamp_max_tokens(body, 2000, None)
    assert body == {"max_tokens": 5000}


def test_no_room_is_a_context_length_400() -> None:
    with pytest.raises(GatewayError) as info:
        clamp_max_tokens({"max_tokens": 5}, 2048, 2048)
    assert info.value.status == 400
    assert "maximum context length" in info.value.message


# ---- end-of-turn discovery ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # ChatML: ... assistant\n a <|im_end|>\n <|im_start|>user ...
        ([1, 9, 201, 50, 2, 201, 1, 8], [1, 9, 201, 60, 61, 2, 201, 1, 8], 2),
        # Llama 3: the turn ends on <|eot_id|> and the next header follows
        (
            [128006, 70, 128007, 50, 128009, 128006],
            [128006, 70, 128007, 61, 128009, 128006],
            128009,
        ),
        ([1, 2, 3], [1, 2, 3], None),  # no difference: nothing to learn
        ([1, 5], [1, 6], None),  # no common tail
    ],
)
def test_eos_from_renders(first: list[int], second: list[int], expected: int | None) -> None:
    assert eos_from_renders(first, second) == expected
