"""Responses API request -> Chat Completions request (pure, no I/O, never mutates its input)."""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

from .dialect import ChatDialect
from .items import STATELESS as _STATELESS
from .items import input_to_messages

_OPENAI_ONLY = "it is an OpenAI-only feature with no Chat Completions equivalent"

# Responses parameters refused whenever they carry a value, with what to do instead.
_REFUSED = {
    "previous_response_id": f"`previous_response_id` is not supported: {_STATELESS}. Resend the "
    "full conversation in `input` (the earlier input items followed by the previous `output`).",
    "conversation": f"`conversation` is not supported: {_STATELESS}. Resend the full "
    "conversation in `input`.",
    "prompt": "`prompt` (a stored prompt template) is not supported: the gateway cannot resolve "
    "hosted prompts. Send the rendered text in `instructions` and `input`.",
    "max_tool_calls": "`max_tool_calls` is not supported: it limits built-in tools, which chat "
    "backends do not run. Remove it and count tool calls client-side.",
    "context_management": "`context_management` (server-side compaction) is not supported: "
    f"{_STATELESS}. Trim or summarise the conversation client-side before sending it.",
    "moderation": f"`moderation` is not supported: {_OPENAI_ONLY}. Run moderation client-side "
    "or use an OpenAI route.",
    "access_programs": f"`access_programs` is not supported: {_OPENAI_ONLY}. Remove it or use "
    "an OpenAI route.",
    "background_options": "`background_options` is not supported: the gateway does not run "
    "background responses. Remove it and make a normal (optionally streaming) request.",
    "prompt_cache_options": f"`prompt_cache_options` is not supported: {_OPENAI_ONLY}. Remove "
    "it (use `prompt_cache_key`) or use an OpenAI route.",
    "image": f"`image` (request-level image options) is not supported: {_OPENAI_ONLY}. Remove it.",
}
_BACKGROUND = (
    "`background: true` is not supported: the gateway does not run background "
    "responses. Send `background: false` and use `stream: true` for long generations."
)
_TRUNCATION = (
    '`truncation: "auto"` is not supported: the gateway never drops input items. '
    'Send `truncation: "disabled"` and trim the conversation client-side.'
)

# Copied unchanged when not null.
_PASS_THROUGH = (
    "temperature",
    "top_p",
    "user",
    "metadata",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "prompt_cache_retention",
)
# Every Responses parameter this module knows; any other top-level key is an engine extra.
_KNOWN = frozenset(
    (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "reasoning",
        "text",
        "include",
        "top_logprobs",
        "stream",
        "stream_options",
        "store",
        "background",
        "truncation",
        *_PASS_THROUGH,
        *_REFUSED,
    )
)


