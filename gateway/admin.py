"""Admin endpoints (the refit control plane and pool state) and the active health poller.

All under /admin/, protected by `server.admin_key` (loopback-only when it is unset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backends.http import Upstream
from backends.pool import UNREACHABLE
from gateway import collector
from gateway.errors import GatewayError, InvalidRequest
from gateway.request_io import json_response, read_json_body

if TYPE_CHECKING:
    from gateway.state import GatewayState as Gateway

log = logging.getLogger("gateway.admin")
PAUSE_MODES = ("wait", "keep", "abort")


def upstreams(gateway: Gateway) -> Iterator[tuple[str, Upstream]]:
    """The current router's upstreams (after a reload, only the new ones)."""
    for name, driver in gateway.router.drivers.items():
        upstream = getattr(driver, "upstream", None)
        if isinstance(upstream, Upstream):
            yield name, upstream


async def _optional_json(request: Request) -> dict[str, Any]:
    if request.headers.get("content-length") in (None, "0"):
        return {}
    return await read_json_body(request, 64 * 1024)


def _engine_targets(gateway: Gateway) -> list[tuple[str, Any, str]]:
    """(route, driver, replica origin) for each replica of a route with `engine_control`."""
    out = []
    for name, upstream in upstreams(gateway):
        if not gateway.router.routes[name].engine_control:
            continue
        driver = gateway.router.drivers[name]
        for replica in upstream.pool.replicas:
            out.append((name, driver, replica.origin))
    return out


async def _call_engines(
    gateway: Gateway, targets: list[tuple[str, Any, str]], which: str, mode: str | None = None
) -> list[dict[str, Any]]:
    """POST each replica's own pause (`which="pause"`) or resume endpoint, in its family's
    terms (the driver's pause_call / resume_call); `ok` says whether the engine took it."""

    async def one(name: str, driver: Any, origin: str) -> dict[str, Any]:
        make = getattr(driver, f"{which}_call", None)
        if make is None:
            why = f"backend '{driver.route.backend}' has no engine {which} call"
            return {"route": name, "upstream": origin, "ok": False, "status": None,
                    "detail": why}  # fmt: skip
        call = make(mode) if which == "pause" else make()
        status, detail = await gateway.http.post_status(origin + call.path, json_body=call.body)
        return {"route": name, "upstream": origin, "call": call.path, "body": call.body,
                "ok": status is not None and 200 <= status < 300, "status": status,
                "detail": detail}  # fmt: skip

    return list(await asyncio.gather(*(one(*t) for t in targets)))


def _engine_error(action: str, engines: list[dict[str, Any]]) -> dict[str, Any] | None:
    failed = [e for e in engines if not e["ok"]]
    if not failed:
        return None
    where = ", ".join(f"{e['upstream']}{e.get('call', '')} ({e['status'] or e['detail']})"
                      for e in failed)  # fmt: skip
    return {
        "message": f"{len(failed)} of {len(engines)} engine replicas did not {action}: {where}",
        "type": "upstream_error",
        "param": None,
        "code": f"engine_{action}_failed",
    }


async def pause(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    body = await _optional_json(request)
    mode = body.get("mode", request.query_params.get("mode", "wait"))
    if mode not in PAUSE_MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(PAUSE_MODES)}", param="mode")
    timeout = body.get("timeout_s", 600)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise InvalidRequest("timeout_s must be a number >= 0", param="timeout_s")
    targets = _engine_targets(gateway)
    # families whose engine call waits for the gateway's drain go after it (SGLang's `wait`)
    now = [t for t in targets if not _after_drain(t[1], mode)]
    later = [t for t in targets if _after_drain(t[1], mode)]
    # the member that took the call controls the engines (once per replica, not per
    # member), and only once the fleet state is recorded
    engine_calls: list[asyncio.Future[list[dict[str, Any]]]] = []

    def control_engines() -> None:
        engine_calls.append(asyncio.ensure_future(_call_engines(gateway, now, "pause", mode)))

    if gateway.fleet is not None:
        result = await gateway.fleet.pause(mode, float(timeout), control_engines)
    else:
        control_engines()
        result = await gateway.control.pause(mode, float(timeout))
    engines = (await engine_calls[0] if engine_calls else []) + await _call_engines(
        gateway, later, "pause", mode
    )
    result["engines"] = engines
    error = _engine_error("pause", engines)
    if error is not None:
        # never report a pause the engines did not make: undo it and say why
        paused = [(e["route"], gateway.router.drivers[e["route"]], e["upstream"])
                  for e in engines if e["ok"]]  # fmt: skip
        undone = await _call_engines(gateway, paused, "resume")
        if gateway.fleet is not None:
            await gateway.fleet.resume()
        else:
            gateway.control.resume()
        gateway.control.engine_error = error
        log.warning("pause failed at the engines, undone: %s", error["message"])
        answer = {"error": error, "paused": False, "mode": mode, "engines": engines,
                  "undone": undone}  # fmt: skip
        return json_response(answer, status=502)
    gateway.control.engine_error = None
    log.info("paused (mode %s): %s", mode, result)
    return _fleet_answer(result)


def _after_drain(driver: Any, mode: str) -> bool:
    make = getattr(driver, "pause_call", None)
    return bool(make is not None and make(mode).after_drain)


