"""Fleet members in this process on a real `redis-server`: conversation placements through the
real claim script, and route concurrency shares that follow the membership.

Lighter than tests/e2e/test_fleet_e2e.py (no gateway processes): each member is a
gateway/fleet.py Fleet with its own ControlPlane and its own pool of the same replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from backends.control import ControlPlane
from backends.pool import Pool, Replica
from gateway.context import RequestContext
from gateway.fleet import Fleet
from gateway.fleet_config import ClusterConfig
from gateway.policies import PoolPolicy
from tests.redis_server import RedisServer

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 5)]
BODY = {"model": "m", "messages": [{"role": "user", "content": "task"}]}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()


class Members:
    """Members joined to one Redis, each with its own pool of URLS."""

    def __init__(self, redis: RedisServer, prefix: str, **policy: object) -> None:
        # local_budget_ms generous: this shared test machine must not turn a claim local
        self.config = ClusterConfig(
            redis_url=redis.url, key_prefix=prefix, heartbeat_s=0.2, member_ttl_s=0.6,
            local_budget_ms=5000,
        )  # fmt: skip
        self.policy = policy
        self.fleets: list[Fleet] = []
        self.pools: list[Pool] = []

    async def join(self) -> Pool:
        fleet = Fleet(self.config, ControlPlane())
        pool = Pool.from_urls("r", URLS, PoolPolicy(**self.policy))  # type: ignore[arg-type]
        fleet.pools = lambda: [pool]
        await fleet.start()
        self.fleets.append(fleet)
        self.pools.append(pool)
        return pool

    async def heartbeat(self) -> None:
        for fleet in self.fleets:
            await fleet.heartbeat()

    async def stop(self) -> None:
        for fleet in self.fleets:
            await fleet.stop()


@pytest.fixture
async def members(redis: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[Members]:
    group = Members(redis, f"t{time.monotonic_ns()}:", **getattr(request, "param", {}))
    try:
        yield group
    finally:
        await group.stop()


def _ctx(session: str) -> RequestContext:
    return RequestContext(request_id="t", session_id=session)


async def turn(pool: Pool, session: str) -> str:
    await pool.consult_shared(BODY, _ctx(session), set())
    return pool.pick(BODY, _ctx(session), set()).base_url


def _replica(pool: Pool, url: str) -> Replica:
    return next(r for r in pool.replicas if r.base_url == url)


def _prefer(pool: Pool, dead: str, favourite: str) -> None:
    for replica in pool.replicas:
        replica.in_flight = 0 if replica.base_url in (favourite, dead) else 5


async def test_a_dead_replicas_conversations_move_once_on_the_real_script(
    members: Members,
) -> None:
    """tests/unit/test_pool_shared.py's reproduction of the double re-placement, on Redis:
    the member with a trial in flight to the dead replica re-places in Redis; the member that
    ejected it, preferring another replica, follows."""
    a, b = await members.join(), await members.join()
    sessions = [f"s{i}" for i in range(20)]
    for session in sessions:
        first = await turn(a, session)
        assert await turn(b, session) == first  # b follows a's first claim
    dead = await turn(a, sessions[0])
    others = [u for u in URLS if u != dead]
    trial = _replica(a, dead)
    trial.ejections, trial.failures, trial.open_until, trial.probing = 1, 3, 0.0, True
    _prefer(a, dead, others[0])
    _replica(b, dead).open_until = time.monotonic() + 60
    _prefer(b, dead, others[1])
    for session in sessions:
        before = await turn(a, session)
        if before == dead:
            pytest.fail("a served a conversation on the replica it is trying")
        assert await turn(b, session) == before, session
    assert [f.placements.local_decisions for f in members.fleets] == [0, 0]


@pytest.mark.parametrize("members", [{"max_concurrency": 10}], indirect=True)
async def test_route_concurrency_shares_follow_the_membership(members: Members) -> None:
    """max_concurrency is the fleet's total: split among the live members, re-split when one
    joins or leaves (its heartbeat stops: dropped after member_ttl_s)."""
    a = await members.join()
    await members.heartbeat()
    assert a._share(10) == 10
    b = await members.join()
    await members.heartbeat()
    assert (a.members, b.members) == (2, 2) and a._share(10) == 5
    a.in_flight = 5
    assert not a._has_slot()  # a's share is taken, though the fleet has room at b
    third = await members.join()
    await members.heartbeat()
    assert a._share(10) == 4  # 3 members: 4 + 4 + 4 rounded up, at most 2 over the total
    await members.fleets[2].stop()  # leaves the membership on its way out
    members.fleets.pop(), members.pools.pop()
    await members.heartbeat()
    assert (a.members, b.members, third.members) == (2, 2, 3) and a._share(10) == 5
    # a member that dies without leaving: dropped after member_ttl_s, the others' shares grow
    dead = members.fleets.pop(1)
    for task in dead._tasks:
        task.cancel()
    time.sleep(members.config.member_ttl_s + 0.1)
    await members.heartbeat()
    a.in_flight = 5
    assert a.members == 1 and a._has_slot()
    await dead.redis.aclose()


async def test_members_that_know_a_moved_conversation_follow_the_move(
    members: Members,
) -> None:
    """b cannot reach a conversation's replica (ejected at b alone) and moves it; a, which
    knows the conversation on that replica and still reaches it, follows the move announced
    by Redis instead of serving the conversation on the old replica."""
    a, b = await members.join(), await members.join()
    old = await turn(a, "s")
    assert await turn(b, "s") == old
    _replica(b, old).open_until = time.monotonic() + 60
    new = await turn(b, "s")
    assert new != old
    deadline = time.monotonic() + 5
    while a._sticky[b"s"].base_url != new:
        assert time.monotonic() < deadline, "a did not follow the move"
        await asyncio.sleep(0.01)
    lookups = members.fleets[0].placements.lookups
    assert await turn(a, "s") == new
    assert members.fleets[0].placements.lookups == lookups  # followed: no claim needed
