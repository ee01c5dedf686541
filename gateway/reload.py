"""Live config reload: `SIGHUP` or `POST /admin/reload` swaps in a new config, dropping nothing.

New requests use the new routes at once; requests already in flight finish on the old ones,
whose resources (drivers, recording files) are closed only when the last of them has ended.
An invalid config is refused with the reason (HTTP 400, or a log line for SIGHUP) and the
old one stays. Settings that shape the process (host, port, workers, connection pool,
logging) take effect only at the next start; a reload says which of them changed.

In-flight accounting is one counter per config generation, kept by a tiny ASGI middleware:
a request counts on the generation current when it arrived, and a retired generation is
closed once every request that arrived before its retirement has ended (a request may have
picked up any router up to then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.errors import GatewayError
from gateway.request_io import error_response, json_response

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

log = logging.getLogger("gateway.reload")
# Server settings a running process cannot change (they shape sockets, workers, pools, logs).
RESTART_ONLY = (
    "host", "port", "workers", "backlog", "upstream_max_connections", "log_level", "log_format",
    "access_log", "shutdown_grace_s", "cors_origins", "upstream_max_answer_bytes",
    "upstream_max_event_bytes",
)  # fmt: skip


class Generation:
    __slots__ = ("active", "number")

    def __init__(self, number: int) -> None:
        self.number = number
        self.active = 0


class InFlightMiddleware:
    """Counts each HTTP request on the config generation current when it arrived."""

    def __init__(self, app: ASGIApp, reloader: Reloader) -> None:
        self.app = app
        self.reloader = reloader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        generation = self.reloader.current
        generation.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            generation.active -= 1


class Reloader:
    def __init__(
        self, gateway: Gateway, path: str | None, overrides: dict[str, Any] | None = None
    ) -> None:
        self.gateway = gateway
        self.path = path
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.current = Generation(0)
        self._live = [self.current]
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retiring: list[dict[str, Any]] = []  # old parts not closed yet
        self.poll_s = 0.05  # how often a retiring generation checks for its last request

    async def reload(self) -> dict[str, Any]:
        """Load, validate and swap in the config file; raises ConfigError (old config stays)."""
        async with self._lock:
            config = await asyncio.to_thread(load_config, self.path, **self.overrides)
            gateway = self.gateway
            before = gateway.config
            parts = gateway.derive(config)  # raises ConfigError; nothing is swapped yet
            # No await from here to the end of the swap: the event loop sees old or new.
            old_parts = gateway.install(parts)
            retired = self.current
            self.current = Generation(retired.number + 1)
            self._live.append(self.current)
            self._retiring.append(old_parts)
            self._spawn(self._retire(retired, old_parts))
            summary = describe_change(before, config, self.current.number)
        log.info("config reloaded: %s", summary)
        return summary

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retire(self, generation: Generation, parts: dict[str, Any]) -> None:
        while any(g.active for g in self._live if g.number <= generation.number):
            await asyncio.sleep(self.poll_s)
        self._live = [g for g in self._live if g.number > generation.number]
        self._retiring.remove(parts)
        await close_parts(parts)
        log.info("config generation %d retired: its last request ended", generation.number)

    def on_signal(self) -> None:
        self._spawn(self._reload_logged())

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except ConfigError as exc:
            log.error("SIGHUP reload refused, the running config stays: %s", exc)
        except Exception:
            log.exception("SIGHUP reload failed, the running config stays")

    def install_signal(self) -> bool:
        """SIGHUP reloads (main thread only: an in-process server in a thread has none)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.on_signal)
        return True

    def remove_signal(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    async def aclose(self) -> None:
        """At shutdown (in-flight requests have had their grace): close what is still retiring."""
        for task in list(self._tasks):
            task.cancel()
        retiring, self._retiring = self._retiring, []
        for parts in retiring:
            await close_parts(parts)


async def close_parts(parts: dict[str, Any]) -> None:
    router = parts.get("router")
    if router is not None:
        await router.aclose()
    recording = parts.get("recording")
    if recording is not None:
        await asyncio.to_thread(recording.close)  # joins the writer thread


def describe_change(before: GatewayConfig, after: GatewayConfig, generation: int) -> dict[str, Any]:
    old = {r.name: r for r in before.models}
    new = {r.name: r for r in after.models}
    restart = [k for k in RESTART_ONLY if getattr(before.server, k) != getattr(after.server, k)]
    if restart:
        log.warning("reload: %s change only at the next start", ", ".join(restart))
    return {
        "status": "reloaded",
        "generation": generation,
        "routes": list(new),
        "added": [n for n in new if n not in old],
        "removed": [n for n in old if n not in new],
        "changed": [n for n in new if n in old and new[n] != old[n]],
        "restart_needed": restart,
    }


async def admin_reload(request: Request) -> Response:
    """`POST /admin/reload` (the observability middleware enforces the admin key)."""
    reloader: Reloader = request.app.state.gateway.reloader
    try:
        summary = await reloader.reload()
    except ConfigError as exc:
        log.error("reload refused, the running config stays: %s", exc)
        return error_response(GatewayError(400, str(exc), code="invalid_config"))
    return json_response(summary)
