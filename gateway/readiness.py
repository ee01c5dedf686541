"""`GET /ready`: every route has at least one upstream that accepts a TCP connection.

A connection (not a request) is the cheapest proof that needs no key and costs the engine
nothing; results are cached briefly so a busy probe cannot load the upstreams.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from gateway.config import GatewayConfig

CACHE_SECONDS = 2.0
CONNECT_TIMEOUT = 1.0


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "localhost", port


async def _reachable(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class Readiness:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, bool]] = {}

    async def _check(self, target: tuple[str, int]) -> bool:
        hit = self._cache.get(target)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        ok = await _reachable(*target)
        self._cache[target] = (now, ok)
        return ok

    async def report(self, config: GatewayConfig) -> tuple[bool, dict[str, str]]:
        """(ready, {route: "ok" | "unreachable"}); hosts are not named (the probe is public)."""
        routes: dict[str, list[tuple[str, int]]] = {}
        for route in config.models:
            urls = list(
                getattr(route, "base_urls", None) or ([route.base_url] if route.base_url else [])
            )
            routes[route.name] = [_host_port(u) for u in urls]
        targets = {t for ts in routes.values() for t in ts}
        results = dict(
            zip(targets, await asyncio.gather(*(self._check(t) for t in targets)), strict=True)
        )
        states = {
            name: "ok" if not ts or any(results[t] for t in ts) else "unreachable"
            for name, ts in routes.items()
        }
        return all(s == "ok" for s in states.values()), states