async def resume(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    # engines first, so released requests find them running (with Redis down, the fleet
    # then stays paused: nothing reaches the resumed engines)
    engines = await _call_engines(gateway, _engine_targets(gateway), "resume")
    if gateway.fleet is not None:
        result = await gateway.fleet.resume()
    else:
        result = gateway.control.resume()
    result["engines"] = engines
    error = _engine_error("resume", engines)
    gateway.control.engine_error = error
    if error is not None:
        log.warning("resumed; %s", error["message"])
        return json_response({"error": error, **result}, status=502)
    log.info("resumed: %s", result)
    return _fleet_answer(result)


def _fleet_answer(result: dict[str, Any]) -> Response:
    """200, or 503 `fleet_unconfirmed` when a live member did not confirm the command in
    time (the state is recorded; that member applies it when it next reaches Redis)."""
    fleet = result.get("fleet")
    if fleet is None or fleet["confirmed"]:
        return json_response(result)
    message = (
        f"The fleet state is recorded (epoch {fleet['epoch']}) but members "
        f"{', '.join(fleet['unconfirmed'])} did not confirm it in time"
    )
    error = {"message": message, "type": "service_unavailable", "code": "fleet_unconfirmed"}
    return json_response({"error": error, **result}, 503)


async def status(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    result = gateway.control.status()
    if gateway.fleet is not None:
        try:
            result["fleet"] = {"connected": True, **await gateway.fleet.status()}
        except GatewayError as exc:
            result["fleet"] = {"connected": False, "member": gateway.fleet.member_id,
                               "error": exc.message}  # fmt: skip
    return json_response(result)


async def policy_version(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if request.method == "POST":
        body = await read_json_body(request, 64 * 1024)
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, (str, int, type(None))):
            raise InvalidRequest("version must be a string, an integer or null", param="version")
        version = None if version is None else str(version)
        if gateway.fleet is not None:
            return _fleet_answer(await gateway.fleet.set_policy_version(version))
        gateway.control.policy_version = version
    return json_response({"policy_version": gateway.control.policy_version})


async def pools(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return json_response({"pools": [u.pool.snapshot() for _, u in upstreams(gateway)]})


ROUTES = [
    Route("/admin/pause", pause, methods=["POST"]),
    Route("/admin/resume", resume, methods=["POST"]),
    Route("/admin/status", status, methods=["GET"]),
    Route("/admin/policy_version", policy_version, methods=["GET", "POST"]),
    Route("/admin/pools", pools, methods=["GET"]),
]


async def poll_health(gateway: Gateway) -> None:
    """Active health checks: each replica's health path on its origin, every interval."""
    last: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        checks = []
        for name, upstream in upstreams(gateway):
            health = gateway.router.routes[name].health
            if health.path is None:
                continue
            for replica in upstream.pool.replicas:
                if now - last.get(id(replica), -1e9) < health.interval_s:
                    continue
                last[id(replica)] = now
                checks.append(_check(gateway, upstream, replica, health.path))
        if checks:
            await asyncio.gather(*checks)
        await asyncio.sleep(0.5)


async def _check(gateway: Gateway, upstream: Upstream, replica: Any, path: str) -> None:
    code = await gateway.http.get_status(replica.origin + path)
    why = UNREACHABLE if code is None else f"health check answered HTTP {code}"
    upstream.pool.mark_reachable(replica, code is not None and code < 500, why)


@contextlib.asynccontextmanager
async def health_poller(gateway: Gateway):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(poll_health(gateway))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _gc_total(field: str) -> Callable[[], dict[tuple[str, ...], float]]:
    return lambda: {(): getattr(collector.TOTALS, field)}


def register_pool_metrics(gateway: Gateway) -> None:
    """Pool gauges read at scrape time from the current router's pools; the collector's
    totals (gateway/collector.py)."""
    from gateway.metrics import CallbackGauge

    def queue_depth() -> dict[tuple[str, ...], float]:
        return {(name,): u.pool.queue_depth() for name, u in upstreams(gateway)}

    def replica_states() -> dict[tuple[str, ...], float]:
        now = time.monotonic()
        counts: dict[tuple[str, ...], float] = {}
        for name, upstream in upstreams(gateway):
            for replica in upstream.pool.replicas:
                key = (name, replica.state(now))
                counts[key] = counts.get(key, 0) + 1
        return counts

    registry = gateway.metrics.registry
    for name, help_text, field in (
        ("gateway_gc_full_passes", "Full garbage collections of this process "
         "(gateway/collector.py; 0 when Python's own schedule runs).", "passes"),
        ("gateway_gc_full_pass_seconds", "Time this process spent in them (the event loop "
         "waits meanwhile).", "seconds"),
        ("gateway_gc_freed_objects", "Objects they freed: cycles some path made (expected "
         "near 0; growing means a leak to report).", "freed"),
    ):  # fmt: skip
        registry.add(CallbackGauge(name, help_text, (), _gc_total(field)))
    registry.add(CallbackGauge(
        "gateway_pool_queue_depth", "Requests waiting for a concurrency slot, by route.",
        ("route",), queue_depth))  # fmt: skip
    registry.add(CallbackGauge(
        "gateway_pool_replicas", "Upstream replicas by route and state.",
        ("route", "state"), replica_states))  # fmt: skip
