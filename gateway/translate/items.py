"""Responses ``input`` items (+ ``instructions``) -> Chat Completions ``messages``."""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

from .common import TOKEN_FIELDS
from .dialect import ChatDialect

STATELESS = "the gateway is stateless and stores nothing between requests"
_TEXT_TYPES = frozenset(("input_text", "output_text", "text"))
_SYSTEM_ROLES = frozenset(("system", "developer"))


def input_to_messages(inp: Any, instructions: Any, dialect: ChatDialect) -> list[dict]:
    if isinstance(inp, str):
        messages = [{"role": "user", "content": inp}]
    elif isinstance(inp, list):
        conv = _InputConverter(dialect)
        for i, item in enumerate(inp):
            conv.add(i, item)
        conv.flush()
        messages = conv.messages
    else:
        raise InvalidRequest("`input` must be a string or a list of input items.", param="input")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("`instructions` must be a string.", param="instructions")

    sys_role = "developer" if dialect.developer_role else "system"
    if not dialect.merge_system:
        if instructions:
            messages.insert(0, {"role": sys_role, "content": instructions})
        return messages
    pieces: list[str] = []
    role = None
    if instructions:
        pieces.append(instructions)
        role = sys_role
    k = 0
    while k < len(messages) and messages[k]["role"] in _SYSTEM_ROLES:
        text = _plain_text(messages[k]["content"])
        if text is None:
            break
        pieces.append(text)
        role = role or messages[k]["role"]
        k += 1
    if pieces:
        messages[:k] = [{"role": role, "content": "\n\n".join(pieces)}]
    return messages


def _part_type(part: Any) -> str | None:
    """A content part's `type` when it is a string (a list or object would not hash)."""
    kind = part.get("type") if isinstance(part, dict) else None
    return kind if isinstance(kind, str) else None


def _string(value: Any, where: str) -> str:
    """A text field of an item or part: a string, or null for empty; 400 otherwise."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string.", param=where)
    return value


def _plain_text(content: Any) -> str | None:
    """The text of a text-only content; None if it holds anything else (e.g. an image)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(p.get("type") == "text" for p in content):
        return "".join(p.get("text") or "" for p in content)
    return None


