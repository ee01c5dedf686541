"""The shared driver for backends that speak OpenAI's Chat Completions over HTTP.

vLLM, SGLang, TGI, OpenAI and Gemini all use it for now; their quirks live in subclasses.
"""

from __future__ import annotations

from typing import Any

from backends.base import ChatStream, Driver
from backends.http import Upstream, UpstreamHTTP
from gateway.config import RouteConfig
from gateway.context import RequestContext

CHAT_PATH = "/chat/completions"


class OpenAICompatDriver(Driver):
    def __init__(self, route: RouteConfig, http: UpstreamHTTP) -> None:
        super().__init__(route)
        self.http = http
        self.upstream = Upstream.for_route(route)

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return await self.http.post_json(self.upstream, CHAT_PATH, self.prepare_chat(body), ctx)

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        return await self.http.open_stream(self.upstream, CHAT_PATH, self.prepare_chat(body), ctx)
