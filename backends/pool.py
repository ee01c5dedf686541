"""A route's replicas: selection strategies, health (circuit per replica), backpressure.

Selection is cache-aware: turns of one conversation go to the same replica so the engine's
prefix cache hits. The conversation key is the client's `x-session-id`, else a hash of the
conversation's stable opening; rendezvous hashing on that key lets several gateway processes
agree on a replica with no shared state, and a replica that leaves moves only its own keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from backends.placement import GroupAffinity
from backends.sessions import SharedPlacements
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.policies import PoolPolicy

STICKY_CACHE_SIZE = 100_000
# What a replica's last failure says when it could not be reached at all (refused, DNS,
# health check with no answer): a route whose every replica failed this way is reported as
# unreachable, naming the addresses, rather than as merely unhealthy.
UNREACHABLE = "upstream_unreachable"
# The longest Retry-After a "no replica right now" answer carries. A replica's ejection may
# run to max_eject_s (30 s), but the openai SDK sleeps whatever Retry-After says (up to 60 s)
# before each of its retries: a client coming back sooner costs one cheap refusal.
MAX_NO_REPLICA_RETRY_AFTER_S = 2
# Claims of one conversation's placement per request (Pool.consult_shared): a second one when
# the recorded replica went out while the first was on its way; past that, decide locally.
MAX_CLAIMS = 3


def safe_origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@dataclass(slots=True)
class Replica:
    base_url: str
    origin: str
    weight_seed: bytes
    # what public surfaces (/metrics) call it: its place in the route's list, never its address
    name: str = "replica-0"
    in_flight: int = 0
    served: int = 0
    failures: int = 0  # consecutive
    ejections: int = 0
    open_until: float = 0.0  # circuit open (ejected) until this monotonic time
    probing: bool = False  # half-open: one trial request in flight
    last_error: str | None = None

    def state(self, now: float) -> str:
        if self.open_until > now:
            return "ejected"
        if self.ejections and self.failures:
            return "probing" if self.probing else "half_open"
        return "healthy"


def conversation_key(body: dict[str, Any], ctx: RequestContext) -> bytes:
    """What stays the same across the turns of one rollout: the session id, or the model,
    the system prompt / instructions and the first user turn."""
    if ctx.session_id:
        return ctx.session_id.encode()
    return opening_key(body)


def opening_key(body: dict[str, Any]) -> bytes:
    """The conversation's stable opening: model, system prompt / instructions, first user
    turn. The samples of one GRPO group share it, whatever their session ids."""
    opening: list[Any] = [body.get("model"), body.get("instructions")]
    turns = body.get("messages")
    if turns is None:
        turns = body.get("input")  # Responses: a string or items
    if isinstance(turns, list):
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            opening.append(turn.get("content"))
            if turn.get("role") == "user":
                break
    else:
        opening.append(turns)
    return hashlib.blake2b(orjson.dumps(opening), digest_size=16).digest()


def _weight(key: bytes, replica: Replica) -> bytes:
    return hashlib.blake2b(key + replica.weight_seed, digest_size=8).digest()


def rendezvous_rank(key: bytes, replicas: list[Replica]) -> list[Replica]:
    """Highest random weight first: every process computes the same order for a key."""
    return sorted(replicas, key=lambda r: _weight(key, r), reverse=True)


def rendezvous_best(key: bytes, replicas: Sequence[Replica]) -> Replica:
    """The top of rendezvous_rank, without sorting."""
    if len(replicas) == 1:
        return replicas[0]
    return max(replicas, key=lambda r: _weight(key, r))


def _usable(replica: Replica, now: float, exclude: set[int], limit: int | None) -> bool:
    """A candidate for a request: not tried already, not full, not ejected, and not
    half-open with its one trial request in flight."""
    if id(replica) in exclude or (limit is not None and replica.in_flight >= limit):
        return False
    if replica.open_until > now:
        return False
    return not (replica.ejections and replica.failures and replica.probing)


def _in_flight(replica: Replica) -> int:
    return replica.in_flight


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[None]


@dataclass
class Pool:
    route_name: str
    policy: PoolPolicy
    replicas: list[Replica]
    _rr: int = 0
    _sticky: OrderedDict[bytes, Replica] = field(default_factory=OrderedDict)
    _waiters: deque[_Waiter] = field(default_factory=deque)
    _groups: GroupAffinity[Replica] = field(default_factory=GroupAffinity)
    in_flight: int = 0
    # One sentence telling a user how to bring this route's engine up (family-specific).
    start_hint: str = ""
    # a fleet (gateway/fleet.py): placements shared with the other members, and how many
    # members share this route's concurrency limits (each takes an even share)
    shared: SharedPlacements | None = None
    members: int = 1

    @classmethod
    def from_urls(
        cls, route_name: str, urls: list[str], policy: PoolPolicy, start_hint: str = ""
    ) -> Pool:
        replicas = [
            Replica(u, safe_origin(u), u.encode(), f"replica-{i}") for i, u in enumerate(urls)
        ]
        return cls(route_name, policy, replicas, start_hint=start_hint)

    # -- selection -------------------------------------------------------------------------
    async def consult_shared(
        self, body: dict[str, Any], ctx: RequestContext, avoid: set[int]
    ) -> None:
        """Before `pick`, in a fleet with sticky_least_loaded: when this process does not
        know the conversation, or cannot use its replica for this request (ejected, on trial,
        full, or failed this request), claim a placement in the shared store: the one recorded
        unless it is among the replicas this process cannot use, else this process's choice
        (one bounded round trip; the first claim wins a race, and a record changed by another
        member in the meantime is adopted, not overwritten). On return, the conversation's
        known replica is one `pick` will choose, or a local decision was counted: a member
        never serves a conversation elsewhere than the store says without saying so."""
        if self.shared is None or self.policy.strategy != "sticky_least_loaded":
            return
        if len(self.replicas) < 2:
            return
        key = conversation_key(body, ctx)
        limit = self._share(self.policy.max_concurrency_per_replica)
        for _ in range(MAX_CLAIMS):
            # pick()'s own test, now: the claim below takes a round trip, during which other
            # requests may eject a replica or start its trial
            now = time.monotonic()
            known = self._sticky.get(key)
            if known is not None and _usable(known, now, avoid, limit):
                return
            candidates = self._candidates(now, avoid)
            if not candidates:
                break  # pick() takes a last resort among the replicas tried, or refuses
            low = min(r.in_flight for r in candidates)
            proposal = rendezvous_best(key, [r for r in candidates if r.in_flight == low])
            out = [r.base_url for r in self.replicas if not any(r is c for c in candidates)]
            url = await self.shared.claim(self.route_name, key, proposal.base_url, out)
            if url is None:
                return  # the store was out of reach or slow: counted there, pick() decides
            placed = next((r for r in self.replicas if r.base_url == url), None)
            if placed is None:
                break  # recorded by a member configured with other replicas
            self._sticky[key] = placed
        self.shared.decided_locally()

    def follow(self, key: bytes, url: str) -> None:
        """Another process moved a conversation this one knows to the replica at `url`."""
        if key in self._sticky:
            placed = next((r for r in self.replicas if r.base_url == url), None)
            if placed is None:
                del self._sticky[key]
            else:
                self._sticky[key] = placed

    def forget(self, key: bytes) -> None:
        """The conversation ended (POST /finish_session): its next request is placed anew."""
        self._sticky.pop(key, None)
        if self.shared is not None:
            self.shared.release(self.route_name, key)

    def _candidates(self, now: float, exclude: set[int]) -> list[Replica]:
        limit = self._share(self.policy.max_concurrency_per_replica)
        return [r for r in self.replicas if _usable(r, now, exclude, limit)]

    def pick(self, body: dict[str, Any], ctx: RequestContext, avoid: set[int]) -> Replica:
        """A replica for this request; replicas in `avoid` (already tried) only as a last
        resort. 503 with Retry-After when none is healthy (circuit open everywhere)."""
        now = time.monotonic()
        candidates = self._candidates(now, avoid)
        if not candidates and avoid:
            candidates = self._candidates(now, set())
        if not candidates:
            raise self._none_available(now)
        chosen = candidates[0] if len(candidates) == 1 else self._choose(candidates, body, ctx)
        if chosen.ejections and chosen.failures:
            chosen.probing = True
        return chosen

    def _choose(
        self, candidates: list[Replica], body: dict[str, Any], ctx: RequestContext
    ) -> Replica:
        strategy = self.policy.strategy
        if strategy == "round_robin":
            self._rr += 1
            return candidates[self._rr % len(candidates)]
        if strategy == "least_loaded":
            low = min(r.in_flight for r in candidates)
            return random.choice([r for r in candidates if r.in_flight == low])
        if strategy == "group_affinity":
            group = opening_key(body)
            trajectory = ctx.session_id.encode() if ctx.session_id else group
            return self._groups.choose(
                trajectory, group, candidates, _in_flight, rendezvous_best, time.monotonic()
            )
        key = conversation_key(body, ctx)
        if strategy == "consistent_hash":
            return rendezvous_best(key, candidates)
        # sticky_least_loaded: a known conversation stays on its replica while that replica is
        # a candidate (healthy, under max_concurrency_per_replica); a new one goes to the least
        # loaded replica, ties broken by rendezvous order (so processes tend to agree).
        known = self._sticky.get(key)
        if known is not None and known in candidates:
            self._sticky.move_to_end(key)
            return known
        low = min(r.in_flight for r in candidates)
        chosen = rendezvous_best(key, [r for r in candidates if r.in_flight == low])
        self._sticky[key] = chosen
        if len(self._sticky) > STICKY_CACHE_SIZE:
            self._sticky.popitem(last=False)
        return chosen

    def finish_session(self, session_id: str) -> bool:
        """A trajectory ended (group_affinity): forget its placement; False if unknown."""
        return self._groups.finish(session_id.encode())

    def _none_available(self, now: float) -> GatewayError:
        """Every replica is ejected or full. Say which upstreams, at which address, and why;
        a route that no replica answers at all is `upstream_unreachable` (502), as a single
        refused connection is."""
        down = [r for r in self.replicas if r.open_until > now]
        waits = [r.open_until - now for r in down]
        soonest = math.ceil(min(waits)) if waits else 1
        headers = {"retry-after": str(max(1, min(MAX_NO_REPLICA_RETRY_AFTER_S, soonest)))}
        everywhere = len(down) == len(self.replicas)
        if down and everywhere and all(r.last_error == UNREACHABLE for r in down):
            where = ", ".join(r.origin for r in down)
            hint = f" {self.start_hint}" if self.start_hint else ""
            return GatewayError(
                502,
                f"route '{self.route_name}': no engine answers at {where} (connection failed)."
                f"{hint}",
                code=UNREACHABLE,
                headers=headers,
            )
        detail = "; ".join(
            f"{r.origin} {r.state(now)}" + (f" after {r.last_error}" if r.last_error else "")
            for r in self.replicas
        )
        return GatewayError(
            503,
            f"route '{self.route_name}': no healthy upstream replica right now ({detail})",
            code="no_healthy_upstream",
            headers=headers,
        )

    # -- health ----------------------------------------------------------------------------
    def record_success(self, replica: Replica) -> None:
        replica.failures = 0
        replica.ejections = 0
        replica.probing = False
        replica.open_until = 0.0
        replica.last_error = None

    def record_failure(self, replica: Replica, reason: str) -> None:
        health = self.policy.health
        replica.failures += 1
        replica.last_error = reason
        was_probe = replica.probing
        replica.probing = False
        if was_probe or replica.failures >= health.failures_to_eject:
            backoff = min(health.max_eject_s, health.eject_s * (2**replica.ejections))
            replica.ejections += 1
            replica.open_until = time.monotonic() + backoff

    def mark_reachable(self, replica: Replica, ok: bool, why: str = "health check failed") -> None:
        """An active health check's verdict (`why`: what failed, UNREACHABLE when nothing
        answered)."""
        if ok:
            if replica.open_until or replica.failures:
                self.record_success(replica)
        else:
            replica.failures = max(replica.failures, self.policy.health.failures_to_eject - 1)
            self.record_failure(replica, why)

    # -- backpressure ----------------------------------------------------------------------
    def _share(self, limit: int | None) -> int | None:
        """A fleet-wide limit split evenly among the live members (rounded up)."""
        if limit is None or self.members <= 1:
            return limit
        return -(-limit // self.members)

    def set_members(self, members: int) -> None:
        """The fleet's size changed: new shares; waiters may fit now."""
        self.members = max(1, members)
        self._wake()

    def _has_slot(self) -> bool:
        limit = self._share(self.policy.max_concurrency)
        if limit is not None and self.in_flight >= limit:
            return False
        per = self._share(self.policy.max_concurrency_per_replica)
        if per is not None:
            now = time.monotonic()
            return any(r.in_flight < per and r.open_until <= now for r in self.replicas)
        return True

    async def admit(self) -> None:
        """Wait (bounded) for a slot on this route; 429 with Retry-After beyond the queue."""
        if not self._waiters and self._has_slot():
            self.in_flight += 1
            return
        if len(self._waiters) >= self.policy.max_queue:
            raise self._busy("its wait queue is full")
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.policy.queue_timeout_s)
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # woken, but gone before using the slot: hand it on
            else:
                waiter.future.cancel()
            if isinstance(sys.exc_info()[1], TimeoutError):
                raise self._busy("no slot freed in time") from None
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._has_slot():
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                self.in_flight += 1  # the slot passes straight to the waiter
                waiter.future.set_result(None)

    def _busy(self, why: str) -> GatewayError:
        return GatewayError(
            429,
            f"route '{self.route_name}' is at its concurrency limit and {why}; retry later",
            type="rate_limit_error",
            code="gateway_overloaded",
            headers={"retry-after": "1"},
        )

    def queue_depth(self) -> int:
        return len(self._waiters)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "route": self.route_name,
            "strategy": self.policy.strategy,
            "in_flight": self.in_flight,
            "queued": len(self._waiters),
            "max_concurrency": self.policy.max_concurrency,
            "replicas": [
                {
                    "upstream": r.origin,
                    "name": r.name,
                    "state": r.state(now),
                    "in_flight": r.in_flight,
                    "served": r.served,
                    "consecutive_failures": r.failures,
                    "ejected_for_s": round(max(0.0, r.open_until - now), 3),
                    "last_error": r.last_error,
                }
                for r in self.replicas
            ],
        }
