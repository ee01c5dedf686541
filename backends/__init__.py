"""Backend drivers: one small module per family over one shared HTTP client."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.config import ROUTE_CHECKS

if TYPE_CHECKING:
    from backends.base import Driver
    from backends.http import UpstreamHTTP
    from gateway.config import RouteConfig

# backend name -> (module, driver class); imported only when a route uses it, so start-up
# stays fast and optional dependencies (litellm) are never imported by the core.
DRIVERS = {
    "vllm": ("backends.vllm", "VLLMDriver"),
    "sglang": ("backends.sglang", "SGLangDriver"),
    "tgi": ("backends.tgi", "TGIDriver"),
    "openai": ("backends.openai", "OpenAIDriver"),
    "gemini": ("backends.gemini", "GeminiDriver"),
    "litellm": ("backends.litellm_driver", "LiteLLMDriver"),
}


def driver_class(backend: str) -> type:
    module, name = DRIVERS[backend]
    return getattr(importlib.import_module(module), name)


def make_driver(route: RouteConfig, http: UpstreamHTTP) -> Driver:
    """The driver for a route's backend family."""
    if route.backend == "mock":
        from backends.mock import MockDriver

        return MockDriver(route)
    if route.backend not in DRIVERS:  # a family without quirks of its own
        from backends.openai_compat import OpenAICompatDriver

        return OpenAICompatDriver(route, http)
    return driver_class(route.backend)(route, http)


def check_route(route: RouteConfig) -> None:
    """Config-time check of a route against its driver (raises ValueError with the reason):
    `defaults` and `overrides` the family's parameter table refuses. (LiteLLM routes have no
    table: litellm maps parameters itself; its missing extra is checked in gateway/config.py.)"""
    if route.backend == "litellm":
        return
    if route.backend not in DRIVERS or getattr(route, "unsupported_params", "error") == "drop":
        return
    from gateway.errors import UnsupportedParameter

    table = driver_class(route.backend).params
    for field in ("defaults", "overrides"):
        try:
            table.apply(dict(getattr(route, field)), drop=False, route=route.name)
        except UnsupportedParameter as exc:
            raise ValueError(f"{field}.{exc.param}: {exc.message}") from None


# config validation runs this check for every route from now on (gateway/config.py)
if check_route not in ROUTE_CHECKS:
    ROUTE_CHECKS.append(check_route)
