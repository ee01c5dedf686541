"""The driver interface every backend family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.translate import DEFAULT_DIALECT, ChatDialect


class ChatStream(ABC):
    """An open upstream stream of Chat Completions chunks.

    Iterating yields batches of raw JSON payloads (the `data:` of each SSE event, without the
    final `[DONE]`). A failure after the stream opened raises `StreamBroken`. `aclose()` must
    be safe to call at any time and releases the upstream request (cancelling it if unfinished).
    """

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class PreparedChat(dict[str, Any]):
    """A chat body `prepare_chat` already made (the token path prepares it before it clamps
    `max_tokens`): a driver's own `prepare_chat` passes it on as is, so the route's defaults
    and overrides are applied once and cannot undo the clamp."""


class Driver(ABC):
    """One route's way to reach its backend. Subclasses hold only their family's quirks."""

    #: how Responses requests are translated to this backend's Chat Completions
    dialect: ChatDialect = DEFAULT_DIALECT

    def __init__(self, route: RouteConfig) -> None:
        self.route = route

    @property
    def native_responses(self) -> bool:
        return bool(self.route.native_responses)

    def prepare_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Route defaults (when the client left them out), overrides (always), upstream model."""
        if type(body) is PreparedChat:
            return body
        route = self.route
        out = dict(route.defaults) if route.defaults else {}
        out.update(body)
        if route.overrides:
            out.update(route.overrides)
        out["model"] = route.target_model
        return out

    @abstractmethod
    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """A non-streaming Chat Completion; raises GatewayError on failure."""

    @abstractmethod
    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        """Open a streaming Chat Completion; errors before the first chunk raise GatewayError."""

    async def responses(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """A non-streaming native Responses call (only where `native_responses` is on)."""
        raise GatewayError(500, f"route '{self.route.name}' has no native Responses endpoint")

    async def open_responses_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        """A streaming native Responses call; the stream yields SSEEvent batches."""
        raise GatewayError(500, f"route '{self.route.name}' has no native Responses endpoint")

    # Engine endpoints (gateway/engine_endpoints.py); families that serve them override these.
    def unsupported_endpoint(self, path: str) -> GatewayError:
        return GatewayError(
            400,
            f"Route '{self.route.name}' (backend {self.route.backend}) does not serve {path}; "
            "see docs/backends.md for the endpoints each backend forwards.",
            param="model",
            code="unsupported_endpoint",
        )

    async def completions(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """A non-streaming legacy Completions call (`prompt` in, `text` out)."""
        raise self.unsupported_endpoint("/v1/completions")

    async def open_completions_stream(
        self, body: dict[str, Any], ctx: RequestContext
    ) -> ChatStream:
        raise self.unsupported_endpoint("/v1/completions")

    async def engine_call(
        self, path: str, body: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        """POST to the engine's server root (`/tokenize`, `/detokenize`)."""
        raise self.unsupported_endpoint(path)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the driver holds (the shared HTTP client is closed by its owner)."""
