"""A toy token-level engine on loopback that answers in vLLM's or SGLang's shapes.

It has a real (tiny) tokenizer and chat template, so the gateway's splice can be checked id
for id: text tokenizes one id per character (1000 + code point), while the "model"
generates multi-character tokens (5001 "Hel", 5002 "lo", ...), so a generated turn never
re-tokenizes to the ids that were sampled (NeMo RL's P1 problem, on purpose).

Special ids: 1 `<|im_start|>`, 2 `<|im_end|>` (end of turn), 3 `\\n`. Assistant reasoning is
rendered as `<think>...</think>` only after the last user message (Qwen3's behaviour, which
shifts positions in later renders). The upstream model name picks the behaviour:

  toy              vLLM 0.32 shapes: /tokenize, kv_transfer_params.prompt_token_ids,
                   return_token_ids, "token_id:<n>" log-prob tokens
  toy-ignores      vLLM that ignores the token prompt and renders the messages itself
  toy-no-ids       vLLM that never echoes token ids
  toy-window       a template that keeps only the last 3 messages once a user turn ends the
                   conversation (P3: the rendered history is not monotonic, no splice exists)
  sg-toy           SGLang 0.5.23 shapes (as the real server answered, tests/wire/sglang.py):
                   input_ids, `prompt_token_ids` and `response_token_ids` on the choice,
                   text log-prob tokens, `metadata.weight_version(s)`, no render endpoint
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

from tests.upstream import free_port

IM_START, IM_END, NL = 1, 2, 3
MAX_MODEL_LEN = 4096
CALL_TEXT = '<tool_call>{"name": "ping", "arguments": {}}</tool_call>'
# What the toy model can generate: multi-character tokens.
VOCAB = {5001: "Hel", 5002: "lo", 5003: " there", 5010: CALL_TEXT, 5020: "<think>hm</think>"}
REPLY = [5001, 5002, 5003, IM_END]
TOOL_REPLY = [5010, IM_END]
THINK_REPLY = [5020, 5001, 5002, IM_END]


def encode(text: str) -> list[int]:
    return [1000 + ord(c) for c in text]


def decode(ids: list[int]) -> str:
    out = []
    for i in ids:
        if i in VOCAB:
            out.append(VOCAB[i])
        elif i >= 1000:
            out.append(chr(i - 1000))
        elif i == NL:
            out.append("\n")
    return "".join(out)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def render(
    messages: list[dict[str, Any]],
    tools: list[Any] | None = None,
    generation_prompt: bool = True,
    window: int | None = None,
) -> list[int]:
    """ChatML with tools in a system turn and Qwen3-style reasoning stripping."""
    ids: list[int] = []
    if tools:
        names = ",".join(t.get("function", t).get("name", "?") for t in tools)
        ids += [IM_START, *encode("system\ntools: " + names), IM_END, NL]
    if window and messages and messages[-1].get("role") == "user":
        messages = messages[-window:]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for index, message in enumerate(messages):
        role = message.get("role")
        text = _text(message.get("content"))
        if role == "assistant":
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if reasoning and index > last_user:
                text = f"<think>{reasoning}</think>" + text
            for call in message.get("tool_calls") or ():
                fn = call.get("function", {})
                args = fn.get("arguments")
                args = args if isinstance(args, str) else json.dumps(args)
                text += f'\n<tool_call>\n{{"name": "{fn.get("name")}", "arguments": {args}}}\n</tool_call>'
        ids += [IM_START, *encode(f"{role}\n{text}"), IM_END, NL]
    if generation_prompt:
        ids += [IM_START, *encode("assistant\n")]
    return ids


def parse_output(generated: list[int]) -> dict[str, Any]:
    """The engine's output parsing: reasoning and tool calls out of the generated text."""
    text = decode([i for i in generated if i != IM_END])
    message: dict[str, Any] = {"role": "assistant", "content": text, "reasoning": None}
    if text.startswith("<think>"):
        reasoning, _, text = text[len("<think>") :].partition("</think>")
        message.update(content=text, reasoning=reasoning)
    if CALL_TEXT in text:
        message["content"] = ""
        message["tool_calls"] = [
            {
                "id": "call_toy_1",
                "type": "function",
                "function": {"name": "ping", "arguments": "{}"},
            }
        ]
    return message


