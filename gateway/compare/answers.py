"""Answers as the comparison sees them: the text of a Chat or Responses answer, and a whole
answer rebuilt from its SSE stream (used by the compare client and by recordings)."""

from __future__ import annotations

from typing import Any

import orjson

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _call_text(name: Any, arguments: Any) -> str:
    return f"{name}({arguments or ''})"


def answer_text(answer: Any) -> str:
    """The visible answer: message text, then tool calls as `name(arguments)`, one a line."""
    if not isinstance(answer, dict):
        return ""
    parts: list[str] = []
    choices = answer.get("choices")
    if isinstance(choices, list) and choices:
        message = (choices[0] or {}).get("message") or {}
        parts.append(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            parts.append(_call_text(fn.get("name"), fn.get("arguments")))
    for item in answer.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            parts.append(_content_text(item.get("content")))
        elif item.get("type") == "function_call":
            parts.append(_call_text(item.get("name"), item.get("arguments")))
    return "\n".join(p for p in parts if p)


class StreamAssembler:
    """Feed SSE events (Chat chunks or Responses events) in order; `answer()` is the whole."""

    def __init__(self) -> None:
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.error: Any = None
        self.response: dict[str, Any] | None = None
        self.text: list[str] = []  # Responses deltas, in case no terminal event came
        self.meta: dict[str, Any] = {}

    def feed(self, data: bytes) -> bool:
        """One event's data; True when it carried output (text, reasoning or a tool call)."""
        if data == b"[DONE]":
            return False
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(doc, dict):
            return False
        if "error" in doc and doc.get("type") is None:
            self.error = doc["error"]
            return False
        kind = doc.get("type")
        if isinstance(kind, str) and kind.startswith(("response.", "error")):
            return self._responses_event(kind, doc)
        return self._chat_chunk(doc)

    def _responses_event(self, kind: str, doc: dict[str, Any]) -> bool:
        if kind in _TERMINAL:
            self.response = doc.get("response")
            if kind == "response.failed":
                self.error = (self.response or {}).get("error")
        elif kind == "error":
            self.error = {"message": doc.get("message"), "code": doc.get("code")}
        elif kind == "response.output_text.delta":
            self.text.append(doc.get("delta") or "")
            return True
        return kind.endswith(".delta")

    def _chat_chunk(self, doc: dict[str, Any]) -> bool:
        for key in ("id", "model", "created"):
            if key in doc:
                self.meta.setdefault(key, doc[key])
        if doc.get("usage"):
            self.usage = doc["usage"]
        produced = False
        for choice in doc.get("choices") or []:
            index = choice.get("index", 0)
            slot = self.choices.setdefault(
                index, {"content": [], "reasoning": [], "calls": {}, "finish": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("content"):
                slot["content"].append(delta["content"])
                produced = True
            for field in ("reasoning", "reasoning_content"):
                if delta.get(field):
                    slot["reasoning"].append(delta[field])
                    produced = True
            for call in delta.get("tool_calls") or []:
                entry = slot["calls"].setdefault(call.get("index", 0), {"name": "", "args": []})
                fn = call.get("function") or {}
                entry["id"] = call.get("id") or entry.get("id")
                entry["name"] += fn.get("name") or ""
                entry["args"].append(fn.get("arguments") or "")
                produced = True
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]
        return produced

    def answer(self) -> dict[str, Any]:
        if self.response is not None:
            return self.response
        if not self.choices and self.text:
            message = {"type": "message", "content": [{"text": "".join(self.text)}]}
            return {"object": "response", "output": [message], "error": self.error}
        choices = []
        for index, slot in sorted(self.choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(slot["content"])}
            if slot["reasoning"]:
                message["reasoning"] = "".join(slot["reasoning"])
            if slot["calls"]:
                message["tool_calls"] = [
                    {
                        "id": c.get("id"),
                        "type": "function",
                        "function": {"name": c["name"], "arguments": "".join(c["args"])},
                    }
                    for _, c in sorted(slot["calls"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": slot["finish"]})
        out = {"object": "chat.completion", **self.meta, "choices": choices, "usage": self.usage}
        if self.error is not None:
            out["error"] = self.error
        return out


def iter_sse_data(raw: bytes) -> list[bytes]:
    """The `data:` payloads of a whole SSE body (one per event)."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [ln[5:].lstrip(b" ") for ln in block.split(b"\n") if ln.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def assemble_sse(raw: bytes) -> dict[str, Any]:
    assembler = StreamAssembler()
    for data in iter_sse_data(raw):
        assembler.feed(data)
    return assembler.answer()
