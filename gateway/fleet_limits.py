"""Per-key rate-limit counters shared by the fleet (gateway/rate_limits.py's SharedCounters).

`<prefix>rl:{<key>:<window>}:req` and `...:tok`, expiring two windows later. One script per
request counts it and reads both counts: one round trip, bounded by `local_budget_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from gateway.fleet_config import FleetLink

# KEYS: requests, tokens. ARGV: ttl s. Counts one request; returns {requests, tokens}.
HIT_SCRIPT = """
local r = redis.call('INCR', KEYS[1])
if r == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {r, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
TTL_S = 120


class FleetCounters:
    def __init__(self, fleet: FleetLink) -> None:
        self.fleet = fleet
        self.redis = fleet.redis
        self.prefix = fleet.config.key_prefix + "rl:"
        self.budget = fleet.config.local_budget_ms / 1000
        self._hit = self.redis.register_script(HIT_SCRIPT)
        self._pending: set[asyncio.Task[None]] = set()
        self.local_decisions = 0

    @property
    def members(self) -> int:
        return self.fleet.live_members

    def _keys(self, key: str, window: int) -> list[str]:
        tag = f"{self.prefix}{{{key}:{window}}}"  # one hash slot for both (Redis Cluster)
        return [tag + ":req", tag + ":tok"]

    async def hit(self, key: str, window: int) -> tuple[int, int] | None:
        if not self.fleet.connected:
            self.local_decisions += 1
            return None
        try:
            requests, tokens = await asyncio.wait_for(
                self._hit(keys=self._keys(key, window), args=[TTL_S]), self.budget
            )
        except (TimeoutError, RedisError, OSError):
            self.local_decisions += 1
            return None
        return int(requests), int(tokens)

    def spend(self, key: str, window: int, tokens: int) -> None:
        if not self.fleet.connected:
            return

        async def add() -> None:
            with contextlib.suppress(RedisError, OSError):
                async with self.redis.pipeline(transaction=False) as pipe:
                    counter = self._keys(key, window)[1]
                    pipe.incrby(counter, tokens)
                    pipe.expire(counter, TTL_S)
                    await pipe.execute()

        task = asyncio.get_running_loop().create_task(add())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
