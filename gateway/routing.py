"""Model name -> route: the driver that serves it, built once from the config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends import make_driver
from backends.base import Driver
from backends.http import UpstreamHTTP
from gateway.auth import check_route_allowed
from gateway.config import GatewayConfig, RouteConfig
from gateway.context import RequestContext
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics


class Router:
    def __init__(
        self, config: GatewayConfig, http: UpstreamHTTP, metrics: GatewayMetrics | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.routes: dict[str, RouteConfig] = {r.name: r for r in config.models}
        self.drivers: dict[str, Driver] = {r.name: make_driver(r, http) for r in config.models}

    def driver_for(self, model: str, ctx: RequestContext | None = None) -> Driver:
        """The route's driver; with a ctx, also checks the key's permission and counts the
        request as in flight on that route (the observability middleware counts it out)."""
        driver = self.drivers.get(model)
        if driver is None:
            raise GatewayError(
                404,
                f"The model '{model}' does not exist on this gateway. "
                f"Known models: {', '.join(self.routes)} (see GET /v1/models).",
                param="model",
                code="model_not_found",
            )
        if ctx is not None:
            check_route_allowed(ctx, model)
            ctx.route_name = model
            if self.metrics is not None:
                self.metrics.in_flight.inc((model,))
        return driver

    async def aclose(self) -> None:
        for driver in self.drivers.values():
            await driver.aclose()
