"""Route policies for reaching upstreams: replica pools, health, retries, limits, fallbacks.

Kept apart from gateway/config.py so that file stays about loading; these are plain
validated models the pool and the HTTP client read once at start-up.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal[
    "sticky_least_loaded", "least_loaded", "round_robin", "consistent_hash", "group_affinity"
]
FallbackOn = Literal["error", "context_overflow", "rate_limit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """Retries happen only before anything was sent to the client, on another replica when
    the pool has one."""

    attempts: int = Field(2, ge=0, le=10, description="retries after the first try")
    backoff_s: float = Field(0.2, ge=0, description="first backoff; doubles, with jitter")
    max_backoff_s: float = Field(5.0, ge=0)
    max_retry_after_s: float = Field(
        30.0, ge=0, description="an upstream Retry-After longer than this is passed on instead"
    )
    on_status: list[int] = Field(default_factory=lambda: [429, 502, 503, 504])


class HealthPolicy(_Strict):
    """Passive (failures eject a replica, with backoff) and active (its health path polled)."""

    path: str | None = Field(
        "/health", description="polled on the upstream's origin; null turns active checks off"
    )
    interval_s: float = Field(5.0, gt=0)
    failures_to_eject: int = Field(3, ge=1, description="consecutive failures that eject")
    eject_s: float = Field(1.0, gt=0, description="first ejection; doubles on each repeat")
    max_eject_s: float = Field(30.0, gt=0)


class PoolPolicy(_Strict):
    """Fields a route adds to reach one or many replicas."""

    base_urls: list[str] | None = Field(None, description="one engine replica each")
    strategy: Strategy = "sticky_least_loaded"
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    max_concurrency: int | None = Field(None, ge=1, description="in flight on the whole route")
    max_concurrency_per_replica: int | None = Field(None, ge=1)
    max_queue: int = Field(1024, ge=0, description="requests that may wait for a slot")
    queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a slot (then 429)")
    fallbacks: list[str] = Field(default_factory=list, description="routes to try, in order")
    fallback_on: list[FallbackOn] = Field(
        default_factory=lambda: ["error", "context_overflow"],
        description="error: 5xx, unreachable, timeouts; context_overflow: the 400; rate_limit",
    )
    engine_control: bool = Field(
        False, description="fan /admin/pause and /admin/resume out to the replicas' own endpoints"
    )
