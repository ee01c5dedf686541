"""The shared driver for backends that speak OpenAI's Chat Completions over HTTP.

vLLM, SGLang, TGI, OpenAI and Gemini all use it for now; their quirks live in subclasses.
"""

from __future__ import annotations

from typing import Any

from backends.base import ChatStream, Driver
from backends.http import Upstream, UpstreamHTTP
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.translate import DEFAULT_DIALECT, OPENAI_DIALECT, ChatDialect

CHAT_PATH = "/chat/completions"
RESPONSES_PATH = "/responses"

# How a Responses request becomes Chat for each family (reasoning field names differ).
DIALECTS = {
    "openai": OPENAI_DIALECT,
    "sglang": ChatDialect(reasoning_field="reasoning_content"),
    "tgi": ChatDialect(reasoning_field=None),
    "gemini": ChatDialect(reasoning_field=None, max_tokens_field="max_completion_tokens"),
}


class OpenAICompatDriver(Driver):
    def __init__(self, route: RouteConfig, http: UpstreamHTTP) -> None:
        super().__init__(route)
        self.http = http
        self.upstream = Upstream.for_route(route)
        self.dialect = DIALECTS.get(route.backend, DEFAULT_DIALECT)

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return await self.http.post_json(self.upstream, CHAT_PATH, self.prepare_chat(body), ctx)

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        return await self.http.open_stream(self.upstream, CHAT_PATH, self.prepare_chat(body), ctx)

    async def responses(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return await self.http.post_json(
            self.upstream, RESPONSES_PATH, self.prepare_chat(body), ctx
        )

    async def open_responses_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        return await self.http.open_stream(
            self.upstream, RESPONSES_PATH, self.prepare_chat(body), ctx, named_events=True
        )
