"""Conversation placements shared by the fleet's members (backends/sessions.py's interface).

One key per conversation and route, `<prefix>session:<route>:<key hex>` -> the replica's base
URL, kept `session_ttl_s` after its last claim. A member claims a placement when it does not
know the conversation (or its replica is out): one script, bounded by `local_budget_ms`,
returns the recorded replica or records the member's proposal (the first claim wins, so two
members that see a new conversation at once agree). Slower than the budget, or with Redis
unreachable, the member decides alone (least loaded, ties broken by the rendezvous order
every member computes alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from gateway.fleet_config import FleetLink

log = logging.getLogger("gateway.fleet")

# KEYS: placement, moves channel. ARGV: proposal, ttl s, then replicas the caller cannot use.
# A placement moved off a replica is announced ("<placement key>\n<new replica>"): members
# that know the conversation on its old replica follow at once, not at their next failure.
CLAIM_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local usable = true
  for i = 3, #ARGV do if ARGV[i] == current then usable = false end end
  if usable then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if current then redis.call('PUBLISH', KEYS[2], KEYS[1] .. '\\n' .. ARGV[1]) end
return ARGV[1]
"""


class FleetPlacements:
    def __init__(self, fleet: FleetLink) -> None:
        self.fleet = fleet
        self.redis = fleet.redis
        self.prefix = fleet.config.key_prefix + "session:"
        self.moves = fleet.config.key_prefix + "moves"  # the channel of CLAIM_SCRIPT's notices
        self.budget = fleet.config.local_budget_ms / 1000
        self.ttl = int(fleet.config.session_ttl_s)
        self._pending: set[asyncio.Task[object]] = set()
        self.lookups = self.local_decisions = 0  # counted for /admin/status
        self._claim = self.redis.register_script(CLAIM_SCRIPT)

    def _key(self, route: str, key: bytes) -> str:
        return f"{self.prefix}{route}:{key.hex()}"

    async def claim(self, route: str, key: bytes, proposal: str, out: list[str]) -> str | None:
        if not self.fleet.connected:
            self.local_decisions += 1
            return None
        self.lookups += 1
        keys = [self._key(route, key), self.moves]
        call = self._claim(keys=keys, args=[proposal, self.ttl, *out])
        try:
            value = await asyncio.wait_for(call, self.budget)
        except (TimeoutError, RedisError, OSError):
            self.local_decisions += 1
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def decided_locally(self) -> None:
        self.local_decisions += 1

    def moved(self, notice: bytes) -> tuple[str, bytes, str] | None:
        """A CLAIM_SCRIPT notice as (route, conversation key, new replica); None if foreign."""
        placement, _, replica = notice.decode().partition("\n")
        if not placement.startswith(self.prefix):
            return None
        route, _, key = placement[len(self.prefix) :].rpartition(":")
        try:
            return route, bytes.fromhex(key), replica
        except ValueError:
            return None

    def _background(self, call: object) -> None:
        async def run() -> None:
            with contextlib.suppress(RedisError, OSError):
                await call  # type: ignore[misc]

        task = asyncio.get_running_loop().create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def release(self, route: str, key: bytes) -> None:
        if self.fleet.connected:
            self._background(self.redis.delete(self._key(route, key)))