class _InputConverter:
    """Walks input items; buffers an assistant group (text, reasoning, calls) until flushed."""

    __slots__ = (
        "active",
        "calls",
        "dialect",
        "messages",
        "reasoning",
        "refusals",
        "texts",
        "tokens",
    )

    def __init__(self, dialect: ChatDialect) -> None:
        self.dialect = dialect
        self.messages: list[dict] = []
        self._reset()

    def _reset(self) -> None:
        self.active = False
        self.texts: list[str] = []
        self.refusals: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict] = []
        self.tokens: dict | None = None

    def _take_tokens(self, item: dict) -> None:
        bundle = {k: item[k] for k in TOKEN_FIELDS if k in item}
        if bundle:
            self.tokens = bundle  # last seen wins

    def add(self, i: int, item: Any) -> None:
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role == "assistant":
                self._assistant(where, item)
            elif role in ("user", "system", "developer"):
                self.flush()
                if role == "developer" and not self.dialect.developer_role:
                    role = "system"
                content = _content(where, item.get("content"), self.dialect)
                self.messages.append({"role": role, "content": content})
            elif role == "tool" and kind is None:
                self.flush()
                if not item.get("tool_call_id"):
                    raise InvalidRequest(f"{where} (role tool) needs `tool_call_id`.", param=where)
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": item["tool_call_id"],
                        "content": item.get("content"),
                    }
                )
            else:
                raise InvalidRequest(f"{where} has an unsupported role {role!r}.", param=where)
        elif kind == "function_call":
            self._function_call(where, item)
        elif kind == "function_call_output":
            self._function_call_output(where, item)
        elif kind == "reasoning":
            self._reasoning(where, item)
        elif kind == "item_reference":
            raise UnsupportedParameter(
                where,
                f"Input item type 'item_reference' ({where}) is not supported: {STATELESS}. "
                "Send the referenced item itself instead of its id.",
            )
        else:
            raise UnsupportedParameter(
                where,
                f"Input item type {kind!r} ({where}) is not supported: chat backends only take "
                "messages, function_call, function_call_output and reasoning items. Remove it, "
                "or use an OpenAI route for built-in tool items.",
            )

    def _assistant(self, where: str, item: dict) -> None:
        self.active = True
        content = item.get("content")
        if isinstance(content, str):
            self.texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                kind = _part_type(part)
                if kind in _TEXT_TYPES:
                    self.texts.append(_string(part.get("text"), f"{where}.content[{j}].text"))
                elif kind == "refusal":
                    here = f"{where}.content[{j}].refusal"
                    self.refusals.append(_string(part.get("refusal"), here))
                else:
                    raise UnsupportedParameter(
                        f"{where}.content[{j}]",
                        f"Assistant content part type {kind!r} ({where}.content[{j}]) is not "
                        "supported: replay assistant turns as output_text or refusal parts.",
                    )
        elif content is not None:
            raise InvalidRequest(f"{where}.content must be a string or a list.", param=where)
        if item.get("refusal"):
            self.refusals.append(_string(item["refusal"], f"{where}.refusal"))
        reasoning = item.get("reasoning") or item.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self.reasoning.append(reasoning)
        calls = item.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise InvalidRequest(f"{where}.tool_calls must be a list.", param=f"{where}.tool_calls")
        if calls:
            self.calls.extend(calls)
        self._take_tokens(item)

    def _function_call(self, where: str, item: dict) -> None:
        call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where} (function_call) needs `call_id`.", param=where)
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{where} (function_call) needs `name`.", param=where)
        if not isinstance(args, str):
            raise InvalidRequest(
                f"{where}.arguments must be a JSON-encoded string.", param=f"{where}.arguments"
            )
        self.active = True
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        if item.get("extra_content"):  # Gemini's thought_signature, from the previous answer
            call["extra_content"] = item["extra_content"]
        self.calls.append(call)
        self._take_tokens(item)

    def _function_call_output(self, where: str, item: dict) -> None:
        self.flush()
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where} (function_call_output) needs `call_id`.", param=where)
        if isinstance(output, list):
            texts = []
            for j, part in enumerate(output):
                kind = _part_type(part)
                if kind not in _TEXT_TYPES:
                    raise UnsupportedParameter(
                        f"{where}.output",
                        f"function_call_output part type {kind!r} ({where}.output[{j}]) is not "
                        "supported on chat backends: tool messages carry text only. Send the "
                        "output as a string or as input_text parts.",
                    )
                texts.append(_string(part.get("text"), f"{where}.output[{j}].text"))
            output = "".join(texts)
        elif not isinstance(output, str):
            raise InvalidRequest(
                f"{where}.output must be a string or a list of input_text parts.",
                param=f"{where}.output",
            )
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _reasoning(self, where: str, item: dict) -> None:
        self.active = True
        texts: dict[str, list[str]] = {}
        for key in ("content", "summary"):
            parts = item.get(key) or []
            if not isinstance(parts, list):
                raise InvalidRequest(f"{where}.{key} must be a list.", param=f"{where}.{key}")
            texts[key] = [
                _string(p.get("text"), f"{where}.{key}[{j}].text")
                for j, p in enumerate(parts)
                if isinstance(p, dict)
            ]
        text = "".join(texts["content"])
        if not text:
            text = "\n\n".join(texts["summary"])
        if text:
            self.reasoning.append(text)
        self._take_tokens(item)

    def flush(self) -> None:
        if not self.active:
            return
        msg: dict[str, Any] = {"role": "assistant"}
        if self.texts:
            msg["content"] = "".join(self.texts)
        else:
            msg["content"] = None if (self.calls or self.refusals) else ""
        field = self.dialect.reasoning_field
        if field and self.reasoning:
            msg[field] = "\n\n".join(self.reasoning)
        if self.refusals:
            msg["refusal"] = "".join(self.refusals)
        if self.calls:
            msg["tool_calls"] = self.calls
        if self.tokens:
            msg.update(self.tokens)
        self.messages.append(msg)
        self._reset()


def _file_part(here: str, part: dict) -> dict:
    """`input_file` -> a chat `file` part (`file_data` and `filename`, or `file_id`)."""
    file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k) is not None}
    if "file_data" not in file and "file_id" not in file:
        raise UnsupportedParameter(
            here,
            f"input_file ({here}) needs `file_data` (base64) or `file_id`; `file_url` has no "
            "Chat Completions equivalent. Send the file's bytes as `file_data`.",
        )
    return {"type": "file", "file": file}


def _content(where: str, content: Any, dialect: ChatDialect) -> Any:
    """User/system/developer content: strings kept, parts mapped to chat parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list.", param=where)
    parts = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = _part_type(part)
        if kind in _TEXT_TYPES:
            parts.append({"type": "text", "text": _string(part.get("text"), f"{here}.text")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                if part.get("file_id"):
                    raise UnsupportedParameter(
                        here,
                        f"input_image with `file_id` ({here}) is not supported: the gateway has "
                        "no file store. Send the image as `image_url` (an https or data: URL).",
                    )
                raise InvalidRequest(f"{here} (input_image) needs `image_url`.", param=here)
            image = {"url": url}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "image_url":
            parts.append(part)  # already chat-shaped
        elif kind == "input_file" and dialect.file_parts:
            parts.append(_file_part(here, part))
        elif kind == "input_file":
            raise UnsupportedParameter(
                here,
                f"Content part type 'input_file' ({here}) is not supported on this route's "
                "backend. Extract the text and send it as input_text, or use an OpenAI route.",
            )
        else:
            raise UnsupportedParameter(
                here,
                f"Content part type {kind!r} ({here}) is not supported: use input_text or "
                "input_image parts.",
            )
    return parts
