"""The `cluster:` block: many gateway processes act as one gateway (docs/scaling.md).

Kept apart from gateway/config.py so that file stays about loading and routing. Without this
block the gateway is one process with its state in memory and never imports a Redis client.
"""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ClusterConfig(BaseModel):
    """Shared fleet state on Redis or Valkey (same protocol)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str = Field(
        min_length=1, description="redis://[:password@]HOST:PORT/DB, rediss:// or unix://"
    )
    key_prefix: str = Field(
        "gym-gateway:", min_length=1, description="every key and channel starts with it"
    )
    heartbeat_s: float = Field(
        1.0, gt=0, description="how often a member renews its membership and re-reads the state"
    )
    member_ttl_s: float = Field(
        5.0, gt=0, description="a member silent this long is dropped from the fleet"
    )
    ack_timeout_s: float | None = Field(
        None, gt=0,
        description="longest wait for every member to confirm an admin command; "
        "null = member_ttl_s + heartbeat_s (time enough for a dead member to drop out)",
    )  # fmt: skip
    local_budget_ms: float = Field(
        2.0, gt=0, description="hot-path Redis calls slower than this fall back to local state"
    )
    connect_timeout_s: float = Field(1.0, gt=0, description="Redis connect and socket timeout")
    max_connections: int = Field(
        64, ge=4, description="Redis connections per member (pub/sub holds one)"
    )
    session_ttl_s: float = Field(
        3600.0, gt=0, description="a shared conversation placement lives this long unused"
    )

    @model_validator(mode="after")
    def _check(self) -> ClusterConfig:
        if not re.match(r"^(redis|rediss|unix)://", self.redis_url):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        if self.member_ttl_s < 2 * self.heartbeat_s:
            raise ValueError("member_ttl_s must be at least twice heartbeat_s")
        return self

    @property
    def ack_timeout(self) -> float:
        return self.ack_timeout_s or self.member_ttl_s + self.heartbeat_s

    @property
    def where(self) -> str:
        """The Redis address for messages and logs: never the password."""
        parts = urlsplit(self.redis_url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


class FleetLink(Protocol):
    """What the fleet's helpers (fleet_limits, fleet_sessions) read of the running Fleet:
    declared here so that they need not import gateway/fleet.py, which imports them."""

    redis: Any  # redis.asyncio.Redis
    config: ClusterConfig
    connected: bool
    live_members: int
