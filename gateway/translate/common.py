"""Pieces shared by the non-streaming and the streaming Chat -> Responses translation."""

from __future__ import annotations

import time
from random import getrandbits as _random_bits
from typing import Any

#: The RL token bundle a trainer reads off the last output item (NeMo Gym's contract).
TOKEN_FIELDS = (
    "prompt_token_ids",
    "generation_token_ids",
    "generation_log_probs",
    "routed_experts",
)


def new_id(prefix: str) -> str:
    """``prefix`` + "_" + 32 hex chars, e.g. ``resp_…``, ``msg_…``, ``fc_…``, ``rs_…``.
    Labels, not secrets: the fast PRNG, not uuid4's getrandom() call per id."""
    return f"{prefix}_{_random_bits(128):032x}"


def now() -> int:
    return int(time.time())


def wants_logprobs(request: dict | None) -> bool:
    """Whether the client asked for `output_text.logprobs`, as OpenAI decides it: the
    `message.output_text.logprobs` include, or `top_logprobs` above 0. Logprobs that reached
    the backend for another reason (an engine extra `logprobs: true`, the RL token path)
    stay out of the text parts; the token bundle keeps them (`generation_log_probs`)."""
    if not request:
        return False
    include = request.get("include")
    if isinstance(include, list) and "message.output_text.logprobs" in include:
        return True
    top = request.get("top_logprobs")
    return isinstance(top, int) and not isinstance(top, bool) and top > 0


def finish_status(finish_reason: str | None) -> tuple[str, dict | None, dict | None]:
    """Map a chat ``finish_reason`` to (status, incomplete_details, error)."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}, None
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}, None
    if finish_reason == "abort":
        message = "The backend aborted the generation (finish_reason 'abort')."
        return "failed", None, {"code": "server_error", "message": message}
    # stop, tool_calls, function_call, eos_token, stop_sequence, None, anything else
    return "completed", None, None


def convert_usage(usage: dict | None) -> dict | None:
    """Chat ``usage`` -> Responses ``usage`` (None stays None)."""
    if not usage:
        return None
    inp = usage.get("prompt_tokens") or 0
    out = usage.get("completion_tokens") or 0
    total = usage.get("total_tokens")
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": inp,
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens") or 0,
            "cache_write_tokens": 0,
        },
        "output_tokens": out,
        "output_tokens_details": {
            "reasoning_tokens": completion_details.get("reasoning_tokens") or 0
        },
        "total_tokens": total if total is not None else inp + out,
    }


def _token_bytes(token: Any) -> list[int]:
    return list(token.encode("utf-8", "surrogatepass")) if isinstance(token, str) else []


def _logprob_entry(entry: dict, with_top: bool) -> dict:
    token = entry.get("token")
    out = {
        "token": token if token is not None else "",
        "logprob": entry.get("logprob"),
        "bytes": entry.get("bytes")
        if isinstance(entry.get("bytes"), list)
        else _token_bytes(token),
    }
    if with_top:
        out["top_logprobs"] = [_logprob_entry(t, False) for t in entry.get("top_logprobs") or ()]
    return out


def convert_logprobs(entries: list | None) -> list[dict]:
    """Chat ``logprobs.content`` entries -> Responses ``output_text.logprobs`` entries.

    The shapes agree; entries that already have every field are reused, not copied.
    """
    if not entries:
        return []
    out = []
    for e in entries:
        top = e.get("top_logprobs")
        if (
            isinstance(e.get("bytes"), list)
            and isinstance(top, list)
            and all(isinstance(t.get("bytes"), list) for t in top)  # null bytes: derive them
        ):
            out.append(e)
        else:
            out.append(_logprob_entry(e, True))
    return out


def token_bundle(
    message: dict | None,
    prompt_ids: list | None,
    generation_ids: list | None,
    logprobs: list | None,
) -> dict | None:
    """The token fields to put on the last output item, or None.

    Message-level fields (``prompt_token_ids`` / ``generation_token_ids`` /
    ``generation_log_probs``) win. Otherwise vLLM's ``return_token_ids`` transport copies
    (top-level ``prompt_token_ids``, ``choices[0].token_ids``) are used, with
    ``generation_log_probs`` taken from the sampled-token logprobs when one per token exists.
    """
    if message:
        bundle = {k: message[k] for k in TOKEN_FIELDS if message.get(k) is not None}
        if bundle:
            return bundle
    if prompt_ids is None and generation_ids is None:
        return None
    bundle = {}
    if prompt_ids is not None:
        bundle["prompt_token_ids"] = prompt_ids
    if generation_ids is not None:
        bundle["generation_token_ids"] = generation_ids
        if logprobs and len(logprobs) == len(generation_ids):
            bundle["generation_log_probs"] = [e.get("logprob") for e in logprobs]
    return bundle


# ---- output items --------------------------------------------------------------------------


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def output_text_part(text: str, logprobs: list) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def message_item(item_id: str, content: list, status: str = "completed") -> dict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
