"""The fleet: many gateway processes (workers, hosts) share one refit state on Redis/Valkey.

Imported only when the config has a `cluster:` block. Design (docs/scaling.md, "The fleet"):

* **The state hash** (`<prefix>state`: paused, mode, since, policy_version, epoch) is the
  source of truth. An admin command changes it and publishes the new state on
  `<prefix>events` in one Lua script, so the write and the message cannot part.
* **Members** renew `<prefix>members` (a sorted set scored by Redis' own clock) and their row
  in `<prefix>members:info` every `heartbeat_s`; the same script prunes members silent for
  `member_ttl_s`, returns the state (a member that missed a message catches up within one
  heartbeat) and re-seeds the state if Redis lost it (a restart without persistence).
* **The handshake**: each member applies a state (synchronously: from then on it admits
  nothing while paused) and reports `{member, epoch, in_flight}` on `<prefix>reports`; while
  paused in `wait`/`abort` mode it reports again when its in-flight count reaches zero. The
  member that took the admin call waits until every live member reported the new epoch (and,
  for `wait`, zero in flight); a member that dies is dropped from the set it waits for.
* **No Redis**: the data path keeps the last state it knew; admin calls answer 503
  `fleet_unavailable` instead of claiming a fleet-wide effect.

`redis` (redis-py) is the client: its asyncio client is maintained by Redis itself, speaks
RESP to Redis and Valkey alike, and runs Lua scripts and pub/sub on one library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backends.control import ControlPlane, PauseMode
from gateway.errors import GatewayError
from gateway.fleet_config import ClusterConfig

log = logging.getLogger("gateway.fleet")

# KEYS: state, events, members. ARGV: origin (this member), n, then n seed values (the
# caller's own state as field/value pairs, written first if Redis lost the state: a restart
# without persistence, so the epoch keeps rising), then field/value pairs ("" deletes one).
# Bumps the epoch, writes the fields, publishes the whole new state; returns {epoch, lost,
# state pairs}: lost = 1 when Redis does not know the calling member (it lost the membership
# too).
COMMAND_SCRIPT = """
local n = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 3, 2 + n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local lost = redis.call('ZSCORE', KEYS[3], ARGV[1]) == false
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
for i = 3 + n, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local state = redis.call('HGETALL', KEYS[1])
redis.call('PUBLISH', KEYS[2], cjson.encode({origin = ARGV[1], state = state}))
return {epoch, lost and 1 or 0, state}
"""

# KEYS: members, info, state. ARGV: member, info JSON, ttl ms, then the member's own state as
# field/value pairs (written only if Redis has no state: it was restarted and lost it).
# Renews the member, prunes the silent ones; returns {state pairs, live member infos}.
HEARTBEAT_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for _, m in ipairs(stale) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
end
if redis.call('EXISTS', KEYS[3]) == 0 and #ARGV > 3 then
  for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
end
return {redis.call('HGETALL', KEYS[3]), redis.call('HVALS', KEYS[2])}
"""

