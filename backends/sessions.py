"""Where a pool learns conversation placements made by other gateway processes.

A small interface so the pool does not depend on how placements are shared: the fleet
(gateway/fleet_sessions.py, Redis) implements it; one process alone has none.
"""

from __future__ import annotations

from typing import Protocol


class SharedPlacements(Protocol):
    async def claim(self, route: str, key: bytes, proposal: str, out: list[str]) -> str | None:
        """The conversation's replica (base URL) for every process: the one already recorded
        unless it is in `out` (replicas this process cannot use), else `proposal`, recorded
        atomically (the first process to claim wins a race). None: the shared store was
        slower than its budget or unreachable, decide locally."""
        ...

    def release(self, route: str, key: bytes) -> None:
        """Forget a placement (the conversation ended; fire and forget)."""
        ...

    def decided_locally(self) -> None:
        """This process placed a conversation without the store's agreement (every replica
        out for this request, or the record kept going out): counted, as budget misses are."""
        ...
