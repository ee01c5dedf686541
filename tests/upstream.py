"""A scriptable OpenAI-compatible upstream on loopback, running in a thread of the test process.

The upstream model name picks the behaviour (see BEHAVIOURS), so one server plays a healthy
engine, every error shape, slow and broken streams. Requests, headers and disconnects are
recorded for assertions.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.wire import FIXTURES as WIRE_FIXTURES
from tests.wire.server import engine_endpoint, serve_fixture

UNKNOWN_FIELDS = {"prompt_token_ids": [1, 2, 3], "kv_transfer_params": None}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion(model: str, text: str = "upstream says hi", finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "reasoning": None},
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": None,
                "token_ids": [7, 8, 9],
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        **UNKNOWN_FIELDS,
    }


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def native_response(model: str) -> dict[str, Any]:
    return {
        "id": "resp_native",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_native",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "native answer", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 3,
            "output_tokens": 2,
            "total_tokens": 5,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
        "x_upstream_extra": {"kept": True},
    }


ERRORS: dict[str, tuple[int, Any, dict[str, str]]] = {
    "err-openai": (
        400,
        {
            "error": {
                "message": "bad temperature",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value",
            }
        },
        {},
    ),
    "err-vllm": (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 2048 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        },
        {},
    ),
    "err-flat": (
        400,
        {
            "object": "error",
            "message": "flat shape",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        {},
    ),
    "err-tgi": (422, {"error": "Input validation error", "error_type": "validation"}, {}),
    "err-gemini": (
        400,
        [{"error": {"code": 400, "message": 'Unknown name "x"', "status": "INVALID_ARGUMENT"}}],
        {},
    ),
    "err-fastapi": (422, {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}, {}),
    "err-429": (
        429,
        {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "code": "rate_limit_exceeded",
            }
        },
        {"Retry-After": "7", "x-ratelimit-remaining-requests": "0"},
    ),
    "err-notfound": (
        404,
        {
            "error": {
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404,
            }
        },
        {},
    ),
}


# Recorded-shape Chat answers, as vLLM and SGLang send them (reasoning under their own field
# names, tool calls with the engine's ids, extra fields). Streams are derived from them.
def _replay(reasoning_field: str, call_id: str) -> dict[str, Any]:
    answer = completion("replay", text="Let me check.", finish="tool_calls")
    # engines return token ids only when asked (return_token_ids)
    answer.pop("prompt_token_ids")
    answer["choices"][0].pop("token_ids")
    message = answer["choices"][0]["message"]
    message.pop("reasoning")
    message[reasoning_field] = "The user wants weather; call the tool."
    message["tool_calls"] = [
        {
            "id": call_id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": call_id + "b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
        },
    ]
    answer["usage"] = {
        "prompt_tokens": 20,
        "completion_tokens": 12,
        "total_tokens": 32,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    return answer


REPLAYS: dict[str, dict[str, Any]] = {
    "vllm-replay": _replay("reasoning", "chatcmpl-tool-9f1c"),
    "sglang-replay": _replay("reasoning_content", "call_sg_01"),
}


def replay_chunks(model: str, answer: dict[str, Any]) -> list[bytes]:
    message = answer["choices"][0]["message"]
    out = [chunk(model, {"role": "assistant", "content": ""})]
    for field_name in ("reasoning", "reasoning_content"):
        if message.get(field_name):
            for piece in message[field_name].split(" "):
                out.append(chunk(model, {field_name: piece + " "}))
            # the engine strips nothing: rejoin exactly
            out[-1] = chunk(model, {field_name: message[field_name].split(" ")[-1]})
    for piece in ("Let", " me", " check."):
        out.append(chunk(model, {"content": piece}))
    for index, call in enumerate(message.get("tool_calls") or []):
        out.append(
            chunk(
                model,
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                },
            )
        )
        args = call["function"]["arguments"]
        for cut in (args[:5], args[5:]):
            out.append(
                chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": cut}}]})
            )
    out.append(chunk(model, {}, answer["choices"][0]["finish_reason"]))
    usage = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": answer["usage"],
    }
    out.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    return out


@dataclass
class UpstreamState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: Any, headers: dict[str, str], path: str = "") -> None:
        with self.lock:
            self.requests.append({"body": body, "headers": headers, "path": path})

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.requests[-1]

    def wait_disconnect(self, name: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.disconnects:
                    return True
            time.sleep(0.02)
        return False

    async def await_disconnect(self, name: str, timeout: float = 5.0) -> bool:
        """Like wait_disconnect, without blocking the caller's event loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.disconnects:
                    return True
            await asyncio.sleep(0.02)
        return False