def responses_to_chat(body: dict, dialect: ChatDialect) -> dict:
    """Translate a parsed Responses ``create`` body into a Chat Completions body.

    Raises ``UnsupportedParameter`` / ``InvalidRequest`` (400s naming ``param``) for what a
    chat backend cannot honour. Unknown top-level keys (engine extras) are copied unchanged.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    for key, message in _REFUSED.items():
        if body.get(key) is not None:
            raise UnsupportedParameter(key, message)
    if body.get("background"):
        raise UnsupportedParameter("background", _BACKGROUND)
    if body.get("truncation") == "auto":
        raise UnsupportedParameter("truncation", _TRUNCATION)

    out: dict[str, Any] = {}
    if "model" in body:
        out["model"] = body["model"]
    if "input" not in body or body["input"] is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    out["messages"] = input_to_messages(body["input"], body.get("instructions"), dialect)

    tools = _tools(body.get("tools"), dialect)
    tool_choice, tools = _tool_choice(body.get("tool_choice"), tools)
    if tools:
        out["tools"] = tools
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
        if body.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = body["parallel_tool_calls"]

    for key in _PASS_THROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("max_output_tokens") is not None:
        out[dialect.max_tokens_field] = body["max_output_tokens"]
    _reasoning(body.get("reasoning"), out)
    _text(body.get("text"), out)
    _logprobs(body, out)
    stream = body.get("stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}

    for key, value in body.items():
        if key in _KNOWN:
            continue
        if key == "messages":
            raise InvalidRequest(
                "`messages` is a Chat Completions parameter: put the conversation in `input`, "
                "or send the request to /v1/chat/completions.",
                param="messages",
            )
        if key in out and out[key] != value:
            raise InvalidRequest(
                f"`{key}` conflicts with the value derived from the Responses parameters "
                f"({out[key]!r}); send only one of them.",
                param=key,
            )
        out[key] = value
    return out


# ---- tools ---------------------------------------------------------------------------------


def _tools(tools: Any, dialect: ChatDialect) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise UnsupportedParameter(
                "tools",
                f"Tool type {kind!r} (tools[{i}]) is not supported on this route: chat backends "
                "only run function tools. Declare it as a function tool "
                '({"type": "function", "name": ..., "parameters": ...}) and run it '
                "client-side, or send the request to an OpenAI route.",
            )
        nested = tool.get("function")
        if isinstance(nested, dict) and "name" not in tool:  # chat-shaped tool, accepted
            if not dialect.keep_tool_strict and "strict" in nested:
                nested = {k: v for k, v in nested.items() if k != "strict"}
            out.append({"type": "function", "function": nested})
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}] (function) needs a `name`.", param="tools")
        if tool.get("defer_loading"):
            raise UnsupportedParameter(
                "tools",
                f"`defer_loading` (tools[{i}]) is not supported: chat backends need every tool "
                "up front. Remove it.",
            )
        fn: dict[str, Any] = {"name": name}
        if tool.get("description") is not None:
            fn["description"] = tool["description"]
        if tool.get("parameters") is not None:
            fn["parameters"] = tool["parameters"]
        if dialect.keep_tool_strict and tool.get("strict") is not None:
            fn["strict"] = tool["strict"]
        out.append({"type": "function", "function": fn})
    return out


def _choice_name(entry: dict) -> Any:
    name = entry.get("name")
    if name is None and isinstance(entry.get("function"), dict):
        name = entry["function"].get("name")
    return name


def _tool_name(tool: dict) -> str | None:
    """A translated tool's name; None when a chat-shaped tool's name is not a string."""
    name = tool["function"].get("name")
    return name if isinstance(name, str) else None


def _tool_choice(choice: Any, tools: list[dict]) -> tuple[Any, list[dict]]:
    """(chat tool_choice or None, possibly filtered tools)."""
    if choice is None:
        return None, tools
    names = {_tool_name(t) for t in tools} - {None}
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequest(
                f"Invalid tool_choice {choice!r}: use 'none', 'auto', 'required' or an object.",
                param="tool_choice",
            )
        if choice == "required" and not tools:
            raise InvalidRequest(
                "tool_choice 'required' needs at least one function tool in `tools`.",
                param="tool_choice",
            )
        return choice, tools
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        name = _choice_name(choice)
        if not isinstance(name, str) or name not in names:
            raise InvalidRequest(
                f"tool_choice names function {name!r}, which is not declared in `tools`.",
                param="tool_choice",
            )
        return {"type": "function", "function": {"name": name}}, tools
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise InvalidRequest(
                f"allowed_tools mode {mode!r} is invalid: use 'auto' or 'required'.",
                param="tool_choice",
            )
        entries = choice.get("tools") or []
        if not isinstance(entries, list):
            raise InvalidRequest("allowed_tools `tools` must be a list.", param="tool_choice")
        allowed = set()
        for entry in entries:
            entry_type = entry.get("type") if isinstance(entry, dict) else None
            if entry_type != "function":
                raise UnsupportedParameter(
                    "tool_choice",
                    f"allowed_tools entry of type {entry_type!r} is not supported: chat "
                    "backends only run function tools.",
                )
            name = _choice_name(entry)
            if not isinstance(name, str) or name not in names:
                raise InvalidRequest(
                    f"allowed_tools names function {name!r}, which is not declared in `tools`.",
                    param="tool_choice",
                )
            allowed.add(name)
        tools = [t for t in tools if _tool_name(t) in allowed]
        if mode == "required" and not tools:
            raise InvalidRequest(
                "allowed_tools with mode 'required' needs at least one allowed function tool.",
                param="tool_choice",
            )
        return mode, tools
    raise UnsupportedParameter(
        "tool_choice",
        f"tool_choice type {kind!r} selects a built-in tool, which chat backends do not run. "
        "Use 'auto', 'required', 'none', a function choice or allowed_tools, or an OpenAI route.",
    )


# ---- reasoning, text, logprobs -------------------------------------------------------------


def _reasoning(reasoning: Any, out: dict) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise InvalidRequest("`reasoning` must be an object.", param="reasoning")
    for key, value in reasoning.items():
        if key == "effort":
            if value is not None:
                out["reasoning_effort"] = value
        elif key in ("summary", "generate_summary"):
            continue  # accepted: open engines return raw reasoning text, never summaries
        elif value is not None:
            raise UnsupportedParameter(
                f"reasoning.{key}",
                f"`reasoning.{key}` is not supported on chat backends: only `reasoning.effort` "
                "(and `reasoning.summary`, answered with raw reasoning text) are. Remove it.",
            )


def _text(text: Any, out: dict) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise InvalidRequest("`text` must be an object.", param="text")
    for key, value in text.items():
        if key not in ("format", "verbosity") and value is not None:
            raise UnsupportedParameter(
                f"text.{key}",
                f"`text.{key}` is not supported: only `text.format` and "
                "`text.verbosity` are. Remove it.",
            )
    fmt = text.get("format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind == "json_schema":
            if not fmt.get("name"):
                raise InvalidRequest(
                    "text.format (json_schema) needs a `name`.", param="text.format.name"
                )
            if fmt.get("schema") is None:
                raise InvalidRequest(
                    "text.format (json_schema) needs a `schema`.", param="text.format.schema"
                )
            schema = {"name": fmt["name"], "schema": fmt["schema"]}
            for key in ("strict", "description"):
                if fmt.get(key) is not None:
                    schema[key] = fmt[key]
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind != "text":
            raise InvalidRequest(
                f"text.format type {kind!r} is invalid: use 'text', 'json_object' or "
                "'json_schema'.",
                param="text.format.type",
            )
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]


def _logprobs(body: dict, out: dict) -> None:
    include = body.get("include")
    wanted = bool(body.get("logprobs"))  # an engine-extra `logprobs: true` counts too
    if include is not None:
        if not isinstance(include, list):
            raise InvalidRequest("`include` must be a list.", param="include")
        for value in include:
            if value == "message.output_text.logprobs":
                wanted = True
            elif value != "reasoning.encrypted_content":  # accepted, never produced
                raise UnsupportedParameter(
                    "include",
                    f"include value {value!r} is not supported: chat backends can only add "
                    "'message.output_text.logprobs' ('reasoning.encrypted_content' is accepted "
                    "but open engines return raw reasoning text instead). Remove it.",
                )
    top = body.get("top_logprobs")
    if wanted:
        out["logprobs"] = True
        out["top_logprobs"] = top if top is not None else 0
    elif top:  # top_logprobs > 0 alone asks for logprobs; chat backends need the flag
        out["logprobs"] = True
        out["top_logprobs"] = top
