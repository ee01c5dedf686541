"""Model name -> route: the driver that serves it, built once from the config."""

from __future__ import annotations

from backends import make_driver
from backends.base import Driver
from backends.http import UpstreamHTTP
from gateway.config import GatewayConfig, RouteConfig
from gateway.errors import GatewayError


class Router:
    def __init__(self, config: GatewayConfig, http: UpstreamHTTP) -> None:
        self.config = config
        self.routes: dict[str, RouteConfig] = {r.name: r for r in config.models}
        self.drivers: dict[str, Driver] = {r.name: make_driver(r, http) for r in config.models}

    def driver_for(self, model: str) -> Driver:
        driver = self.drivers.get(model)
        if driver is None:
            raise GatewayError(
                404,
                f"The model '{model}' does not exist on this gateway. "
                f"Known models: {', '.join(self.routes)} (see GET /v1/models).",
                param="model",
                code="model_not_found",
            )
        return driver

    async def aclose(self) -> None:
        for driver in self.drivers.values():
            await driver.aclose()