class ScriptedUpstream:
    def __init__(self) -> None:
        self.state = UpstreamState()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ScriptedUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        self._ready.set()
        self._loop.run_forever()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/health", self.health)
        # engine endpoints and per-family wire fixtures (tests/wire/)
        for path in ("/v1/completions", "/tokenize", "/detokenize"):
            app.router.add_post(path, self.engine)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    # -- handlers --------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def engine(self, request: web.Request) -> web.StreamResponse:
        return await engine_endpoint(request, self.state.record)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        self.state.record(body, {k.lower(): v for k, v in request.headers.items()})
        model = body.get("model", "")
        if model in ERRORS:
            status, doc, headers = ERRORS[model]
            return web.json_response(doc, status=status, headers=headers)
        if model in WIRE_FIXTURES:
            return await serve_fixture(request, model, body)
        if model.startswith("flaky-"):
            # flaky-429 / flaky-503: every other call fails with that status (Retry-After 0.1)
            with self.state.lock:
                self.state.calls[model] = self.state.calls.get(model, 0) + 1
                fail = self.state.calls[model] % 2 == 1
            if fail:
                status = int(model.removeprefix("flaky-"))
                doc = {"error": {"message": f"flaky {status}", "type": "server_error"}}
                return web.json_response(doc, status=status, headers={"Retry-After": "0.1"})
        if model == "err-html":
            return web.Response(
                status=500,
                text="<html><body>Internal Server Error</body></html>",
                content_type="text/html",
            )
        if model == "garbage":
            return web.Response(status=200, text="{not json", content_type="application/json")
        if model == "slow-json":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                self._disconnected(model)
                raise
            return web.json_response(completion(model))
        if model in REPLAYS:
            if body.get("stream"):
                response = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await response.prepare(request)
                for part in replay_chunks(model, REPLAYS[model]):
                    await response.write(part)
                await response.write(b"data: [DONE]\n\n")
                return response
            return web.json_response({**REPLAYS[model], "model": model})
        if body.get("stream"):
            return await self.stream(request, model, body)
        return web.json_response(completion(model))

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """A native Responses endpoint (as OpenAI or vLLM serve it)."""
        body = await request.json()
        self.state.record(body, {k.lower(): v for k, v in request.headers.items()})
        model = body.get("model", "")
        if model in ERRORS:
            status, doc, headers = ERRORS[model]
            return web.json_response(doc, status=status, headers=headers)
        doc = native_response(model)
        if not body.get("stream"):
            return web.json_response(doc)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        item = doc["output"][0]
        part = item["content"][0]
        where = {"item_id": "msg_native", "output_index": 0, "content_index": 0}
        events = [
            {
                "type": "response.created",
                "response": {**doc, "status": "in_progress", "output": []},
            },
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            },
            {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
            {
                "type": "response.output_text.delta",
                **where,
                "delta": "native answer",
                "logprobs": [],
            },
            {"type": "response.output_text.done", **where, "text": "native answer", "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": doc},
        ]
        for seq, event in enumerate(events):
            payload = json.dumps({**event, "sequence_number": seq}, separators=(",", ":"))
            await response.write(f"event: {event['type']}\ndata: {payload}\n\n".encode())
        return response

    def _disconnected(self, name: str) -> None:
        with self.state.lock:
            self.state.disconnects.append(name)

    async def stream(
        self, request: web.Request, model: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        words = ["upstream", " says", " hi", " ü", "🎉"]
        try:
            if model == "slow-stream":
                await response.write(chunk(model, {"role": "assistant", "content": ""}))
                for i in range(200):
                    await asyncio.sleep(0.05)
                    await response.write(chunk(model, {"content": f"w{i} "}))
                await response.write(chunk(model, {}, "stop") + b"data: [DONE]\n\n")
                return response
            if model == "big-stream":  # ~10 MB as fast as the gateway takes it (back-pressure)
                for i in range(600):
                    await response.write(chunk(model, {"content": f"b{i} " + "x" * 16384}))
                await response.write(chunk(model, {}, "stop") + b"data: [DONE]\n\n")
                return response
            await response.write(chunk(model, {"role": "assistant", "content": ""}))
            if model == "stall":
                await asyncio.sleep(10)
            for word in words:
                await response.write(chunk(model, {"content": word}))
            if model == "reset":
                assert request.transport is not None
                request.transport.abort()
                return response
            if model == "truncated":
                await response.write_eof()
                return response
            if model == "midstream-error":
                err = {
                    "error": {"message": "engine died", "type": "InternalServerError", "code": 500}
                }
                await response.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                await response.write_eof()
                return response
            await response.write(chunk(model, {}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "id": "chatcmpl-up",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "created": 1_700_000_000,
                    "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
                await response.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self._disconnected(model)
            raise
        return response
