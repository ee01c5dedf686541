"""The edge of every HTTP request: request id, header limit, authentication, and one finish
point that updates metrics, writes the structured request log and feeds the recorder.

A pure ASGI middleware (no BaseHTTPMiddleware): streams are not buffered, the cost is one
send wrapper per request, and a request that ends by disconnect or crash is still finished.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import ServerConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.redact import RedactingFilter

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

REQUEST_ID_HEADER = b"x-request-id"
SESSION_ID_HEADER = b"x-session-id"
POLICY_HEADER = b"x-policy-version"
POLICY_VERSIONS_HEADER = b"x-policy-versions"
# Generation endpoints: admitted through the control plane (pause/resume, policy version).
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/completions"})
_MAX_ID_LEN = 200
access_log = logging.getLogger("gateway.access")


class _RequestIds:
    """req_ + a random per-process prefix + a counter: unique without a getrandom() system
    call per request (ids are labels, not secrets). A forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = "req_" + os.urandom(6).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(3)))

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):012x}"


new_request_id = _RequestIds()


def _acceptable_id(raw: bytes) -> bool:
    return 0 < len(raw) <= _MAX_ID_LEN and all(33 <= b < 127 for b in raw)


async def _send_error(send: Send, exc: GatewayError, request_id: str) -> None:
    body = orjson.dumps(exc.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gateway = self.gateway
        request_id = None
        header_bytes = 0
        authorization = None
        session_id = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == REQUEST_ID_HEADER and _acceptable_id(value):
                request_id = value.decode()
            elif name == b"authorization":
                authorization = value
            elif name == SESSION_ID_HEADER and _acceptable_id(value):
                session_id = value.decode()
        if request_id is None:
            request_id = new_request_id()
        ctx = RequestContext(request_id=request_id, endpoint=scope["path"], session_id=session_id)
        ctx.started = time.perf_counter()
        scope.setdefault("state", {})["ctx"] = ctx
        scope["state"]["request_id"] = request_id

        limit = gateway.config.server.max_header_bytes
        try:
            if header_bytes > limit:
                raise GatewayError(
                    431, f"Request headers total {header_bytes} bytes; the limit is {limit}",
                    code="headers_too_large",
                )  # fmt: skip
            gateway.auth.authenticate(scope, authorization, ctx)
            admitted = scope["path"] in GENERATION_PATHS
            if admitted and gateway.rate_limits is not None:
                await gateway.rate_limits.admit(ctx)  # 429 past the key's per-minute limits
            if admitted:
                # waits while a trainer has paused the gateway for a weight update
                ctx.policy_version = await gateway.control.admit()
        except GatewayError as exc:
            ctx.status, ctx.error_code = exc.status, str(exc.code) if exc.code else None
            await _send_error(send, exc, request_id)
            self.finish(ctx, scope)
            return

        extra_headers = [(REQUEST_ID_HEADER, request_id.encode())]

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                # read now: a JSON answer may have set the engine's own weight version
                policy = []
                if ctx.policy_version is not None:
                    policy.append((POLICY_HEADER, ctx.policy_version.encode()))
                if ctx.policy_versions is not None:
                    policy.append((POLICY_VERSIONS_HEADER, ",".join(ctx.policy_versions).encode()))
                message["headers"] = [*message.get("headers", []), *extra_headers, *policy]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except BaseException:
            if not ctx.status:
                ctx.status = 500
            raise
        finally:
            if admitted:
                gateway.control.done()
                if gateway.rate_limits is not None:
                    gateway.rate_limits.spend(ctx)
            self.finish(ctx, scope)

    def finish(self, ctx: RequestContext, scope: Scope) -> None:
        """Once per request, whatever way it ended."""
        now = time.perf_counter()
        route = ctx.route_name or "-"
        metrics = self.gateway.metrics
        status = ctx.status or 499  # no answer started: the client went away first
        metrics.requests.inc((route, ctx.endpoint, str(status)))
        metrics.latency.observe((route, ctx.endpoint), now - ctx.started)
        if ctx.route_name:
            metrics.in_flight.inc((route,), -1)
            # /metrics is public: a replica's name, never its address (docs/operations.md)
            upstream = ctx.upstream_name or ctx.upstream
            if upstream:
                metrics.upstream_requests.inc((route, upstream))
            if ctx.retries:
                metrics.retries.inc((route, upstream or "-"), ctx.retries)
        if status >= 400:
            metrics.errors.inc((route, ctx.error_code or str(status)))
        if ctx.first_token is not None:
            metrics.ttft.observe((route,), ctx.first_token - ctx.started)
        if ctx.prompt_tokens:
            metrics.tokens.inc((route, "in"), ctx.prompt_tokens)
        if ctx.completion_tokens:
            metrics.tokens.inc((route, "out"), ctx.completion_tokens)
        if self.gateway.request_log and access_log.isEnabledFor(logging.INFO):
            write_request_line(request_fields(ctx, scope, now))
        for hook in self.gateway.finish_hooks:
            hook(ctx)


def request_fields(ctx: RequestContext, scope: Scope, now: float) -> dict[str, Any]:
    """The structured request log line: never bodies, never keys."""
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "method": scope.get("method"),
        "path": ctx.endpoint,
        "route": ctx.route_name or None,
        "upstream": ctx.upstream or None,
        "status": ctx.status or 499,
        "latency_ms": round((now - ctx.started) * 1000, 3),
        "stream": ctx.stream,
    }
    if ctx.first_token is not None:
        fields["ttft_ms"] = round((ctx.first_token - ctx.started) * 1000, 3)
    if ctx.prompt_tokens is not None:
        fields["prompt_tokens"] = ctx.prompt_tokens
    if ctx.completion_tokens is not None:
        fields["completion_tokens"] = ctx.completion_tokens
    if ctx.retries:
        fields["retries"] = ctx.retries
    if ctx.error_code:
        fields["error_code"] = ctx.error_code
    if ctx.key_name:
        fields["key"] = ctx.key_name
    return fields


