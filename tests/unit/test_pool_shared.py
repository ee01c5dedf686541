"""A pool in a fleet: placements shared through backends/sessions.py's interface, released by
/finish_session, re-placed when their replica is out; concurrency limits split by members."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from backends.pool import Pool, Replica
from gateway.context import RequestContext
from gateway.policies import PoolPolicy

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 5)]
BODY = {"model": "m", "messages": [{"role": "user", "content": "task"}]}


class DictPlacements:
    """The shared store as a dict (the fleet's is Redis: gateway/fleet_sessions.py)."""

    def __init__(self) -> None:
        self.placed: dict[tuple[str, bytes], str] = {}
        self.lookups = self.local_decisions = 0
        self.during_claim: Callable[[], object] | None = None  # what happens meanwhile

    async def claim(self, route: str, key: bytes, proposal: str, out: list[str]) -> str | None:
        self.lookups += 1
        if self.during_claim is not None:
            self.during_claim()
        current = self.placed.get((route, key))
        if current is None or current in out:
            current = self.placed[(route, key)] = proposal
        return current

    def release(self, route: str, key: bytes) -> None:
        self.placed.pop((route, key), None)

    def decided_locally(self) -> None:
        self.local_decisions += 1


def member(store: DictPlacements, **policy: object) -> Pool:
    pool = Pool.from_urls("r", URLS, PoolPolicy(**policy))  # type: ignore[arg-type]
    pool.shared = store
    return pool


def ctx(session: str) -> RequestContext:
    return RequestContext(request_id="t", session_id=session)


async def turn(pool: Pool, session: str, avoid: set[int] | None = None) -> str:
    avoid = avoid or set()
    await pool.consult_shared(BODY, ctx(session), avoid)
    return pool.pick(BODY, ctx(session), avoid).base_url


async def test_members_follow_the_first_placement_even_when_load_differs() -> None:
    store = DictPlacements()
    a, b = member(store), member(store)
    for i in range(20):
        first = await turn(a, f"s{i}")
        # b's own least-loaded choice would differ: load its replica of choice heavily
        for replica in b.replicas:
            replica.in_flight = 0 if replica.base_url != first else 50
        assert await turn(b, f"s{i}") == first


async def test_a_known_conversation_costs_no_lookup() -> None:
    store = DictPlacements()
    a = member(store)
    await turn(a, "s")
    lookups = store.lookups
    for _ in range(5):
        await turn(a, "s")
    assert store.lookups == lookups


async def test_replica_out_re_placed_once_for_every_member() -> None:
    store = DictPlacements()
    a, b = member(store), member(store)
    first = await turn(a, "s")
    assert await turn(b, "s") == first
    dead = next(r for r in a.replicas if r.base_url == first)
    dead.open_until = time.monotonic() + 60  # a ejected it
    moved = await turn(a, "s")
    assert moved != first
    # b has not noticed yet: its request to the dead replica fails, then it follows a
    b_dead = next(r for r in b.replicas if r.base_url == first)
    assert await turn(b, "s", avoid={id(b_dead)}) == moved


async def test_the_first_claim_wins() -> None:
    """Two members meeting a new conversation at once, with different loads, agree."""
    store = DictPlacements()
    a, b = member(store), member(store)
    b.replicas[0].in_flight = b.replicas[1].in_flight = 9  # b would choose differently
    for i in range(20):
        assert await turn(a, f"s{i}") == await turn(b, f"s{i}")


async def test_store_out_of_reach_decides_locally() -> None:
    class Down(DictPlacements):
        async def claim(self, route: str, key: bytes, proposal: str, out: list[str]) -> None:
            return None

    pool = member(Down())
    assert await turn(pool, "s") == await turn(pool, "s")  # still sticky, locally


async def test_finish_session_releases_everywhere() -> None:
    store = DictPlacements()
    a = member(store)
    await turn(a, "s")
    a.forget(b"s")
    assert store.placed == {}
    assert b"s" not in a._sticky


def test_limits_are_split_among_members() -> None:
    pool = Pool.from_urls("r", URLS, PoolPolicy(max_concurrency=10, max_concurrency_per_replica=3))
    pool.set_members(3)
    assert pool._share(10) == 4 and pool._share(3) == 1
    pool.in_flight = 4
    assert not pool._has_slot()
    pool.set_members(2)  # a member left: the others' shares grow
    assert pool._has_slot()


# -- a dead replica's conversations move once, to one replica every member agrees on ---------
# (the fresh-machine CI run's `r0, r1, r2, r2`: a member made a placement alone, unrecorded
# and uncounted, because its view of the dead replica differed from the one consult_shared
# checked; the next member then re-placed the conversation from the store's stale record)


def _replica(pool: Pool, url: str) -> Replica:
    return next(r for r in pool.replicas if r.base_url == url)


def _half_open(replica: Replica, probing: bool) -> None:
    """Ejected before, its ejection over: the next request is a trial (`probing` while one
    is in flight)."""
    replica.ejections, replica.failures, replica.open_until = 1, 3, 0.0
    replica.probing = probing


def _least_loaded_except(pool: Pool, dead: str, favourite: str) -> None:
    for replica in pool.replicas:
        replica.in_flight = 0 if replica.base_url in (favourite, dead) else 5


async def test_a_member_probing_the_dead_replica_re_places_in_the_store() -> None:
    """Member a placed the conversation on a replica that then died; a has a trial request
    to it in flight (half-open, probing), so a cannot use it for this turn: a must re-place
    the conversation in the store, not alone, or member b (which ejected the dead replica and
    prefers another one) re-places it a second time."""
    store = DictPlacements()
    a, b = member(store), member(store)
    dead = await turn(a, "s")
    others = [u for u in URLS if u != dead]
    _half_open(_replica(a, dead), probing=True)
    _least_loaded_except(a, dead, others[0])
    _replica(b, dead).open_until = time.monotonic() + 60
    _least_loaded_except(b, dead, others[1])
    second = await turn(a, "s")
    assert second != dead
    assert store.placed[("r", b"s")] == second
    assert await turn(b, "s") == second
    assert store.local_decisions == 0


def _eject(replica: Replica) -> None:
    replica.failures, replica.open_until = 3, time.monotonic() + 60


def _start_trial(replica: Replica) -> None:
    replica.probing = True


@pytest.mark.parametrize("meanwhile", [_eject, _start_trial])
async def test_a_placement_that_goes_out_during_its_claim_is_claimed_again(
    meanwhile: Callable[[Replica], None],
) -> None:
    """The claim takes a round trip: meanwhile other requests of the same member may eject
    the recorded replica (their third failure: the common case in the CI run's logs) or start
    its trial (half-open). The member claims again, naming it out, rather than choosing
    alone."""
    store = DictPlacements()
    a, b, c = member(store), member(store), member(store)
    dead = await turn(a, "s")
    others = [u for u in URLS if u != dead]
    c_dead = _replica(c, dead)
    _half_open(c_dead, probing=False)  # a candidate when c's claim starts
    _least_loaded_except(c, dead, others[0])
    store.during_claim = lambda: meanwhile(c_dead)
    second = await turn(c, "s")
    assert second != dead and store.placed[("r", b"s")] == second
    store.during_claim = None
    _replica(b, dead).open_until = time.monotonic() + 60
    _least_loaded_except(b, dead, others[1])
    assert await turn(b, "s") == second
    assert store.local_decisions == 0


async def test_every_placement_made_alone_is_counted() -> None:
    """Whatever keeps a member from an agreed placement (here: every replica out for this
    request) is counted as a local decision, as the store's own budget misses are."""
    store = DictPlacements()
    a = member(store)
    await turn(a, "s")
    avoid = {id(r) for r in a.replicas}
    await turn(a, "s", avoid=avoid)  # a last resort, chosen alone
    assert store.local_decisions == 1
