"""The prefix splice, ported from NeMo RL's tests (nemo_gym.md §d rows 4-8 and 11).

Row 4 (NeMo RL reads a Qwen3 fixture) uses the tiny test model instead
(tests/vllm/make_tiny_model.py: ChatML, end of turn = 2, "\\n" = 201). GENERATED and
RERENDERED are real ids from the vLLM 0.32 server: a forced `ping` tool call whose generated
ids (`<tool_call>{...}</tool_call>` without newlines) re-render differently through the
template (which puts `\\n` around the JSON). The prompt and the turns after it are
shortened.
"""

from __future__ import annotations

import pytest

from gateway.tokens import SpliceError, count_eos, first_mismatch, splice_at_turn, splice_prefix

EOS = 2

# The system turn (tools) and the user turn, then the generation prompt.
PROMPT = [1, 87, 513, 201, 42, 1708, 339, 2, 201, 1, 67, 324, 928, 821, 201]
# What the model generated: <tool_call>{"name": "ping", "arguments": {}}</tool_call><|im_end|>
GENERATED = [30, 582, 81, 78, 65, 520, 78, 78, 32, 93, 4, 80, 67, 79, 71, 4, 28, 354, 82, 75]
GENERATED += [80, 73, 4, 14, 354, 67, 1464, 85, 1155, 1044, 95, 30, 17, 582, 661, 65, 1346, 32, 2]
# The template re-renders the same call with newlines around the JSON: other ids.
RERENDERED = [30, 582, 661, 65, 1346, 32, 201, 93, 4, 356, 1155, 354, 1145, 431, 354, 1480, 85]
RERENDERED += [1155, 1044, 95, 201, 1823, 582, 661, 65, 1346, 32, 2]
AFTER = [201, 1, 1218, 201, 700, 2, 201, 1, 67, 324, 928, 821, 201]  # tool turn + gen prompt

OG_MODEL = PROMPT + GENERATED + AFTER  # what the next prompt must be
TEMPLATE = PROMPT + RERENDERED + AFTER  # what the template renders for the next call


def test_row4_brings_back_the_model_ids_with_and_without_eos() -> None:
    model_prefix = PROMPT + GENERATED
    assert model_prefix[-1] == EOS
    template_prefix = PROMPT + RERENDERED  # through the assistant turn, ends on EOS
    assert splice_prefix(model_prefix, template_prefix, TEMPLATE, EOS) == OG_MODEL
    # template prefix cut after the "\n" that follows EOS
    assert splice_prefix(model_prefix, [*template_prefix, 201], TEMPLATE, EOS) == OG_MODEL
    # the generation was cut before its EOS (max_tokens): the template's EOS closes the turn
    assert splice_prefix(model_prefix[:-1], [*template_prefix, 201], TEMPLATE, EOS) == OG_MODEL


def test_row4_a_different_tokenization_of_the_model_is_kept() -> None:
    other = [*PROMPT, 30, 9, 9, 9, 2]  # the model produced other ids for the same turn
    expected = other + AFTER
    assert splice_prefix(other, PROMPT + RERENDERED, TEMPLATE, EOS) == expected
    assert splice_prefix(other[:-1], PROMPT + RERENDERED, TEMPLATE, EOS) == expected


def test_row5_empty_model_prefix_returns_the_template() -> None:
    assert splice_prefix([], [9, 2], [9, 2, 33, 44], EOS) == [9, 2, 33, 44]


def test_row6_no_eos_in_the_template_prefix_raises() -> None:
    with pytest.raises(SpliceError):
        splice_prefix([7, 2], [9, 9, 9], [9, 9, 9, 2, 10], EOS)


def test_row7_unknown_eos_raises() -> None:
    with pytest.raises(SpliceError):
        splice_prefix([7, 2], [9, 2], [9, 2, 10], None)
    with pytest.raises(SpliceError):
        splice_prefix([7, 2], [9, 2], [9, 2, 10], [])


def test_row8_uses_the_last_eos_of_the_template_prefix() -> None:
    assert splice_prefix([100, 2], [9, 2, 9, 2], [9, 2, 9, 2, 77, 88], EOS) == [100, 2, 77, 88]


def test_row11_qwen3_think_shift_counts_turns_not_positions() -> None:
    # The template dropped earlier reasoning (positions shift) but kept one EOS per turn.
    model = [11, 12, 99, 99, 99, 55, 2]
    template_prefix = [11, 12, 88, 88, 88, 56, 2]
    template = [11, 12, 56, 2, 70, 71, 2, 40, 41]
    assert splice_prefix(model, template_prefix, template, EOS) == [
        *model,
        70,
        71,
        2,
        40,
        41,
    ]


def test_docstring_example_of_the_contract() -> None:
    # nemo_gym.md §b.5: " 4" re-tokenizes as 1001
    prefix = [11, 12, 13, 40, 41, 220, 17, 2]
    template = [11, 12, 13, 40, 41, 1001, 2, 21, 22, 40, 41]
    assert splice_prefix(prefix, template[:7], template, EOS) == [*prefix, 21, 22, 40, 41]


def test_merged_tokens_prefix_inside_a_user_turn() -> None:
    # Row 9's shape: the explicit prefix ends inside the user turn (" Skinny" as two ids).
    template = [151644, 872, 198, 94224, 151645, 198, 151644, 77091, 198]
    prefix = [151644, 872, 198, 26951, 3834]
    out = splice_prefix(prefix, template[:6], template, 151645)
    assert out == [*prefix, 151645, 198, 151644, 77091, 198]


def test_several_end_of_turn_ids() -> None:
    # Llama 3 style: <|eot_id|> (9) and <|eom_id|> (8) both end a turn.
    assert splice_prefix([5, 6, 8], [5, 7, 9], [5, 7, 9, 1, 2], [8, 9]) == [5, 6, 8, 1, 2]


def test_too_few_turns_in_the_full_render() -> None:
    with pytest.raises(SpliceError, match="holds 1 end-of-turn"):
        splice_at_turn([1, 2], 2, [1, 2, 3], {2})


@pytest.mark.parametrize(
    ("ids", "prefix", "expected"),
    [
        ([1, 2, 3], [1, 2], None),
        ([1, 2, 3], [], None),
        ([1, 9, 3], [1, 2], 1),
        ([1], [1, 2], 1),
    ],
)
def test_first_mismatch(ids: list[int], prefix: list[int], expected: int | None) -> None:
    assert first_mismatch(ids, prefix) == expected


def test_count_eos() -> None:
    assert count_eos([2, 1, 2, 3], {2}) == 2
