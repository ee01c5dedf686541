"""Reading the token ids and log-probs out of an engine's Chat answer, and putting the bundle
on `choices[0].message` (the shape NeMo Gym reads first)."""

from __future__ import annotations

from typing import Any

TOKEN_ID_PREFIX = "token_id:"


class MissingTokens(ValueError):
    """The engine's answer lacks the ids or log-probs the bundle needs."""


def _first_choice(answer: dict[str, Any]) -> dict[str, Any]:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MissingTokens("the answer has no choices")
    return choices[0]


def _logprob_entries(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        return logprobs["content"]
    return None


def _id_from_token(entry: dict[str, Any]) -> int:
    token = entry.get("token")
    if isinstance(token, str) and token.startswith(TOKEN_ID_PREFIX):
        try:
            return int(token[len(TOKEN_ID_PREFIX) :])
        except ValueError:
            pass
    raise MissingTokens(f"a log-prob entry's token is {token!r}, not 'token_id:<int>'")


def prompt_ids_of(answer: dict[str, Any]) -> list[int] | None:
    """The prompt ids the engine echoed: top level (vLLM) or on the choice (SGLang)."""
    ids = answer.get("prompt_token_ids")
    if ids is None:
        choices = answer.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ids = choices[0].get("prompt_token_ids")
    return ids if isinstance(ids, list) else None


def extract_bundle(answer: dict[str, Any], need_logprobs: bool = True) -> dict[str, list]:
    """`prompt_token_ids`, `generation_token_ids`, `generation_log_probs` from an answer.

    Generation ids come from `choices[0].token_ids` (vLLM), `choices[0].response_token_ids`
    (SGLang 0.5.23's name on chat choices; `token_ids` is its name on completions choices),
    else from `"token_id:<int>"` log-prob tokens; log-probs are the engine's values for the
    sampled tokens, unchanged.
    """
    choice = _first_choice(answer)
    prompt = prompt_ids_of(answer)
    if prompt is None:
        raise MissingTokens("the answer has no prompt_token_ids")
    entries = _logprob_entries(choice)
    generation = choice.get("token_ids")
    if not isinstance(generation, list):
        generation = choice.get("response_token_ids")
    if not isinstance(generation, list):
        if entries is None:
            raise MissingTokens("the answer has neither choices[0].token_ids nor logprobs")
        generation = [_id_from_token(e) for e in entries]
    bundle: dict[str, list] = {"prompt_token_ids": prompt, "generation_token_ids": generation}
    if not need_logprobs:
        return bundle
    if entries is None:
        if generation:
            raise MissingTokens("the answer has no choices[0].logprobs.content")
        entries = []
    logprobs = [e.get("logprob") if isinstance(e, dict) else None for e in entries]
    if len(logprobs) != len(generation) or any(
        not isinstance(v, (int, float)) or isinstance(v, bool) for v in logprobs
    ):
        raise MissingTokens(
            f"the answer has {len(logprobs)} log-probs for {len(generation)} generated tokens"
        )
    bundle["generation_log_probs"] = logprobs
    return bundle


def attach_bundle(
    answer: dict[str, Any],
    bundle: dict[str, list],
    *,
    keep_transport: bool,
    keep_logprobs: bool,
) -> None:
    """Put the bundle on `choices[0].message`; drop what the client did not ask for.

    keep_transport: the client sent `return_token_ids` (keep the engine's
        `prompt_token_ids`, `choices[].token_ids` / `response_token_ids` as they came).
    keep_logprobs: the client sent `logprobs: true` (else `choices[].logprobs` is null).
    """
    choice = _first_choice(answer)
    message = choice.get("message")
    if not isinstance(message, dict):
        message = choice["message"] = {"role": "assistant", "content": None}
    message.update(bundle)
    if not keep_transport:
        if answer.get("prompt_token_ids") is not None:
            answer["prompt_token_ids"] = None
        for c in answer.get("choices") or ():
            if isinstance(c, dict):
                if c.get("token_ids") is not None:
                    c["token_ids"] = None
                c.pop("prompt_token_ids", None)
                c.pop("response_token_ids", None)  # SGLang's name for the generated ids
    if not keep_logprobs:
        for c in answer.get("choices") or ():
            if isinstance(c, dict) and c.get("logprobs") is not None:
                c["logprobs"] = None


def ids_as_token_strings(answer: dict[str, Any], generation: list[int]) -> None:
    """Write `"token_id:<int>"` into the log-prob entries (engines that return token text)."""
    entries = _logprob_entries(_first_choice(answer))
    if entries is None or len(entries) != len(generation):
        return
    for entry, token_id in zip(entries, generation, strict=True):
        if isinstance(entry, dict):
            entry["token"] = f"{TOKEN_ID_PREFIX}{token_id}"
