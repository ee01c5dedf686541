"""What a request handler sees of the running gateway: the shared state, as a type.

The handler modules (endpoints, engine_endpoints, responses_api, admin, observe, reload) read
this interface; gateway/app.py builds the one object that implements it (`app.Gateway`) and
imports the handlers, so the HTTP surface's imports point one way (docs/architecture.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backends.control import ControlPlane
    from backends.http import UpstreamHTTP
    from gateway.auth import Authenticator
    from gateway.compaction import Sealer
    from gateway.config import GatewayConfig, RouteConfig
    from gateway.context import RequestContext
    from gateway.metrics import GatewayMetrics
    from gateway.rate_limits import RateLimiter
    from gateway.readiness import Readiness
    from gateway.recording import Recording
    from gateway.responses_store import ResponseStore
    from gateway.routing import Router


class GatewayState(ABC):
    """The attributes and methods handlers may use (declared here, set by app.Gateway)."""

    # built once per process
    http: UpstreamHTTP  # the shared upstream client
    control: ControlPlane  # refit control plane (pause/resume, policy version)
    metrics: GatewayMetrics
    readiness: Readiness
    finish_hooks: list[Callable[[RequestContext], None]]  # called with every finished request
    started: float  # time.time() at start-up
    engines: Any  # managed local engines (backends/launcher.py), or None
    reloader: Any  # gateway/reload.py's Reloader (which reads this interface), or None
    responses_store: ResponseStore | None  # stored responses (docs/responses.md)
    sealer: Sealer  # seals compacted items
    fleet: Any  # gateway/fleet.py's Fleet when a `cluster:` block is set, else None
    rate_limits: RateLimiter | None  # per-API-key request/token budgets (docs/scaling.md)
    # derived from the config; a reload swaps them together (derive, then install)
    config: GatewayConfig
    router: Router
    auth: Authenticator
    recording: Recording | None
    request_log: bool

    @abstractmethod
    def derive(self, config: GatewayConfig) -> dict[str, Any]:
        """Everything built from a config (raises ConfigError); nothing is swapped yet."""

    @abstractmethod
    def install(self, parts: dict[str, Any]) -> dict[str, Any]:
        """Swap derived parts in at once; returns the old ones."""

    @abstractmethod
    def model_card(self, route: RouteConfig) -> dict[str, Any]:
        """The public /v1/models entry of a route."""
