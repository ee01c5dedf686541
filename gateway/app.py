"""Application wiring: config -> router -> routes, error handlers, lifespan."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backends.http import UpstreamHTTP
from gateway import __version__, endpoints, responses_api
from gateway.auth import Authenticator
from gateway.config import GatewayConfig, RouteConfig, load_config
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.observe import FinishHook, ObserveMiddleware
from gateway.readiness import Readiness
from gateway.request_io import error_response, json_response

log = logging.getLogger("gateway")


class Gateway:
    """Everything a request needs, built once from a validated config."""

    def __init__(self, config: GatewayConfig) -> None:
        from gateway.routing import Router

        self.config = config
        self.metrics = GatewayMetrics()
        self.auth = Authenticator(config.server, {r.name for r in config.models})
        self.http = UpstreamHTTP(config.server.upstream_max_connections)
        self.router = Router(config, self.http, self.metrics)
        self.readiness = Readiness()
        self.request_log = config.server.request_log
        # called with every finished RequestContext (recording, ...)
        self.finish_hooks: list[FinishHook] = []
        self.started = time.time()

    def model_card(self, route: RouteConfig) -> dict[str, Any]:
        # Never the base URL or key: /v1/models is public to every client.
        return {
            "id": route.name,
            "object": "model",
            "created": int(self.started),
            "owned_by": f"gym-gateway:{route.backend}",
        }

    async def aclose(self) -> None:
        await self.router.aclose()
        await self.http.aclose()


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    ctx = request.scope.get("state", {}).get("ctx")
    if ctx is not None and exc.code is not None:
        ctx.error_code = str(exc.code)
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No endpoint {request.method} {request.url.path}; see the README for the API"
        return error_response(GatewayError(404, message, code="unknown_endpoint"))
    if exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        return error_response(GatewayError(405, message, code="method_not_allowed"))
    return error_response(GatewayError(exc.status_code, str(exc.detail)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(p) for p in first["loc"] if p != "body") or None
    return error_response(GatewayError(400, f"{param}: {first['msg']}", param=param))


async def _metrics(request: Request) -> Response:
    text = request.app.state.gateway.metrics.registry.render()
    return Response(text, media_type="text/plain; version=0.0.4")


async def _ready(request: Request) -> Response:
    gateway = request.app.state.gateway
    ready, routes = await gateway.readiness.report(gateway.config)
    return json_response({"ready": ready, "routes": routes}, 200 if ready else 503)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        GatewayError(500, "The gateway hit an internal error; see its log", code="internal")
    )


def create_app(config: GatewayConfig | None = None) -> FastAPI:
    config = config or load_config()
    gateway = Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    app = FastAPI(
        title="gym-gateway",
        version=__version__,
        lifespan=lifespan,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            RequestValidationError: _validation_error,
            Exception: _unexpected_error,
        },
    )
    app.state.gateway = gateway
    # Plain Starlette routes: FastAPI's per-request dependency machinery cost a third of
    # the throughput on the pass-through path.
    app.router.routes.extend(
        [
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            Route("/v1/responses", responses_api.create_response, methods=["POST"]),
            Route("/v1/models", endpoints.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", endpoints.get_model, methods=["GET"]),
            Route("/health", endpoints.health, methods=["GET"]),
            Route("/ready", _ready, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
        ]
    )
    # Every request gets an id, a header limit, authentication and one finish.
    app.add_middleware(ObserveMiddleware, gateway=gateway)
    if config.server.cors_origins:  # outermost: preflights and 401s carry CORS headers
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.server.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving (config from the environment)."""
    from gateway.observe import configure_logging

    config = load_config()
    configure_logging(config.server)
    return create_app(config)
