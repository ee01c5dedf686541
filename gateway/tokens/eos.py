"""Finding a chat template's end-of-turn token from two renderings (no tokenizer needed).

Two conversations that differ only in one assistant message's text render to the same ids
before that text and the same ids after it; the first id after the text is the token that
closes an assistant turn (`<|im_end|>`, `<|eot_id|>`, `</s>`, `<end_of_turn>`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The two assistant texts; their last tokens differ in every tokenizer we know.
PROBE_TEXTS = ("a", "b c")


def probe_conversation(text: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "x"},
    ]


def eos_from_renders(first: Sequence[int], second: Sequence[int]) -> int | None:
    """The first id of the common tail of two renderings (None if they share no tail)."""
    head = 0
    limit = min(len(first), len(second))
    while head < limit and first[head] == second[head]:
        head += 1
    tail = 0
    while tail < limit - head and first[len(first) - 1 - tail] == second[len(second) - 1 - tail]:
        tail += 1
    if tail == 0 or head >= len(first) - tail:
        return None
    return first[len(first) - tail]