def write_request_line(fields: dict[str, Any]) -> None:
    """The request line: straight into the buffered handler when it is the access log's only
    one (no LogRecord, no caller lookup: ~6 % of a worker's CPU at 3,000 req/s), else through
    logging as any other line."""
    handlers = access_log.handlers
    if len(handlers) == 1 and type(handlers[0]) is BufferedLineHandler:
        handlers[0].add_line(handlers[0].formatter.request_line(fields))  # type: ignore[union-attr]
    else:
        access_log.info("request", extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured fields."""

    def request_line(self, fields: dict[str, Any]) -> str:
        """What format() makes of access_log.info("request", extra={"fields": fields})."""
        doc = {
            "ts": round(time.time(), 3),
            "level": "info",
            "logger": access_log.name,
            "msg": "request",
            **fields,
        }
        return orjson.dumps(doc).decode()

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_text or record.exc_info:  # exc_text: as RedactingFilter left it
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


FinishHook = Callable[[RequestContext], None]


class BufferedLineHandler(logging.Handler):
    """Request lines are formatted at once but written in batches, every 100 ms or 64 KiB:
    one write per batch instead of a write (and a flush) per request, which cost 10-15% of a
    worker's CPU on the hot path (bench/README.md). Other log lines are written at once."""

    FLUSH_SECONDS = 0.1
    MAX_BUFFER = 64 * 1024

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add_line(line)

    def add_line(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.MAX_BUFFER:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # no event loop (CLI, tests): write now
                return
            self._scheduled = True
            loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._size = 0
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr closed at shutdown


def configure_logging(server: ServerConfig) -> None:
    """One handler on the root logger (uvicorn's loggers propagate to it), JSON by default;
    request lines go through a buffered handler of their own."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())  # no known secret in any log line
    if server.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(server.log_level.upper())
    formatter = JsonFormatter() if server.log_format == "json" else _FieldsFormatter()
    access_log.handlers[:] = [BufferedLineHandler(formatter)]
    access_log.handlers[0].addFilter(RedactingFilter())
    access_log.propagate = False


class _FieldsFormatter(logging.Formatter):
    """Text form of a structured request line: key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {}) or {}
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {_pairs(fields)}"

    def request_line(self, fields: dict[str, Any]) -> str:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        return f"{stamp},{int(now % 1 * 1000):03d} INFO {access_log.name}: {_pairs(fields)}"


def _pairs(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())
