"""Sampling checks for RL: pinned training parameters, single choice, the max_tokens clamp.

The log-probs a trainer divides by must come from the distribution it thinks was sampled,
so a training route refuses requests whose sampling differs from its config (as NeMo RL's
own server does) instead of letting a client or an engine default change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError, InvalidRequest

_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class SamplingPin:
    """One accepted (temperature, top_p) pair of a training route."""

    temperature: float
    top_p: float


def _same(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a - b) <= _TOLERANCE


def _accepted(pins: list[SamplingPin]) -> str:
    return " or ".join(f"(temperature {p.temperature}, top_p {p.top_p})" for p in pins)


def apply_training(body: dict[str, Any], pins: list[SamplingPin]) -> dict[str, Any]:
    """Check a request against a training route; return a copy with the pins filled in.

    A missing temperature or top_p gets the pinned value (never an engine default), top_k is
    sent as -1 (disabled), and n must be 1.
    """
    candidates = pins
    temperature = body.get("temperature")
    if temperature is not None:
        candidates = [p for p in candidates if _same(temperature, p.temperature)]
        if not candidates:
            raise InvalidRequest(
                f"This route is pinned for RL training: temperature {temperature} is not "
                f"allowed; send {_accepted(pins)} or leave it out.",
                param="temperature",
                code="training_sampling_mismatch",
            )
    top_p = body.get("top_p")
    if top_p is not None:
        matching = [p for p in candidates if _same(top_p, p.top_p)]
        if not matching:
            raise InvalidRequest(
                f"This route is pinned for RL training: top_p {top_p} is not allowed with "
                f"these parameters; send {_accepted(candidates)} or leave it out.",
                param="top_p",
                code="training_sampling_mismatch",
            )
        candidates = matching
    top_k = body.get("top_k")
    if top_k is not None and top_k != -1:
        raise InvalidRequest(
            f"This route is pinned for RL training: top_k must be unset or -1, got {top_k!r}.",
            param="top_k",
            code="training_sampling_mismatch",
        )
    check_single_choice(body, "this route is pinned for RL training")
    out = dict(body)
    out["temperature"] = candidates[0].temperature
    out["top_p"] = candidates[0].top_p
    out["top_k"] = -1  # engines may default to the model's generation_config top_k
    return out


def check_single_choice(body: dict[str, Any], why: str) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest(
            f"n must be 1 ({why}): token ids and log-probs are returned for one choice.",
            param="n",
        )


def check_capture(body: dict[str, Any]) -> None:
    """Checks for a request that asks for the token bundle."""
    check_single_choice(body, "token ids were requested")
    if "top_logprobs" in body and body["top_logprobs"] is None:
        # vLLM reads logprobs as `top_logprobs if logprobs else None`: an explicit null
        # silently turns log-probs off, and the bundle would have none.
        raise InvalidRequest(
            "top_logprobs: null turns log-probs off on the engine, so no generation_log_probs "
            "could be returned; leave it out or send 0.",
            param="top_logprobs",
        )


def clamp_max_tokens(body: dict[str, Any], prompt_len: int, max_model_len: int | None) -> None:
    """Lower max_tokens / max_completion_tokens to the context left after the prompt.

    Done after the splice (the prompt length can change). A prompt that leaves no room is a
    400 whose message says "maximum context length", which NeMo Gym turns into an empty
    `finish_reason: "length"` turn.
    """
    if not max_model_len or max_model_len <= 0:
        return
    left = max_model_len - prompt_len
    if left < 1:
        raise GatewayError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"prompt contains {prompt_len} input tokens, which leaves no room for output "
            "tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > left:
            body[key] = left
