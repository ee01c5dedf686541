"""Where a pool learns conversation placements made by other gateway processes.

A small interface so the pool does not depend on how placements are shared: the fleet
(gateway/fleet_sessions.py, Redis) implements it; one process alone has none.
"""

from __future__ import annotations

from typing import Protocol


class SharedPlacements(Protocol):
    async def placement(self, route: str, key: bytes) -> str | None:
        """The replica (base URL) another process placed this conversation on, or None:
        unknown, or the shared store was slower than its budget or unreachable."""
        ...

    def place(self, route: str, key: bytes, replica: str) -> None:
        """Record a placement (fire and forget: never delays the request)."""
        ...

    def release(self, route: str, key: bytes) -> None:
        """Forget a placement (the conversation ended)."""
        ...
