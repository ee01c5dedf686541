"""Per-API-key rate limits: generation requests and tokens per minute (`api_keys[].
requests_per_minute`, `tokens_per_minute`).

Fixed one-minute windows (UTC minute boundaries). A request is refused with 429
`rate_limit_exceeded` and `Retry-After` (seconds to the next window) when its key already
made `requests_per_minute` requests, or spent `tokens_per_minute` tokens, in this window.
Tokens are known only once an answer finished, so they count towards the request after it.

In a fleet (`cluster:`) the counters are shared (gateway/fleet.py's SharedCounters, one
Redis round trip per request, bounded by `local_budget_ms`); slower than that, or with Redis
unreachable, a member decides alone against its own counts and `limit / members`, so the
fleet may then admit up to about one member's rounding more than the limit.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from gateway.context import RequestContext
from gateway.errors import GatewayError

WINDOW_S = 60


class SharedCounters(Protocol):
    members: int

    async def hit(self, key: str, window: int) -> tuple[int, int] | None:
        """Count one request; the fleet's (requests, tokens) in this window, or None (slow
        or unreachable: decide locally)."""
        ...

    def spend(self, key: str, window: int, tokens: int) -> None:
        """Add tokens (fire and forget)."""
        ...


class RateLimiter:
    def __init__(self, limits: dict[str, tuple[int | None, int | None]]) -> None:
        self.limits = limits
        self.shared: SharedCounters | None = None
        self._local: dict[str, list[int]] = {}  # key -> [window, requests, tokens]

    def _counts(self, key: str, window: int) -> list[int]:
        counts = self._local.get(key)
        if counts is None or counts[0] != window:
            counts = self._local[key] = [window, 0, 0]
        return counts

    async def admit(self, ctx: RequestContext) -> None:
        limits = self.limits.get(ctx.key_name or "")
        if limits is None:
            return
        rpm, tpm = limits
        now = time.time()
        window = int(now // WINDOW_S)
        local = self._counts(ctx.key_name or "", window)
        local[1] += 1
        fleet = await self.shared.hit(ctx.key_name or "", window) if self.shared else None
        if fleet is not None:
            requests, tokens, share = fleet[0], fleet[1], 1
        else:  # alone, or the fleet's counters are out of reach: this member's share
            requests, tokens = local[1], local[2]
            share = self.shared.members if self.shared else 1
        if rpm is not None and requests > math.ceil(rpm / share):
            raise self._refused(ctx, "requests", rpm, now)
        if tpm is not None and tokens >= math.ceil(tpm / share):
            raise self._refused(ctx, "tokens", tpm, now)

    def spend(self, ctx: RequestContext) -> None:
        limits = self.limits.get(ctx.key_name or "")
        if limits is None or limits[1] is None:
            return  # no tokens_per_minute: nothing to count (in a fleet, no Redis call)
        tokens = (ctx.prompt_tokens or 0) + (ctx.completion_tokens or 0)
        if not tokens:
            return
        window = int(time.time() // WINDOW_S)
        self._counts(ctx.key_name or "", window)[2] += tokens
        if self.shared is not None:
            self.shared.spend(ctx.key_name or "", window, tokens)

    @staticmethod
    def _refused(ctx: RequestContext, what: str, limit: int, now: float) -> GatewayError:
        retry = max(1, math.ceil(WINDOW_S - now % WINDOW_S))
        return GatewayError(
            429,
            f"API key '{ctx.key_name}' reached its limit of {limit} {what} per minute; "
            f"retry in {retry} s",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": str(retry)},
        )
