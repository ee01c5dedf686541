"""The shared driver for backends that speak OpenAI's Chat Completions over HTTP.

Each family (backends/vllm.py, sglang.py, tgi.py, openai.py, gemini.py) subclasses it and
holds only its quirks: a declared parameter table (backends/params.py), the dialect for
Responses translation, and small hooks for requests, answers, stream chunks and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.answers import ChunkTransform, TransformedStream, answer_problem
from backends.base import ChatStream, Driver
from backends.http import Upstream, UpstreamHTTP, UpstreamSSE
from backends.params import DROPPED_HEADER, ParamTable, fidelity_view
from backends.upstream_errors import UpstreamError
from gateway.config import RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.translate import DEFAULT_DIALECT, ChatDialect

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
RESPONSES_PATH = "/responses"


def server_root(base_url: str) -> str:
    """The engine's server root: its OpenAI base URL without the trailing /v1."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


class OpenAICompatDriver(Driver):
    #: the family's declared parameter table; None forwards every parameter as sent
    params: ParamTable | None = None
    dialect: ChatDialect = DEFAULT_DIALECT
    #: engine endpoints at the server root this family forwards (POST /tokenize, ...)
    engine_paths: frozenset[str] = frozenset()
    #: whether the engine serves POST /v1/completions
    serves_completions: bool = True

    def __init__(self, route: RouteConfig, http: UpstreamHTTP) -> None:
        super().__init__(route)
        self.http = http
        self.upstream = http.upstream_for(route)
        self.drop_unsupported = getattr(route, "unsupported_params", "error") == "drop"
        self._root: Upstream | None = None
        # read by gateway/fidelity.py: the same table, in its rule shape
        if self.params is not None:
            self.param_table: Mapping[str, Any] = fidelity_view(self.params, self.drop_unsupported)

    # -- hooks a family overrides --------------------------------------------------------------
    def adapt_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The outgoing chat body after the parameter table ran."""
        return body

    def adapt_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        return answer

    def chunk_transform(self) -> ChunkTransform | None:
        """A fresh per-stream chunk transform, or None to pass chunks on untouched."""
        return None

    def refine_error(self, exc: UpstreamError) -> GatewayError:
        return exc

    def adapt_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    # -- the request path ----------------------------------------------------------------------
    def request_body(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        out = self.prepare_chat(body)
        if self.params is not None:
            dropped = self.params.apply(out, self.drop_unsupported, self.route.name)
            if dropped:
                ctx.response_headers[DROPPED_HEADER] = ", ".join(dropped)
        return self.adapt_request(out)

    async def _post(self, upstream: Upstream, path: str, body: dict, ctx: RequestContext) -> dict:
        try:
            return await self.http.post_json(upstream, path, body, ctx)
        except UpstreamError as exc:
            raise self.refine_error(exc) from None

    async def _open(self, path: str, body: dict, ctx: RequestContext) -> ChatStream:
        try:
            stream = await self.http.open_stream(self.upstream, path, body, ctx)
        except UpstreamError as exc:
            raise self.refine_error(exc) from None
        transform = self.chunk_transform()
        if transform is None:
            return stream
        if isinstance(stream, UpstreamSSE) and stream.transform is None:
            stream.transform = transform  # applied in its read loop: one layer less per chunk
            return stream
        return TransformedStream(stream, transform)

    def _checked(self, answer: dict[str, Any], item: str | None, ctx: RequestContext) -> None:
        problem = answer_problem(answer, item)
        if problem is not None:
            kind = "chat completion" if item else "completion"
            raise GatewayError(
                502, f"route '{self.route.name}': upstream {ctx.upstream} answered a {kind} "
                f"that {problem}", code="upstream_invalid",
            )  # fmt: skip

    async def chat(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        answer = await self._post(self.upstream, CHAT_PATH, self.request_body(body, ctx), ctx)
        self._checked(answer, "message", ctx)
        return self.adapt_answer(answer)

    async def open_chat_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        return await self._open(CHAT_PATH, self.request_body(body, ctx), ctx)

    async def responses(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        answer = await self._post(self.upstream, RESPONSES_PATH, self.prepare_chat(body), ctx)
        if not isinstance(answer.get("output"), list):
            raise GatewayError(
                502, f"route '{self.route.name}': upstream {ctx.upstream} answered a response "
                "without an 'output' list", code="upstream_invalid",
            )  # fmt: skip
        return answer

    async def open_responses_stream(self, body: dict[str, Any], ctx: RequestContext) -> ChatStream:
        try:
            return await self.http.open_stream(
                self.upstream, RESPONSES_PATH, self.prepare_chat(body), ctx, named_events=True
            )
        except UpstreamError as exc:
            raise self.refine_error(exc) from None

    # -- engine endpoints: /v1/completions and the server root (/tokenize, /detokenize) -------
    def _completions_body(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.serves_completions:
            raise self.unsupported_endpoint("/v1/completions")
        return self.adapt_completions(self.prepare_chat(body))

    async def completions(self, body: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        answer = await self._post(
            self.upstream, COMPLETIONS_PATH, self._completions_body(body), ctx
        )
        self._checked(answer, None, ctx)
        return answer

    async def open_completions_stream(
        self, body: dict[str, Any], ctx: RequestContext
    ) -> ChatStream:
        try:
            return await self.http.open_stream(
                self.upstream, COMPLETIONS_PATH, self._completions_body(body), ctx
            )
        except UpstreamError as exc:
            raise self.refine_error(exc) from None

    async def engine_call(
        self, path: str, body: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        if path not in self.engine_paths:
            raise self.unsupported_endpoint(path)
        if self._root is None:
            self._root = Upstream.for_route(_root_route(self.route))
        out = dict(body)
        out["model"] = self.route.target_model
        return await self._post(self._root, path, out, ctx)


def _root_route(route: RouteConfig) -> RouteConfig:
    """The same route addressed at its engines' server roots (where /tokenize lives)."""
    urls = list(getattr(route, "base_urls", None) or [route.base_url])
    roots = [server_root(u) for u in urls if u]
    update: dict[str, Any] = {"base_url": roots[0]}
    if hasattr(route, "base_urls"):
        update["base_urls"] = roots
    return route.model_copy(update=update)