# KEYS: members, info. ARGV: ttl ms. The live members' info rows (prunes the silent ones).
MEMBERS_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
for _, m in ipairs(stale) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
end
return redis.call('HVALS', KEYS[2])
"""


def _merge_report(row: dict[str, Any], report: dict[str, Any] | None) -> None:
    """A member's heartbeat row updated by its latest report: a newer epoch wins; within one
    epoch of a pause the in-flight count only falls, so the smaller count is the newer."""
    if report is None or report["epoch"] < row["epoch"]:
        return
    if report["epoch"] > row["epoch"]:
        row["epoch"], row["in_flight"] = report["epoch"], report["in_flight"]
    else:
        row["in_flight"] = min(row["in_flight"], report["in_flight"])


def _pairs(flat: list[Any] | dict[bytes, bytes]) -> dict[str, str]:
    """A hash as str -> str (Lua answers a flat list, HGETALL a dict)."""
    if isinstance(flat, dict):
        return {k.decode(): v.decode() for k, v in flat.items()}
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return dict(zip(text[::2], text[1::2], strict=True))


class FleetUnavailable(GatewayError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            503,
            f"The fleet's shared state ({where}) cannot be reached ({problem}); the command was "
            "not applied to the fleet. Retry once Redis is back (docs/scaling.md)",
            code="fleet_unavailable",
            headers={"retry-after": "1"},
        )


class Fleet:
    """This process's membership in the fleet, and the fleet-wide admin commands."""

    def __init__(self, config: ClusterConfig, control: ControlPlane) -> None:
        self.config = config
        self.control = control
        self.member_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        prefix = config.key_prefix
        self.keys = {
            "state": prefix + "state",
            "events": prefix + "events",
            "reports": prefix + "reports",
            "members": prefix + "members",
            "info": prefix + "members:info",
            "metrics": prefix + "metrics",
        }
        timeout = config.connect_timeout_s
        # a bounded pool: under load, requests wait for a connection (inside their budget)
        # instead of opening one each and hitting the client's connection cap
        pool = aioredis.BlockingConnectionPool.from_url(
            config.redis_url,
            max_connections=config.max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: admin calls answer 503 at once
            health_check_interval=max(1, int(config.heartbeat_s * 2)),
        )
        self.redis = aioredis.Redis.from_pool(pool)
        self._command = self.redis.register_script(COMMAND_SCRIPT)
        self._heartbeat = self.redis.register_script(HEARTBEAT_SCRIPT)
        self._members = self.redis.register_script(MEMBERS_SCRIPT)
        self.epoch = 0  # of the last state applied here
        self.state: dict[str, str] = {}
        self.connected = False
        self.last_error: str | None = None
        self.started = time.time()
        self._reports: dict[str, dict[str, Any]] = {}  # member -> its latest report
        self._report_seen = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self.aborted = 0  # by the last abort applied here
        self.live_members = 1
        # the current router's pools (set by the app): shared placements, limit shares
        self.pools: Callable[[], list[Any]] = list
        from gateway.fleet_limits import FleetCounters
        from gateway.fleet_sessions import FleetPlacements

        self.placements = FleetPlacements(self)
        self.counters = FleetCounters(self)
        self.rate_limits: Callable[[], Any] = lambda: None  # the current RateLimiter (app)
        self.registry: Any = None  # this process's metrics (app), shared every heartbeat
        self._pending: set[asyncio.Task[None]] = set()

    # -- life --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join: read the fleet state first (a member that starts during a pause starts
        paused), then listen and heartbeat. Fails start-up when Redis cannot be reached: a
        member that cannot know whether the fleet is paused must not serve."""
        try:
            await self.heartbeat()
        except (RedisError, OSError) as exc:
            await self.redis.aclose()
            raise RuntimeError(
                f"cluster: cannot reach Redis at {self.config.where} at start-up ({exc})"
            ) from None
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(subscribed)),
            asyncio.create_task(self._beat()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), self.config.ack_timeout)
        await self.heartbeat()  # whatever changed before the subscription took effect
        log.info("joined the fleet at %s as %s (epoch %d)", self.config.where, self.member_id,
                 self.epoch)  # fmt: skip

    async def stop(self) -> None:
        """Leave the fleet; every step bounded, so shutdown never waits on Redis."""
        running = [*self._tasks, self._drain_task, *self._pending, *self.placements._pending,
                   *self.counters._pending]  # fmt: skip
        tasks = [t for t in running if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        bound = self.config.connect_timeout_s
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._leave(), bound)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.aclose(), bound)

    async def _leave(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys["members"], self.member_id)
            pipe.hdel(self.keys["info"], self.member_id)
            await pipe.execute()

    # -- membership ----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "member": self.member_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "epoch": self.epoch,
            "in_flight": self.control.in_flight,
            "paused": self.control.paused,
            # placements decided alone (/admin/status sums them fleet-wide)
            "local_placements": self.placements.local_decisions,
        }

    async def heartbeat(self) -> list[dict[str, Any]]:
        """Renew membership, catch up with the state; returns the live members' info."""
        seed = self._seed()
        try:
            state, members = await self._heartbeat(
                keys=[self.keys["members"], self.keys["info"], self.keys["state"]],
                args=[self.member_id, orjson.dumps(self.info()),
                      int(self.config.member_ttl_s * 1000), *seed],
            )  # fmt: skip
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise
        if self.last_error is not None:
            log.warning("fleet: Redis at %s reachable again", self.config.where)
        self.connected, self.last_error = True, None
        self.apply(_pairs(state))
        self.live_members = max(1, len(members))
        self.attach()
        return [orjson.loads(m) for m in members]

    def _seed(self) -> list[str]:
        """This member's state as field/value pairs, to re-seed a Redis that lost it."""
        seed: list[str] = []
        if self.epoch:
            for field, value in self.state.items():
                seed += [field, value]
        return seed

    def attach(self) -> None:
        """The pools share placements and split their concurrency limits among the members
        (again after a reload or a change of membership)."""
        limiter = self.rate_limits()
        if limiter is not None:
            limiter.shared = self.counters
        for pool in self.pools():
            pool.shared = self.placements
            if pool.members != self.live_members:
                pool.set_members(self.live_members)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            with contextlib.suppress(RedisError, OSError):
                await self.heartbeat()
                if self.registry is not None:
                    families = orjson.dumps(self.registry.families(self.member_id))
                    await self.redis.hset(self.keys["metrics"], self.member_id, families)

    async def metrics_text(self) -> str:
        """Every live member's series in one exposition (others' as of their last heartbeat);
        this member's alone, with a comment saying so, when Redis is unreachable."""
        try:
            live = {m["member"] for m in await self.members()}
            shared = await self.redis.hgetall(self.keys["metrics"])
        except (RedisError, OSError, GatewayError) as exc:
            note = f"# fleet metrics unavailable ({type(exc).__name__}); this member only\n"
            return note + self.registry.render_merged(self.member_id, [])
        others, stale = [], []
        for member, families in shared.items():
            name = member.decode()
            if name == self.member_id:
                continue
            if name in live:
                others.append(orjson.loads(families))
            else:
                stale.append(name)
        if stale:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.hdel(self.keys["metrics"], *stale)
        return self.registry.render_merged(self.member_id, others)

    def _lost(self, exc: BaseException) -> None:
        problem = f"{type(exc).__name__}: {exc}"
        if self.connected or self.last_error is None:
            log.warning("fleet: Redis at %s unreachable (%s); serving with the last known "
                        "state (paused=%s, policy_version=%s)", self.config.where, problem,
                        self.control.paused, self.control.policy_version)  # fmt: skip
        self.connected, self.last_error = False, problem

    async def members(self) -> list[dict[str, Any]]:
        try:
            rows = await self._members(
                keys=[self.keys["members"], self.keys["info"]],
                args=[int(self.config.member_ttl_s * 1000)],
            )
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise FleetUnavailable(self.config.where, f"{type(exc).__name__}: {exc}") from None
        return sorted((orjson.loads(r) for r in rows), key=lambda m: m["member"])

    # -- applying a state ------------------------------------------------------------------------
    def apply(self, state: dict[str, str]) -> None:
        """Make the local control plane match a fleet state (no await: atomic)."""
        epoch = int(state.get("epoch", 0))
        if epoch <= self.epoch:
            return
        self.epoch, self.state = epoch, state
        control = self.control
        version = state.get("policy_version")
        control.policy_version = version if version else None
        if state.get("paused") == "1":
            mode: PauseMode = state.get("mode", "wait")  # type: ignore[assignment]
            if not control.paused or control.pause_mode != mode:
                since = float(state.get("since") or time.time())
                aborted = self.aborted = control.stop_admitting(mode, since)
                if aborted:
                    log.info("fleet: aborted %d in-flight requests (epoch %d)", aborted, epoch)
        elif control.paused:
            control.resume()
        self._report_soon()

    def _report_soon(self) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._report())
        self._pending.add(task)  # a reference until done (the loop keeps only weak ones)
        task.add_done_callback(self._pending.discard)
        draining = self._drain_task is not None and not self._drain_task.done()
        if self.control.paused and self.control.pause_mode in ("wait", "abort") and not draining:
            self._drain_task = loop.create_task(self._report_drained())

    async def _report(self) -> None:
        report = {"member": self.member_id, "epoch": self.epoch,
                  "in_flight": self.control.in_flight}  # fmt: skip
        with contextlib.suppress(RedisError, OSError):
            await self.redis.publish(self.keys["reports"], orjson.dumps(report))

    async def _report_drained(self) -> None:
        """While paused: report again once nothing is in flight here (the `wait` handshake)."""
        while self.control.paused and self.control.in_flight:
            await self.control.drain(self.config.heartbeat_s)
        self.control.aborting = False
        if self.control.paused:
            await self._report()

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """Fleet states and members' reports, re-subscribing after a lost connection."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(
                    self.keys["events"], self.keys["reports"], self.placements.moves
                )
                subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: try again
                self._lost(exc)
                await asyncio.sleep(min(self.config.heartbeat_s, 0.5))
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), self.config.connect_timeout_s)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if channel == self.placements.moves:
            moved = self.placements.moved(message["data"])
            if moved is not None:
                route, key, replica = moved
                for pool in self.pools():
                    if pool.route_name == route:
                        pool.follow(key, replica)
            return
        doc = orjson.loads(message["data"])
        if channel == self.keys["events"]:
            self.apply(_pairs(doc["state"]))
        elif channel == self.keys["reports"]:
            self._reports[doc["member"]] = doc
            self._report_seen.set()

    # -- the admin commands (any member takes them for the whole fleet) -------------------------
    async def command(
        self,
        fields: dict[str, str],
        drain_timeout: float | None = None,
        on_recorded: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Write a new fleet state, apply it here, then wait until every live member
        confirmed it (and, with `drain_timeout`, until the fleet has nothing in flight).
        `on_recorded` runs once the state is in Redis (the engine calls: none when Redis
        could not take the command)."""
        seed = self._seed()
        args: list[Any] = [self.member_id, len(seed), *seed]
        for field, value in fields.items():
            args += [field, value]
        try:
            epoch, lost, state = await self._command(
                keys=[self.keys["state"], self.keys["events"], self.keys["members"]], args=args
            )
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise FleetUnavailable(self.config.where, f"{type(exc).__name__}: {exc}") from None
        self.apply(_pairs(state))
        if on_recorded is not None:
            on_recorded()
        if lost:  # Redis lost the membership: let every member re-register before counting
            await asyncio.sleep(2 * self.config.heartbeat_s)
        return await self._await_members(int(epoch), drain_timeout)

    async def _await_members(self, epoch: int, drain_timeout: float | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        ack_deadline = start + self.config.ack_timeout
        drain_deadline = start + (drain_timeout or 0.0)
        known: dict[str, dict[str, Any]] = {}
        dropped: set[str] = set()
        next_refresh = start
        while True:
            now = loop.time()
            if now >= next_refresh:  # the live set, and each member's heartbeat row
                with contextlib.suppress(FleetUnavailable):  # then reports alone decide
                    live = {m["member"]: m for m in await self.members()}
                    dropped |= {m for m in known if m not in live}
                    known = live
                next_refresh = now + min(self.config.heartbeat_s, 0.25)
            known[self.member_id] = self.info()
            for member, row in known.items():
                _merge_report(row, self._reports.get(member))
            unconfirmed = sorted(m for m, row in known.items() if row["epoch"] < epoch)
            busy = sum(row["in_flight"] for row in known.values() if row["epoch"] >= epoch)
            if unconfirmed:
                if now >= ack_deadline:
                    break
                deadline = ack_deadline
            elif drain_timeout is not None and busy and now < drain_deadline:
                deadline = drain_deadline
            else:
                break
            self._report_seen.clear()
            with contextlib.suppress(TimeoutError):
                wait = min(next_refresh, deadline) - now
                await asyncio.wait_for(self._report_seen.wait(), max(0.0, wait))
        result: dict[str, Any] = {
            "epoch": epoch,
            "members": len(known),
            "fleet_in_flight": busy,
            "confirmed": not unconfirmed,
            "unconfirmed": unconfirmed,
            "dropped": sorted(dropped),
        }
        if drain_timeout is not None:
            result["drained"] = busy == 0 and not unconfirmed
        if unconfirmed:
            log.warning("fleet: epoch %d not confirmed by %s within %.1fs", epoch, unconfirmed,
                        self.config.ack_timeout)  # fmt: skip
        return result

    async def pause(self, mode: PauseMode, timeout_s: float,
                    on_recorded: Callable[[], object] | None = None) -> dict[str, Any]:  # fmt: skip
        self.aborted = 0
        fleet = await self.command(
            {"paused": "1", "mode": mode, "since": repr(time.time())},
            drain_timeout=timeout_s if mode in ("wait", "abort") else None,
            on_recorded=on_recorded,
        )
        result: dict[str, Any] = {"paused": True, "mode": mode,
                                  "in_flight": fleet["fleet_in_flight"]}  # fmt: skip
        if mode in ("wait", "abort"):
            result["drained"] = fleet.pop("drained")
        result["aborted"] = self.aborted  # here; every member aborts its own
        result["fleet"] = fleet
        return result

    async def resume(self) -> dict[str, Any]:
        fleet = await self.command({"paused": "0", "mode": "", "since": ""})
        return {"paused": False, "in_flight": fleet["fleet_in_flight"], "fleet": fleet}

    async def set_policy_version(self, version: str | None) -> dict[str, Any]:
        fleet = await self.command({"policy_version": version or ""})
        return {"policy_version": version, "fleet": fleet}

    async def status(self) -> dict[str, Any]:
        """This member's view, and the live members (503 when Redis is unreachable)."""
        members = await self.members()
        return {
            "member": self.member_id,
            "redis": self.config.where,
            "epoch": self.epoch,
            "in_flight": sum(m.get("in_flight", 0) for m in members),
            # hot-path decisions taken alone: Redis slower than local_budget_ms, or down
            "local_decisions": {
                "placements": self.placements.local_decisions,
                "rate_limits": self.counters.local_decisions,
            },
            "members": members,
        }
