"""How each engine renders a conversation to token ids and takes a prompt as token ids.

vLLM 0.32: `POST {root}/tokenize` with `messages` renders the chat template exactly as
`/v1/chat/completions` does (same template kwargs, tools and generation prompt), and
`kv_transfer_params: {"prompt_token_ids": [...]}` on `/v1/chat/completions` makes the engine
use exactly those ids as the prompt while keeping its tool and reasoning parsing of the
output. `return_token_ids: true` echoes top-level `prompt_token_ids` and `choices[].token_ids`.

SGLang: `/v1/chat/completions` takes `input_ids` (the prompt as ids; the messages still give
stop tokens and the tool-call constraint) and, non-streaming, `return_token_ids` /
`return_prompt_token_ids` (ids on the choice). It has no render-only endpoint, so rendering
is a one-token chat call with `return_prompt_token_ids` (its prefill is then in the radix
cache for the real call), and since its chat endpoint always adds the generation prompt the
history's end-of-turn count is taken from the conversation before the last assistant turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from backends.http import Upstream, client_errors
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.tokens import (
    PROBE_TEXTS,
    TokenRequest,
    count_eos,
    eos_from_renders,
    eos_set,
    ids_as_token_strings,
    probe_conversation,
)

log = logging.getLogger("gateway.tokens")

# Request fields that change what the chat template renders.
_VLLM_RENDER_FIELDS = (
    "tools",
    "chat_template",
    "chat_template_kwargs",
    "mm_processor_kwargs",
    "add_special_tokens",
)
_SGLANG_RENDER_FIELDS = ("tools", "tool_choice", "chat_template_kwargs", "reasoning_effort")


class TokenEngine:
    """Rendering and token input for one route; caches what it learns about the model."""

    render_fields: tuple[str, ...] = ()

    def __init__(self, driver: Any) -> None:
        # the family driver (backends/vllm.py, sglang.py): its HTTP client, pool, root calls
        self.driver = driver
        self.route: RouteConfig = driver.route
        self.max_len: int | None = self.route.max_model_len
        configured = self.route.eos_token_id
        self._eos: frozenset[int] | None = eos_set(configured) if configured is not None else None
        self._eos_lock = asyncio.Lock()

    # -- engine specifics ---------------------------------------------------------------
    async def render(
        self,
        messages: list[Any],
        body: dict[str, Any],
        ctx: RequestContext,
        generation_prompt: bool = True,
    ) -> list[int]:
        raise NotImplementedError

    async def history_turns(
        self, tr: TokenRequest, body: dict[str, Any], ctx: RequestContext
    ) -> int:
        """End-of-turn tokens in the rendering of the history through the last assistant turn."""
        raise NotImplementedError

    def send_prompt(self, body: dict[str, Any], ids: list[int]) -> None:
        raise NotImplementedError

    def ask_ids(self, body: dict[str, Any], capture: bool, stream: bool) -> None:
        """Ask the engine for the ids (and log-probs) the gateway checks and returns."""
        if capture:
            body["logprobs"] = True
            if body.get("top_logprobs") is None:
                body["top_logprobs"] = 0
        if not stream:
            body["return_token_ids"] = True

    def finish(self, answer: dict[str, Any], client: dict[str, Any], generation: list[int]) -> None:
        """Engine-specific touches on an answer that carries the bundle."""

    def clean(self, body: dict[str, Any]) -> None:
        """Drop request fields the engine would refuse or ignore on the token path."""

    async def model_len(self, ctx: RequestContext) -> int | None:
        return self.max_len

    # -- shared -------------------------------------------------------------------------
    def render_body(self, messages: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.route.target_model, "messages": messages}
        for key in self.render_fields:
            if body.get(key) is not None:
                out[key] = body[key]
        return out

    async def eos_ids(self, body: dict[str, Any], ctx: RequestContext) -> frozenset[int]:
        """The end-of-turn id: the route's `eos_token_id`, else found once from two renders."""
        if self._eos is not None:
            return self._eos
        async with self._eos_lock:
            if self._eos is None:
                probe = {k: body[k] for k in ("chat_template", "chat_template_kwargs") if k in body}
                first, second = await asyncio.gather(
                    *(self.render(probe_conversation(t), probe, ctx) for t in PROBE_TEXTS)
                )
                found = eos_from_renders(first, second)
                if found is None:
                    raise GatewayError(
                        500,
                        f"route '{self.route.name}': could not find the chat template's "
                        "end-of-turn token; set eos_token_id on the route",
                        code="eos_token_unknown",
                    )
                log.info(
                    "route %s: end-of-turn token id %d (from the chat template)",
                    self.route.name,
                    found,
                )
                self._eos = frozenset((found,))
        return self._eos