class ToyEngine:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ToyEngine:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("toy engine did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
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
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def calls(self, path: str, model: str | None = None) -> list[dict[str, Any]]:
        return [
            b for p, b in self.requests if p == path and (model is None or b.get("model") == model)
        ]

    # -- endpoints ---------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "sg-toy", "object": "model", "max_model_len": MAX_MODEL_LEN}],
            }
        )

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/tokenize", body))
        window = 3 if body.get("model") == "toy-window" else None
        ids = render(
            body["messages"], body.get("tools"), body.get("add_generation_prompt", True), window
        )
        return web.json_response(
            {"count": len(ids), "max_model_len": MAX_MODEL_LEN, "tokens": ids, "token_strs": None}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/v1/chat/completions", body))
        model = body.get("model", "")
        if model.startswith("sg-"):
            return await self._sglang(request, body)
        return await self._vllm(request, body)

    def _generate(self, body: dict[str, Any], prompt: list[int]) -> tuple[list[int], str]:
        choice = body.get("tool_choice")
        forced = isinstance(choice, dict) or choice == "required"
        if forced:
            out = TOOL_REPLY
        elif (body.get("chat_template_kwargs") or {}).get("enable_thinking"):
            out = THINK_REPLY
        else:
            out = REPLY
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        if len(out) > limit:
            return out[:limit], "length"
        return out, "tool_calls" if forced else "stop"

    def _too_long(self, prompt: list[int], body: dict[str, Any]) -> web.Response | None:
        wanted = body.get("max_tokens") or 0
        if len(prompt) + wanted > MAX_MODEL_LEN or len(prompt) >= MAX_MODEL_LEN:
            message = (
                f"This model's maximum context length is {MAX_MODEL_LEN} tokens. However, you "
                f"requested {len(prompt) + wanted} tokens ({len(prompt)} in the messages, "
                f"{wanted} in the completion)."
            )
            error = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
            return web.json_response({"error": error}, status=400)
        return None

    def _logprobs(self, generated: list[int], as_ids: bool) -> dict[str, Any]:
        entries = []
        for n, token in enumerate(generated):
            text = VOCAB.get(token, "<|im_end|>" if token == IM_END else decode([token]))
            entries.append(
                {
                    "token": f"token_id:{token}" if as_ids else text,
                    "logprob": -0.25 * (n + 1),
                    "bytes": list(text.encode()),
                    "top_logprobs": [],
                }
            )
        return {"content": entries}

    async def _vllm(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        model = body["model"]
        token_prompt = (body.get("kv_transfer_params") or {}).get("prompt_token_ids")
        if token_prompt is not None and model != "toy-ignores":
            prompt = token_prompt
        else:
            prompt = render(body["messages"], body.get("tools"))
        error = self._too_long(prompt, body)
        if error is not None:
            return error
        generated, finish = self._generate(body, prompt)
        with_ids = bool(body.get("return_token_ids")) and model != "toy-no-ids"
        if body.get("stream"):
            return await self._stream(request, body, prompt, generated, finish, with_ids)
        choice = {
            "index": 0,
            "message": parse_output(generated),
            "logprobs": self._logprobs(generated, bool(body.get("return_tokens_as_token_ids")))
            if body.get("logprobs") and model != "toy-no-ids"
            else None,
            "finish_reason": finish,
            "stop_reason": None,
            "token_ids": generated if with_ids else None,
        }
        return web.json_response(
            {
                "id": "chatcmpl-toy",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt),
                    "completion_tokens": len(generated),
                    "total_tokens": len(prompt) + len(generated),
                },
                "prompt_logprobs": None,
                "prompt_token_ids": prompt if with_ids else None,
                "kv_transfer_params": None,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        prompt: list[int],
        generated: list[int],
        finish: str,
        with_ids: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": "chatcmpl-toy",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }
        first = {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
        if with_ids:
            first["prompt_token_ids"] = prompt
        await response.write(b"data: " + json.dumps(first).encode() + b"\n\n")
        for n, token in enumerate(generated):
            last = n == len(generated) - 1
            delta = {"content": "" if token == IM_END else decode([token])}
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "finish_reason": finish if last else None,
            }
            if with_ids:
                choice["token_ids"] = [token]
            await response.write(
                b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"
            )
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _sglang(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if "return_tokens_as_token_ids" in body:  # the sglang driver refuses it; never sent
            return web.json_response(
                {
                    "object": "error",
                    "message": "unexpected return_tokens_as_token_ids",
                    "type": "BadRequestError",
                    "code": 400,
                },
                status=400,
            )
        if body.get("stream") and (
            body.get("return_token_ids") or body.get("return_prompt_token_ids")
        ):
            message = (  # SGLang 0.5.23's words
                "return_token_ids is not supported with streaming on /v1/chat/completions. "
                "Please set stream=false when using return_token_ids=true."
            )
            return web.json_response(
                {"object": "error", "message": message, "type": "BadRequest", "param": None,
                 "code": 400},
                status=400,
            )  # fmt: skip
        messages = list(body["messages"])
        if messages and messages[-1].get("role") == "assistant":  # SGLang's trailing-assistant rule
            messages[-1] = {"role": "user", "content": _text(messages[-1].get("content"))}
        prompt = body.get("input_ids") or render(messages, body.get("tools"))
        generated, finish = self._generate(body, prompt)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {**parse_output(generated), "reasoning_content": None},
            "logprobs": self._logprobs(generated, False) if body.get("logprobs") else None,
            "finish_reason": finish,
            "matched_stop": IM_END if generated[-1] == IM_END else None,
        }
        if body.get("return_prompt_token_ids") or body.get("return_token_ids"):
            choice["prompt_token_ids"] = prompt
        if body.get("return_token_ids"):  # SGLang's name on chat choices (0.5.23)
            choice["response_token_ids"] = generated
        choice["message"].pop("reasoning", None)
        n = len(generated)
        return web.json_response(
            {
                "id": "6d35e99ea5df456ea4a72c4747dcc428",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt),
                    "total_tokens": len(prompt) + n,
                    "completion_tokens": n,
                    "prompt_tokens_details": None,
                    "reasoning_tokens": 0,
                    "completion_tokens_details": None,
                },
                "metadata": {
                    "weight_version": "default",
                    "weight_versions": [{"version": "default", "start": 0, "end": n}],
                },
            }
        )
