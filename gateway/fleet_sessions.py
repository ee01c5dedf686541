"""Conversation placements shared by the fleet's members (backends/sessions.py's interface).

One key per conversation and route, `<prefix>session:<route>:<key hex>` -> the replica's base
URL, kept `session_ttl_s` after its last placement. A lookup is one GET, only when a member
does not know the conversation (or its replica is out), bounded by `local_budget_ms`: slower
than that, or with Redis unreachable, the member decides alone (least loaded, ties broken by
the rendezvous order every member computes alike). Writes are fire and forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from gateway.fleet import Fleet

log = logging.getLogger("gateway.fleet")


class FleetPlacements:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.redis = fleet.redis
        self.prefix = fleet.config.key_prefix + "session:"
        self.budget = fleet.config.local_budget_ms / 1000
        self.ttl = int(fleet.config.session_ttl_s)
        self._pending: set[asyncio.Task[object]] = set()
        self.lookups = self.local_decisions = 0  # counted for /admin/status

    def _key(self, route: str, key: bytes) -> str:
        return f"{self.prefix}{route}:{key.hex()}"

    async def placement(self, route: str, key: bytes) -> str | None:
        if not self.fleet.connected:
            self.local_decisions += 1
            return None
        self.lookups += 1
        try:
            value = await asyncio.wait_for(self.redis.get(self._key(route, key)), self.budget)
        except (TimeoutError, RedisError, OSError):
            self.local_decisions += 1
            return None
        return value.decode() if value else None

    def _background(self, call: object) -> None:
        async def run() -> None:
            with contextlib.suppress(RedisError, OSError):
                await call  # type: ignore[misc]

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def place(self, route: str, key: bytes, replica: str) -> None:
        if self.fleet.connected:
            self._background(self.redis.set(self._key(route, key), replica, ex=self.ttl))

    def release(self, route: str, key: bytes) -> None:
        if self.fleet.connected:
            self._background(self.redis.delete(self._key(route, key)))
