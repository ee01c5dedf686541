"""Fallback routes: when a route fails before anything reached the client, try the next.

`fallbacks: [a, b]` and `fallback_on: [error, context_overflow, rate_limit]` on a route; the
answer's `x-gateway-route` header names the route that served it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.context import RequestContext
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from backends.base import Driver
    from gateway.routing import Router

T = TypeVar("T")
ROUTE_HEADER = "x-gateway-route"


def is_context_overflow(exc: GatewayError) -> bool:
    return exc.status == 400 and "context length" in exc.message.lower()


def eligible(exc: GatewayError, fallback_on: list[str]) -> bool:
    """Whether this failure lets the request move to a fallback route."""
    if "error" in fallback_on and (exc.status >= 500 or exc.status == 408):
        return True
    if "context_overflow" in fallback_on and is_context_overflow(exc):
        return True
    return "rate_limit" in fallback_on and exc.status == 429


async def with_fallbacks(
    router: Router,
    driver: Driver,
    ctx: RequestContext,
    attempt: Callable[[Driver], Awaitable[T]],
    enabled: bool = True,
) -> T:
    """Run `attempt` on the route's driver, then on each eligible fallback in order.
    `enabled=False` for requests that must not change model (the RL token contract: token
    ids from another model would corrupt the trainer's data)."""
    route = driver.route
    ctx.response_headers[ROUTE_HEADER] = route.name
    if not route.fallbacks or not enabled:
        return await attempt(driver)
    try:
        return await attempt(driver)
    except GatewayError as exc:
        last = exc
    try:
        for name in route.fallbacks:
            if not eligible(last, route.fallback_on):
                break
            if ctx.allowed_routes is not None and name not in ctx.allowed_routes:
                continue  # the caller's key may not use that route
            ctx.response_headers[ROUTE_HEADER] = name
            ctx.fallbacks.append(name)
            try:
                return await attempt(router.drivers[name])
            except GatewayError as exc:
                last = exc
        raise last
    finally:  # the error's traceback holds this frame: no reference back to it
        del last