class VLLMTokenEngine(TokenEngine):
    render_fields = _VLLM_RENDER_FIELDS
    _root: Upstream | None = None

    async def render(
        self,
        messages: list[Any],
        body: dict[str, Any],
        ctx: RequestContext,
        generation_prompt: bool = True,
    ) -> list[int]:
        req = self.render_body(messages, body)
        if generation_prompt and body.get("continue_final_message"):
            req["continue_final_message"] = True
            req["add_generation_prompt"] = False
        else:
            req["add_generation_prompt"] = generation_prompt and (
                body.get("add_generation_prompt") is not False
            )
        answer = await self._tokenize(req, ctx)
        tokens = answer.get("tokens")
        if not isinstance(tokens, list):
            raise GatewayError(
                502,
                f"route '{self.route.name}': /tokenize answered without tokens",
                code="upstream_invalid",
            )
        if self.route.max_model_len is None and isinstance(answer.get("max_model_len"), int):
            self.max_len = answer["max_model_len"]
        return tokens

    async def history_turns(
        self, tr: TokenRequest, body: dict[str, Any], ctx: RequestContext
    ) -> int:
        ids = await self.render(tr.messages[: tr.prefix_end], body, ctx, generation_prompt=False)
        return count_eos(ids, await self.eos_ids(body, ctx))

    async def _tokenize(self, req: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """POST /tokenize at the server root of the route's replicas."""
        driver = self.driver
        if "/tokenize" in getattr(driver, "engine_paths", ()):
            return await driver.engine_call("/tokenize", req, ctx)
        if self._root is None:
            urls = self.route.base_urls or [self.route.base_url]
            roots = [u.removesuffix("/v1") for u in urls if u]
            root_route = self.route.model_copy(update={"base_url": roots[0], "base_urls": roots})
            self._root = Upstream.for_route(root_route)
        return await driver.http.post_json(self._root, "/tokenize", req, ctx)

    def send_prompt(self, body: dict[str, Any], ids: list[int]) -> None:
        params = body.get("kv_transfer_params")
        body["kv_transfer_params"] = {
            **(params if isinstance(params, dict) else {}),
            "prompt_token_ids": ids,
        }


class SGLangTokenEngine(TokenEngine):
    render_fields = _SGLANG_RENDER_FIELDS

    async def render(
        self,
        messages: list[Any],
        body: dict[str, Any],
        ctx: RequestContext,
        generation_prompt: bool = True,
    ) -> list[int]:
        # SGLang's chat endpoint always adds the generation prompt (see history_turns)
        req = self.render_body(messages, body)
        req.update(max_tokens=1, temperature=0.0, return_prompt_token_ids=True, stream=False)
        driver = self.driver
        answer = await driver.http.post_json(driver.upstream, "/chat/completions", req, ctx)
        choices = answer.get("choices") or [{}]
        tokens = choices[0].get("prompt_token_ids") if isinstance(choices[0], dict) else None
        if not isinstance(tokens, list):
            raise GatewayError(
                502,
                f"route '{self.route.name}': SGLang answered without prompt_token_ids "
                "(return_prompt_token_ids needs a recent SGLang)",
                code="upstream_invalid",
            )
        return tokens

    async def history_turns(
        self, tr: TokenRequest, body: dict[str, Any], ctx: RequestContext
    ) -> int:
        eos = await self.eos_ids(body, ctx)
        last = tr.prefix_end - 1
        if tr.messages[last].get("role") != "assistant":
            # no assistant turn in the history: the whole conversation is the prefix
            return count_eos(await self.render(tr.messages, body, ctx), eos)
        if last == 0:
            return 1
        # the chat endpoint always adds the generation prompt (it holds no end of turn);
        # the last assistant turn adds exactly one
        return count_eos(await self.render(tr.messages[:last], body, ctx), eos) + 1

    def send_prompt(self, body: dict[str, Any], ids: list[int]) -> None:
        body["input_ids"] = ids

    def clean(self, body: dict[str, Any]) -> None:
        # SGLang has no "token_id:<n>" log-prob tokens; the gateway writes them (finish).
        body.pop("return_tokens_as_token_ids", None)

    def ask_ids(self, body: dict[str, Any], capture: bool, stream: bool) -> None:
        super().ask_ids(body, capture, stream)
        if not stream:
            body["return_prompt_token_ids"] = True

    def finish(self, answer: dict[str, Any], client: dict[str, Any], generation: list[int]) -> None:
        # SGLang's log-prob tokens are text; the contract asks for "token_id:<int>".
        if client.get("return_tokens_as_token_ids"):
            ids_as_token_strings(answer, generation)
        if client.get("return_token_ids") and answer.get("prompt_token_ids") is None:
            answer["prompt_token_ids"] = answer["choices"][0].get("prompt_token_ids")

    _asked_len = False

    async def model_len(self, ctx: RequestContext) -> int | None:
        if self.max_len is None and not self._asked_len:
            self._asked_len = True  # once: an engine that does not say will not say later
            self.max_len = await self._models_max_len()
        return self.max_len

    async def _models_max_len(self) -> int | None:
        """`max_model_len` of GET /v1/models (SGLang's model card has it)."""
        upstream = self.driver.upstream
        url = upstream.base_url + "/models"
        try:
            async with self.driver.http.session.get(
                url, headers=upstream.headers, timeout=upstream.timeout
            ) as resp:
                doc = orjson.loads(await resp.read()) if resp.status == 200 else None
        except (*client_errors(), orjson.JSONDecodeError):
            return None
        data = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(data, list):
            for card in data:
                if isinstance(card, dict) and isinstance(card.get("max_model_len"), int):
                    return card["max_model_len"]
        return None


ENGINES: dict[str, type[TokenEngine]] = {"vllm": VLLMTokenEngine, "sglang": SGLangTokenEngine}
