"""Backend drivers: one small module per family over one shared HTTP client."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.base import Driver
    from backends.http import UpstreamHTTP
    from gateway.config import RouteConfig


def make_driver(route: RouteConfig, http: UpstreamHTTP) -> Driver:
    """The driver for a route's backend family (imported lazily: start-up stays fast)."""
    if route.backend == "mock":
        from backends.mock import MockDriver

        return MockDriver(route)
    from backends.openai_compat import OpenAICompatDriver

    return OpenAICompatDriver(route, http)
