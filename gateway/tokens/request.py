"""What a Chat request says about token ids: capture, the required prefix, the clean messages.

NeMo Gym sends back, on each assistant message it got from us, the three token fields of
that call. The last such message gives the required prefix (its prompt plus its generation);
an explicit top-level `required_prefix_token_ids` wins (NeMo RL's extension).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest

#: The bundle on an assistant message (NeMo Gym's "ForTraining" fields).
BUNDLE = ("prompt_token_ids", "generation_token_ids", "generation_log_probs")
#: Every field stripped from messages before they reach an engine.
MESSAGE_TOKEN_FIELDS = (*BUNDLE, "routed_experts")
PREFIX_FIELD = "required_prefix_token_ids"


@dataclass(slots=True)
class TokenRequest:
    """The token-related reading of one Chat request (messages already cleaned)."""

    messages: list[dict[str, Any]]
    #: ids the prompt must begin with: the last bundle's prompt + generation, or explicit
    required_prefix: list[int] | None
    #: messages[:prefix_end] is what the template prefix renders (through the last assistant)
    prefix_end: int
    #: the message the prefix came from (None when explicit or absent)
    source_index: int | None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_list(value: Any, param: str) -> list[int]:
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        raise InvalidRequest(f"'{param}' must be a list of token ids (integers >= 0)", param=param)
    return value


def _bundle_prefix(message: dict[str, Any], index: int) -> list[int] | None:
    """P + G of a message's bundle; None without one; 400 for a partial or malformed one."""
    present = [k for k in BUNDLE if message.get(k) is not None]
    if not present:
        return None
    where = f"messages[{index}]"
    if len(present) != len(BUNDLE):
        missing = ", ".join(k for k in BUNDLE if k not in present)
        raise InvalidRequest(
            f"{where} carries a partial token bundle: {missing} missing. Send "
            "prompt_token_ids, generation_token_ids and generation_log_probs together, "
            "exactly as the gateway returned them.",
            param=where,
        )
    prompt = int_list(message["prompt_token_ids"], f"{where}.prompt_token_ids")
    generation = int_list(message["generation_token_ids"], f"{where}.generation_token_ids")
    logprobs = message["generation_log_probs"]
    if not isinstance(logprobs, list) or not all(_is_number(v) for v in logprobs):
        raise InvalidRequest(
            f"'{where}.generation_log_probs' must be a list of numbers",
            param=f"{where}.generation_log_probs",
        )
    if len(logprobs) != len(generation):
        raise InvalidRequest(
            f"{where}: generation_log_probs has {len(logprobs)} entries for "
            f"{len(generation)} generation_token_ids",
            param=f"{where}.generation_log_probs",
        )
    return [*prompt, *generation]


def _clean(message: Any) -> Any:
    if isinstance(message, dict) and any(k in message for k in MESSAGE_TOKEN_FIELDS):
        return {k: v for k, v in message.items() if k not in MESSAGE_TOKEN_FIELDS}
    return message


def read_token_request(body: dict[str, Any]) -> TokenRequest:
    """Validate the token fields of a (checked) chat body and strip them from its messages."""
    messages: list[Any] = body["messages"]
    prefix: list[int] | None = None
    source: int | None = None
    explicit = body.get(PREFIX_FIELD)
    if explicit is not None:
        prefix = int_list(explicit, PREFIX_FIELD)
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict):
            found = _bundle_prefix(message, index)
            if found is not None:
                if prefix is None:
                    prefix, source = found, index
                break
    # The template prefix runs through the last assistant turn of the history; with
    # continue_final_message the final (open) assistant message is not history yet.
    last = len(messages) - 1 if not body.get("continue_final_message") else len(messages) - 2
    end = len(messages)
    for index in range(last, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("role") == "assistant":
            end = index + 1
            break
    return TokenRequest(
        messages=[_clean(m) for m in messages],
        required_prefix=prefix or None,
        prefix_end=end,
        source_index=source,
    )


def capture_requested(body: dict[str, Any], always: bool) -> bool:
    """Whether the answer must carry the message-level token bundle (NeMo RL's condition)."""
    return always or (body.get("logprobs") is True and bool(body.get("return_tokens_as_token_ids")))


def wants_token_ids(body: dict[str, Any]) -> bool:
    """Whether a request demands real token ids (for backends that cannot give them)."""
    return body.get(PREFIX_FIELD) is not None or capture_requested(body, False)
