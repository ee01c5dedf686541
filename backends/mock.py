"""The built-in `mock` backend: deterministic answers with no network, GPU or key.

It echoes the last user message (or a configured reply), one token per whitespace-separated
word, honours `max_tokens`/`max_completion_tokens` with `finish_reason: "length"`, counts
usage for real, and plays a one-step agent: when `tool_choice` forces a tool, or tools are
offered with `tool_choice` auto and the last message is the user's, it calls a tool with
arguments built from the tool's JSON schema; after tool results it answers in text saying
what each tool returned. Images and files in the user's message are described (media type,
size, sha256 prefix). Streaming sends the same answer word by word.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from backends.base import ChatStream, Driver, PreparedChat
from backends.mock_text import WORD, check_answer_cost, choice_count, split_tokens
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError, InvalidRequest
from gateway.fidelity import ParamTable, apply_table, table_from_config
from gateway.translate import ChatDialect

_MAX_ITEMS = 64  # longest array example_from_schema builds
_INT64 = 2**63


# The mock makes each streamed chunk without waiting for anything: every so many it lets
# the event loop run, so other requests are served and a client's disconnect is noticed.
YIELD_EVERY = 16


def _bound(schema: dict[str, Any], key: str, default: int) -> int:
    """An integer bound of a schema (rounded up), or `default` when absent or unusable."""
    value = schema.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    value = math.ceil(value)
    return value if -_INT64 <= value < _INT64 else default


def text_of(content: Any) -> str:
    """The text of a message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def example_from_schema(schema: Any) -> Any:
    """A deterministic value that satisfies simple JSON schemas (enough for tool arguments)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_from_schema(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: example_from_schema(sub) for name, sub in props.items()}
    if kind == "array":
        item = example_from_schema(schema.get("items", {}))
        return [item] * min(max(1, _bound(schema, "minItems", 1)), _MAX_ITEMS)
    if kind == "string":
        return "example"
    if kind == "integer":
        return _bound(schema, "minimum", 1)
    if kind == "number":
        minimum = schema.get("minimum")
        ok = isinstance(minimum, (int, float)) and not isinstance(minimum, bool)
        return float(minimum) if ok and math.isfinite(minimum) else 1.0
    if kind == "boolean":
        return True
    return None


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    tools = [
        t
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        for tool in tools:
            if tool["function"].get("name") == name:
                return tool["function"]
        raise InvalidRequest(
            f"tool_choice names {name!r}, which is not in tools", param="tool_choice"
        )
    if choice == "required":
        if not tools:
            raise InvalidRequest(
                "tool_choice 'required' needs at least one tool", param="tool_choice"
            )
        return tools[0]["function"]
    return None


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]


def _agent_tool(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """With `tool_choice` auto (or unset) and tools offered, the tool to call when the last
    message is the user's: the first tool the message mentions (its name, or a word of four
    letters or more of it: `get_weather` is mentioned by "weather"), else the first tool."""
    tools = _function_tools(body)
    if not tools or body.get("tool_choice") not in (None, "auto"):
        return None
    if not messages or messages[-1].get("role") != "user":
        return None
    said = text_of(messages[-1].get("content")).lower()
    for tool in tools:
        name = str(tool.get("name") or "").lower()
        words = [w for w in re.split(r"[_\-\s.]+", name) if len(w) >= 4]
        if name and (name in said or any(w in said for w in words)):
            return tool
    return tools[0]


def _tool_results(messages: list[dict[str, Any]]) -> str | None:
    """`The tool NAME returned: …` for the tool messages that end the conversation."""
    names = {
        call.get("id"): (call.get("function") or {}).get("name")
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or ()
        if isinstance(call, dict)
    }
    results = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        name = names.get(m.get("tool_call_id")) or "tool"
        results.append(f"The tool {name} returned: {text_of(m.get('content'))}")
    return " ".join(reversed(results)) if results else None


def _describe_data(url: str) -> str:
    """`image/png, 802 bytes, sha256 1a2b3c4d5e6f` for a data: URL; `at URL` otherwise."""
    if not url.startswith("data:"):
        return f"at {url}"
    head, _, payload = url[5:].partition(",")
    media = head.split(";")[0] or "text/plain"
    try:
        raw = base64.b64decode(payload, validate=True) if ";base64" in head else payload.encode()
    except (binascii.Error, ValueError):
        raw = payload.encode()
    return f"{media}, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:12]}"


def describe_media(content: Any) -> str:
    """What the mock saw besides text in a message: images and files, deterministically."""
    if not isinstance(content, list):
        return ""
    seen = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                seen.append(f"an image ({_describe_data(url)})")
        elif part.get("type") == "file" and isinstance(part.get("file"), dict):
            file = part["file"]
            name = file.get("filename") or file.get("file_id") or "unnamed"
            data = file.get("file_data")
            if isinstance(data, str) and not data.startswith("data:"):
                data = "data:application/octet-stream;base64," + data
            detail = f", {_describe_data(data)}" if isinstance(data, str) else ""
            seen.append(f"a file {name}{detail}")
        elif part.get("type") == "input_audio":
            seen.append("an audio clip")
    return f"(I saw {'; '.join(seen)}.)" if seen else ""


#: The mock reads what OpenAI Chat accepts: file parts too (the other open-engine defaults).
MOCK_DIALECT = ChatDialect(file_parts=True)


class MockDriver(Driver):
    dialect = MOCK_DIALECT
    table_on_completions = True  # prepare_chat applies `mock.params` on /v1/completions too

    def __init__(self, route: RouteConfig) -> None:
        super().__init__(route)
        # `mock.params` lets a route play a provider that drops or clamps parameters.
        self.param_table: ParamTable = table_from_config(route.mock.params)
        self._served = 0

    def prepare_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        if type(body) is PreparedChat:
            return body
        self._served += 1
        every = self.route.mock.fail_every
        if every and self._served % every == 0:
            raise GatewayError(
                503, f"mock route '{self.route.name}': simulated failure (fail_every={every})",
                code="mock_failure",
            )  # fmt: skip
        return apply_table(self.param_table, super().prepare_chat(body))

    async def _delay(self) -> None:
        if self.route.mock.latency_ms:
            await asyncio.sleep(self.route.mock.latency_ms / 1000)

    def _plan(self, body: dict[str, Any]) -> dict[str, Any]:
        """Everything the answer holds, shared by the JSON and the streamed form."""
        messages = body.get("messages") or []
        prompt_tokens = sum(len(WORD.findall(text_of(m.get("content")))) for m in messages)
        digest = hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        tool = _forced_tool(body) or _agent_tool(body, messages)
        if tool is not None:
            arguments = orjson.dumps(example_from_schema(tool.get("parameters") or {})).decode()
            call = {
                "id": "call_" + digest[:24],
                "type": "function",
                "function": {"name": tool.get("name"), "arguments": arguments},
            }
            return {
                "digest": digest,
                "pieces": [],
                "tool_call": call,
                "finish": "tool_calls",
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(WORD.findall(arguments)),
            }
        reply = self.route.mock.reply
        if reply is None:
            reply = _tool_results(messages)
        if reply is None:
            user = [m for m in messages if m.get("role") == "user"]
            content = user[-1].get("content") if user else ""
            reply = " ".join(filter(None, (text_of(content), describe_media(content))))
        # a stream sends one choice (index 0); the JSON answer holds n copies
        choices = 1 if body.get("stream") else choice_count(body)
        if not isinstance(limit, int):  # the whole reply: refuse before splitting it
            check_answer_cost(self.route, body, choices, len(reply.encode()), 0)
        pieces = split_tokens(reply)
        finish = "stop"
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
            reply = "".join(pieces)
        check_answer_cost(self.route, body, choices, len(reply.encode()), len(pieces))
        return {
            "digest": digest,
            "pieces": pieces,
            "tool_call": None,
            "finish": finish,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
        }

    @staticmethod
    def _logprobs(pieces: list[str]) -> dict[str, Any]:
        # The mock is deterministic: every token had probability 1.
        return {
            "content": [
                {"token": p, "logprob": 0.0, "bytes": list(p.encode()), "top_logprobs": []}
                for p in pieces
            ]
        }

    def _usage(self, plan: dict[str, Any]) -> dict[str, int]:
        p, c = plan["prompt_tokens"], plan["completion_tokens"]
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        ctx.upstream = "mock"
        body = self.prepare_chat(body)
        plan = self._plan(body)
        await self._delay()
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan["pieces"])}
        if plan["tool_call"] is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [plan["tool_call"]]}
        choices = []
        for index in range(choice_count(body)):
            choice: dict[str, Any] = {
                "index": index,
                "message": message,
                "logprobs": self._logprobs(plan["pieces"]) if body.get("logprobs") else None,
                "finish_reason": plan["finish"],
            }
            choices.append(choice)
        return {
            "id": "chatcmpl-mock-" + plan["digest"][:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": self._usage(plan),
        }

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        ctx.upstream = "mock"
        body = self.prepare_chat(body)
        return MockStream(self, body, self._plan(body))

    async def completions(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        from backends import mock_completions

        ctx.upstream = "mock"
        body = self.prepare_chat(body)
        plan = mock_completions.plan(self.route, body)
        await self._delay()
        return mock_completions.answer(body, plan)

    async def open_completions_stream(
        self, body: dict[str, Any], ctx: RequestContext
    ) -> ChatStream:
        from backends import mock_completions

        ctx.upstream = "mock"
        body = self.prepare_chat(body)
        plan = mock_completions.plan(self.route, body)
        return mock_completions.CompletionStream(self.route, self._delay, body, plan)


class MockStream(ChatStream):
    def __init__(self, driver: MockDriver, body: dict[str, Any], plan: dict[str, Any]) -> None:
        self.driver = driver
        self.body = body
        self.plan = plan

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        return orjson.dumps(
            {
                "id": "chatcmpl-mock-" + self.plan["digest"][:24],
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.body["model"],
                "choices": [choice],
            }
        )

    async def _events(self) -> AsyncIterator[list[bytes]]:
        self.created = int(time.time())
        plan, body = self.plan, self.body
        pause = self.driver.route.mock.stream_delay_ms / 1000
        await self.driver._delay()
        yield [self._chunk({"role": "assistant", "content": ""})]
        call = plan["tool_call"]
        if call is not None:
            head = {
                **call,
                "index": 0,
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield [self._chunk({"tool_calls": [head]})]
            for piece in split_tokens(call["function"]["arguments"]) or [""]:
                yield [
                    self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                ]
        for count, piece in enumerate(plan["pieces"], 1):
            if pause:
                await asyncio.sleep(pause)
            elif count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            extra = {"logprobs": self.driver._logprobs([piece])} if body.get("logprobs") else {}
            yield [self._chunk({"content": piece}, **extra)]
        last = [self._chunk({}, plan["finish"])]
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": "chatcmpl-mock-" + plan["digest"][:24],
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": body["model"],
                "choices": [],
                "usage": self.driver._usage(plan),
            }
            last.append(orjson.dumps(usage))
        yield last

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._events()

    async def aclose(self) -> None:
        return None
