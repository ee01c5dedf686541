"""Chat Completions response -> Responses API Response object (pure, no I/O)."""

from __future__ import annotations

from gateway.errors import GatewayError

from .common import (
    convert_logprobs,
    convert_usage,
    finish_status,
    function_call_item,
    message_item,
    new_id,
    now,
    output_text_part,
    reasoning_item,
    token_bundle,
    wants_logprobs,
)
from .response_object import build_response


def chat_to_response(
    chat: dict,
    request: dict,
    *,
    model: str,
    response_id: str | None = None,
    created_at: int | None = None,
    effective: dict | None = None,
) -> dict:
    """Build the full Response for ``chat`` (a parsed ChatCompletion) answering ``request``.

    Output items, in order: reasoning (raw text as ``reasoning_text``), the assistant message
    (``output_text`` + ``refusal``), one ``function_call`` per tool call. Only ``choices[0]``
    is used. Token fields land on the last output item. `output_text.logprobs` is filled only
    when the request asked for it (`wants_logprobs`); `effective` is passed to
    `build_response`.
    """
    choices = chat.get("choices") or ()
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    logprobs = (choice.get("logprobs") or {}).get("content")
    text_logprobs = logprobs if wants_logprobs(request) else None

    output: list[dict] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if reasoning:
        output.append(reasoning_item(new_id("rs"), reasoning))

    content = message.get("content")
    if isinstance(content, list):  # a few backends answer with text parts
        content = "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    elif content is not None and not isinstance(content, str):
        raise GatewayError(
            502, "the upstream answered with message content that is not text",
            code="upstream_invalid",
        )  # fmt: skip
    refusal = message.get("refusal")
    tool_calls = message.get("tool_calls") or ()
    parts = []
    if content:
        parts.append(output_text_part(content, convert_logprobs(text_logprobs)))
    if refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if not parts and not output and not tool_calls:
        parts.append(output_text_part("", convert_logprobs(text_logprobs)))
    if parts:
        output.append(message_item(new_id("msg"), parts))

    for call in tool_calls:
        fn = call.get("function") or {}
        item = function_call_item(
            new_id("fc"), call.get("id") or new_id("call"), fn.get("name") or "",
            fn.get("arguments") or "",
        )  # fmt: skip
        if call.get("extra_content"):  # Gemini's thought_signature: must come back next turn
            item["extra_content"] = call["extra_content"]
        output.append(item)

    status, incomplete, error = finish_status(choice.get("finish_reason"))
    if status != "completed":
        output[-1]["status"] = "incomplete"
    tokens = token_bundle(message, chat.get("prompt_token_ids"), choice.get("token_ids"), logprobs)
    if tokens:
        output[-1].update(tokens)

    if created_at is None:
        created_at = chat.get("created") or now()
    return build_response(
        request,
        model=model,
        response_id=response_id or new_id("resp"),
        created_at=created_at,
        status=status,
        output=output,
        usage=convert_usage(chat.get("usage")),
        incomplete_details=incomplete,
        error=error,
        effective=effective,
        service_tier=chat.get("service_tier"),
    )
