"""Application wiring: config -> router -> routes, error handlers, lifespan."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from backends.http import AnswerLimits, UpstreamHTTP
from gateway import (
    __version__,
    admin,
    collector,
    connections,
    docs_ui,
    endpoints,
    engine_endpoints,
    responses_api,
    responses_crud,
    responses_ws,
    sessions,
)
from gateway.auth import Authenticator
from gateway.config import CONFIG_ENV, GatewayConfig, RouteConfig, load_config
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.observe import FinishHook, ObserveMiddleware
from gateway.openapi import extended_openapi
from gateway.rate_limits import RateLimiter
from gateway.readiness import Readiness
from gateway.redact import remember_config
from gateway.reload import InFlightMiddleware, Reloader, admin_reload, close_parts
from gateway.request_io import error_response, json_response
from gateway.state import GatewayState

log = logging.getLogger("gateway")


class Gateway(GatewayState):
    """Everything a request needs, built once from a validated config."""

    def __init__(self, config: GatewayConfig) -> None:
        self.metrics = GatewayMetrics()
        server = config.server
        self.http = UpstreamHTTP(
            server.upstream_max_connections,
            limits=AnswerLimits(server.upstream_max_answer_bytes, server.upstream_max_event_bytes),
        )
        self.control = self.http.control  # refit control plane (gateway/admin.py)
        self.readiness = Readiness()
        # called with every finished RequestContext (recording, ...)
        self.finish_hooks: list[FinishHook] = []
        self.started = time.time()
        self.reloader: Reloader | None = None  # set by create_app
        self.fleet: Any = None  # shared refit state across processes (`cluster:`)
        self.install(self.derive(config))
        # stored responses and the compaction key (docs/responses.md); a reload keeps them
        from gateway.compaction import Sealer
        from gateway.responses_store import open_store

        self.responses_store = open_store(config)
        secret = config.responses.compaction_key
        self.sealer = Sealer(
            secret=secret.get_secret_value() if secret else None,
            state_dir=config.server.state_path,
        )
        if config.cluster is not None:
            try:
                from gateway.fleet import Fleet  # imports the Redis client: only when configured
            except ImportError as exc:
                raise RuntimeError(
                    f"cluster: needs the Redis client ({exc}); pip install 'gym-gateway[cluster]'"
                ) from None

            self.fleet = Fleet(config.cluster, self.control)
            self.fleet.pools = lambda: [u.pool for _, u in admin.upstreams(self)]
            self.fleet.rate_limits = lambda: self.rate_limits
            self.fleet.registry = self.metrics.registry
            self.fleet.attach()
        # managed local engines (route `launch`): started in the lifespan; a reload keeps them
        self.engines: Any = None
        if any(r.launch is not None for r in config.models):
            from backends.launcher import EngineSupervisor

            self.engines = EngineSupervisor(config.models)

    def derive(self, config: GatewayConfig) -> dict[str, Any]:
        """Everything built from the config; a reload (gateway/reload.py) builds a new set and
        swaps it in whole, so anything config-derived belongs here. Raises ConfigError."""
        from gateway.recording import Recording
        from gateway.routing import Router

        remember_config(config)  # its keys are cut out of every error and log line
        parts: dict[str, Any] = {
            "config": config,
            "auth": Authenticator(config.server, {r.name for r in config.models}),
            "router": Router(config, self.http, self.metrics),
            "request_log": config.server.request_log,
        }
        limits = parts["auth"].key_limits
        parts["rate_limits"] = RateLimiter(limits) if limits else None
        parts["recording"] = Recording.from_config(config)  # last: it opens files
        return parts

    def install(self, parts: dict[str, Any]) -> dict[str, Any]:
        """Swap the config-derived parts in (no await: atomic for the event loop); the old."""
        old = {name: getattr(self, name, None) for name in parts}
        for name, value in parts.items():
            setattr(self, name, value)
        if self.fleet is not None:
            self.fleet.attach()  # the new pools share placements too
        if self.recording is not None:
            from gateway.recording import on_finish

            if on_finish not in self.finish_hooks:
                self.finish_hooks.append(on_finish)
        return old

    def model_card(self, route: RouteConfig) -> dict[str, Any]:
        # Never the base URL or key: /v1/models is public to every client.
        return {
            "id": route.name,
            "object": "model",
            "created": int(self.started),
            "owned_by": f"gym-gateway:{route.backend}",
        }

    async def aclose(self) -> None:
        if self.reloader is not None:
            await self.reloader.aclose()
        await close_parts({"router": self.router, "recording": self.recording})
        await self.http.aclose()
        if self.responses_store is not None:
            await self.responses_store.aclose()
        if self.engines is not None:
            await self.engines.stop()


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
        allow = dict(exc.headers or {})  # the Allow header RFC 9110 requires
        return error_response(GatewayError(405, message, code="method_not_allowed", headers=allow))
    return error_response(GatewayError(exc.status_code, str(exc.detail)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(p) for p in first["loc"] if p != "body") or None
    return error_response(GatewayError(400, f"{param}: {first['msg']}", param=param))


async def _metrics(request: Request) -> Response:
    gateway = request.app.state.gateway
    if gateway.fleet is None:
        text = gateway.metrics.registry.render()
    elif request.query_params.get("scope") == "local":  # this member only (per-pod scrapes)
        text = gateway.metrics.registry.render_merged(gateway.fleet.member_id, [])
    else:  # every live member's series, each with its worker label
        text = await gateway.fleet.metrics_text()
    return Response(text, media_type="text/plain; version=0.0.4")


async def _ready(request: Request) -> Response:
    gateway = request.app.state.gateway
    ready, routes = await gateway.readiness.report(gateway.config)
    return json_response({"ready": ready, "routes": routes}, 200 if ready else 503)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # the client left (or was timed out) while sending its body: nobody reads an answer
    return Response(status_code=499)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        GatewayError(500, "The gateway hit an internal error; see its log", code="internal")
    )


class GatewayApp(FastAPI):
    """FastAPI for everything, except the hot generation POSTs: those go straight through
    Observe and InFlight to their handler, skipping FastAPI's and Starlette's middleware and
    the router's regex walk (-18 % CPU per Chat request at 32 concurrent, docs/performance.md).
    Both ways give the same answers; with CORS configured every request takes FastAPI's."""

    hot_paths: dict[str, ASGIApp]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            hot = self.hot_paths.get(scope["path"])
            if hot is not None:
                scope["app"] = self  # what Starlette's Request.app reads
                await hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def hot_endpoint(handler: Any) -> ASGIApp:
    """An ASGI app for one request handler, mapping errors as the app's handlers do."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = await _gateway_error(request, exc)
        except ClientDisconnect as exc:
            response = await _client_gone(request, exc)
        except Exception as exc:
            response = await _unexpected_error(request, exc)
        await response(scope, receive, send)

    return app


HOT_HANDLERS = {
    "/v1/chat/completions": endpoints.chat_completions,
    "/v1/responses": responses_api.create_response,
}


def create_app(
    config: GatewayConfig | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    reload_signal: bool = False,
) -> FastAPI:
    """`config_path` and `overrides` (CLI flags) are what a reload loads again; with
    `reload_signal`, SIGHUP reloads (single-process serving)."""
    config = config or load_config(config_path, **(overrides or {}))
    connections.configure(config.server)  # this process's client-connection limits
    gateway = Gateway(config)
    gateway.reloader = reloader = Reloader(gateway, config_path, overrides)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if gateway.engines is not None:
            await gateway.engines.start()  # waits for their health; failure stops start-up
        if gateway.fleet is not None:
            await gateway.fleet.start()  # the fleet's state first: paused fleets start paused
        signal_installed = reload_signal and reloader.install_signal()
        control = gateway.control
        async with admin.health_poller(gateway), collector.schedule(lambda: control.in_flight > 0):
            yield
        if signal_installed:
            reloader.remove_signal()
        if gateway.fleet is not None:
            await gateway.fleet.stop()
        await gateway.aclose()

    app = GatewayApp(
        title="gym-gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served by gateway/docs_ui.py with local assets (no CDN)
        redoc_url=None,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            RequestValidationError: _validation_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected_error,
        },
    )
    app.state.gateway = gateway
    app.openapi = extended_openapi(app)  # type: ignore[method-assign]  # + the Starlette routes
    admin.register_pool_metrics(gateway)
    # Plain Starlette routes: FastAPI's per-request dependency machinery cost a third of
    # the throughput on the pass-through path.
    app.router.routes.extend(
        [
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            Route("/v1/responses", responses_api.create_response, methods=["POST"]),
            WebSocketRoute("/v1/responses", responses_ws.responses_websocket),
            Route("/v1/responses/compact", responses_crud.compact, methods=["POST"]),
            Route(
                "/v1/responses/{response_id}",
                responses_crud.stored_response,
                methods=["GET", "DELETE"],
            ),
            Route(
                "/v1/responses/{response_id}/input_items",
                responses_crud.list_input_items,
                methods=["GET"],
            ),
            Route("/v1/completions", engine_endpoints.completions, methods=["POST"]),
            Route("/tokenize", engine_endpoints.tokenize, methods=["POST"]),
            Route("/detokenize", engine_endpoints.detokenize, methods=["POST"]),
            Route("/v1/models", endpoints.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", endpoints.get_model, methods=["GET"]),
            Route("/health", endpoints.health, methods=["GET"]),
            Route("/ready", _ready, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
            Route("/finish_session", sessions.finish_session, methods=["POST"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
            *admin.ROUTES,
            *docs_ui.ROUTES,
        ]
    )
    app.hot_paths = {}
    if not config.server.cors_origins:  # CORS must wrap every answer: no short cut then
        for path, handler in HOT_HANDLERS.items():
            inner = InFlightMiddleware(hot_endpoint(handler), reloader=reloader)
            app.hot_paths[path] = ObserveMiddleware(inner, gateway=gateway)
    # Counts in-flight requests per config generation, so a reload closes old routes only
    # after their last request (gateway/reload.py).
    app.add_middleware(InFlightMiddleware, reloader=reloader)
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
    app = create_app(config, os.environ.get(CONFIG_ENV))
    tune_gc()
    return app


def tune_gc() -> None:
    """Once the app is built, in a serving process: the collector's schedule of
    gateway/collector.py (everything start-up made frozen, automatic collection off; the app's
    lifespan runs the timer)."""
    collector.prepare()
