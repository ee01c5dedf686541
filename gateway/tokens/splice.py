"""The prefix splice: keep the exact ids a model generated when a conversation is re-rendered.

Re-rendering a conversation through the chat template re-tokenizes the earlier assistant
turns, and text does not always come back as the ids the model sampled (" Skinny" may come
back as one token where the model produced two). A trainer that sees different ids trains
off-policy. The splice takes the previous call's ids (its prompt plus its generation) as
ground truth up to the end of that assistant turn and appends what the template renders
after it.

The boundary is found by *counting* end-of-turn tokens, not by position: templates such as
Qwen3's drop earlier `<think>` blocks once a new user turn follows, which shifts positions
but keeps one end-of-turn token per message (the algorithm of NeMo RL's
`replace_prefix_tokens`, rewritten here).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence


class SpliceError(ValueError):
    """The re-rendered conversation has no turn boundary where the token history ends."""


def eos_set(eos: int | Iterable[int] | None) -> frozenset[int]:
    """One end-of-turn id or several (models that stop on more than one token)."""
    if eos is None:
        return frozenset()
    if isinstance(eos, int):
        return frozenset((eos,))
    return frozenset(eos)


def count_eos(ids: Sequence[int], eos: Collection[int]) -> int:
    return sum(1 for t in ids if t in eos)


def splice_at_turn(
    model_prefix: Sequence[int],
    turns: int,
    template_full: Sequence[int],
    eos: Collection[int],
) -> list[int]:
    """`model_prefix` followed by what `template_full` holds after its `turns`-th end of turn.

    When the model's own ids end on an end-of-turn token that token is kept; otherwise (the
    generation was cut by max_tokens) the template's end-of-turn token closes the turn.
    """
    if not model_prefix:
        return list(template_full)
    if not eos:
        raise SpliceError("the end-of-turn token id is unknown, so no turn boundary can be found")
    if turns < 1:
        raise SpliceError(
            "the rendered history before the last assistant turn holds no end-of-turn token"
        )
    seen = 0
    cut = -1
    for pos, token in enumerate(template_full):
        if token in eos:
            seen += 1
            if seen == turns:
                cut = pos
                break
    if cut < 0:
        raise SpliceError(
            f"the re-rendered conversation holds {seen} end-of-turn tokens, but the token "
            f"history ends after turn {turns}"
        )
    tail = template_full[cut + 1 :] if model_prefix[-1] in eos else template_full[cut:]
    return [*model_prefix, *tail]


def splice_prefix(
    model_prefix: Sequence[int],
    template_prefix: Sequence[int],
    template_full: Sequence[int],
    eos: int | Iterable[int] | None,
) -> list[int]:
    """The prompt to send: the model's ids, then the template after the same turn.

    model_prefix: the previous call's `prompt_token_ids + generation_token_ids` (or an
        explicit `required_prefix_token_ids`).
    template_prefix: the template's rendering of the messages up to and including the last
        assistant turn, without the generation prompt.
    template_full: the template's rendering of the whole request (what the engine would use).
    """
    ids = eos_set(eos)
    if not model_prefix:
        return list(template_full)
    return splice_at_turn(model_prefix, count_eos(template_prefix, ids), template_full, ids)


def first_mismatch(ids: Sequence[int], prefix: Sequence[int]) -> int | None:
    """Index where `ids` stops beginning with `prefix`, or None when it does."""
    for pos, token in enumerate(prefix):
        if pos >= len(ids) or ids[pos] != token:
            return pos
    return None
