"""`backend: litellm`: the long tail of providers (Anthropic, Bedrock, Mistral, ...) through
LiteLLM's SDK, for routes outside the five families this gateway drives itself.

Optional: `pip install 'gym-gateway[litellm]'`. The module is imported only when a route
uses it (the core never imports litellm: its import costs seconds and hundreds of MB); a
missing extra is a config error at start-up. `upstream_model` is LiteLLM's model string
(`anthropic/claude-sonnet-4-5`, `openai/my-model`, ...), `base_url` its `api_base`, and
`unsupported_params: drop` its `drop_params`. Fidelity is LiteLLM's (see docs/backends.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from backends.base import ChatStream, Driver
from backends.http import UpstreamHTTP
from backends.upstream_errors import mark_context_overflow
from gateway.config import LITELLM_INSTALL_HINT as INSTALL_HINT
from gateway.config import ConfigError, RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError, error_type_for
from gateway.translate import DEFAULT_DIALECT


def import_litellm(route_name: str) -> Any:
    # LiteLLM fetches a price map from the network at import unless told not to.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise ConfigError(
            f"route '{route_name}': backend 'litellm' needs the optional extra: {INSTALL_HINT}"
        ) from None
    return litellm


def _error(exc: Exception, route: str) -> GatewayError:
    """A LiteLLM exception (they carry the provider's status) in OpenAI's shape."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 502
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    error = GatewayError(
        status, f"route '{route}' (litellm): {message}", type=error_type_for(status)
    )
    if type(exc).__name__ == "ContextWindowExceededError":
        error.status = 400
        if "context length" not in error.message.lower():
            error.message += " (the input exceeds the model's context length)"
        error.code = "context_length_exceeded"
    mark_context_overflow(error)
    return error


class LiteLLMDriver(Driver):
    dialect = DEFAULT_DIALECT

    def __init__(self, route: RouteConfig, http: UpstreamHTTP | None = None) -> None:
        super().__init__(route)
        self.litellm = import_litellm(route.name)

    def _kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        route = self.route
        kwargs = self.prepare_chat(body)
        if route.base_url:
            kwargs["api_base"] = route.base_url
        if route.api_key is not None and route.api_key.get_secret_value():
            kwargs["api_key"] = route.api_key.get_secret_value()
        if route.headers:
            kwargs["extra_headers"] = dict(route.headers)
        # no hidden retries: a 429 reaches the client with its Retry-After (SDKs retry)
        kwargs.setdefault("max_retries", 0)
        if route.timeouts.total is not None:
            kwargs["timeout"] = route.timeouts.total
        if getattr(route, "unsupported_params", "error") == "drop":
            kwargs["drop_params"] = True
        return kwargs

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        ctx.upstream = "litellm"
        kwargs = self._kwargs(body)
        kwargs.pop("stream", None)
        try:
            answer = await self.litellm.acompletion(**kwargs)
        except Exception as exc:
            raise _error(exc, self.route.name) from None
        return answer.model_dump(mode="json")

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        ctx.upstream = "litellm"
        kwargs = self._kwargs(body)
        kwargs["stream"] = True
        try:
            stream = await self.litellm.acompletion(**kwargs)
        except Exception as exc:
            raise _error(exc, self.route.name) from None
        return LiteLLMStream(stream, self.route.name)


class LiteLLMStream(ChatStream):
    def __init__(self, stream: Any, route: str) -> None:
        self._stream = stream
        self._route = route
        self.saw_done = False

    async def _events(self) -> AsyncIterator[list[bytes]]:
        from backends.http import StreamBroken

        try:
            async for chunk in self._stream:
                yield [orjson.dumps(chunk.model_dump(mode="json"))]
        except Exception as exc:
            error = _error(exc, self._route)
            raise StreamBroken(error.status, error.message, code="upstream_error") from None
        self.saw_done = True

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._events()

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # best effort: the provider connection is LiteLLM's
                return
