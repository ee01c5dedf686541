"""Group-aware placement (`strategy: group_affinity`): the pure rules, then through the pool."""

from __future__ import annotations

from collections import Counter

from backends.placement import GroupAffinity
from backends.pool import Pool, opening_key, rendezvous_best
from gateway.context import RequestContext
from gateway.policies import PoolPolicy


class Rep:
    def __init__(self, name: str) -> None:
        self.name = name
        self.load = 0

    def __repr__(self) -> str:
        return self.name


def first_of(_key: bytes, candidates: list[Rep]) -> Rep:
    return candidates[0]


def place(policy: GroupAffinity[Rep], reps: list[Rep], traj: str, group: str) -> Rep:
    chosen = policy.choose(traj.encode(), group.encode(), reps, lambda r: r.load, first_of)
    chosen.load += 1
    return chosen


def test_a_group_shares_a_replica_while_it_is_within_the_slack() -> None:
    reps = [Rep("a"), Rep("b"), Rep("c")]
    policy: GroupAffinity[Rep] = GroupAffinity(group_slack=4)
    homes = {place(policy, reps, f"g1-{i}", "g1") for i in range(4)}
    assert homes == {reps[0]}  # 0..3 busier than the least loaded: under the slack
    # the fifth sibling would find it 4 busier: it opens a second home for the group
    second = place(policy, reps, "g1-4", "g1")
    assert second is not reps[0]
    assert place(policy, reps, "g1-5", "g1") is second  # and the group follows it there
    assert policy.homes == {id(second): 1}


def test_a_new_group_goes_where_fewest_groups_live() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity(group_slack=16, move_after=8)
    place(policy, reps, "g1-0", "g1")  # a: home of g1
    place(policy, reps, "g2-0", "g2")  # b: home of g2
    for i in range(1, 4):
        place(policy, reps, f"g1-{i}", "g1")  # a is 3 busier, still g1's home
    assert reps[0].load == 4 and reps[1].load == 1
    # g3 goes to the replica with fewer live groups; both have one: the less loaded wins
    assert place(policy, reps, "g3-0", "g3") is reps[1]
    # a replica `move_after` busier than the least loaded takes no new group
    reps[1].load = 0
    reps[0].load = 8
    policy.homes[id(reps[1])] = 5
    assert place(policy, reps, "g4-0", "g4") is reps[1]


def test_siblings_arriving_interleaved_keep_their_groups_whole() -> None:
    import random

    reps = [Rep(c) for c in "abcd"]
    policy: GroupAffinity[Rep] = GroupAffinity()
    arrivals = [(g, i) for g in range(16) for i in range(8)]
    random.Random(0).shuffle(arrivals)
    for g, i in arrivals:
        place(policy, reps, f"g{g}-{i}", f"g{g}")
    for g in range(16):
        assert len({policy.replica_of(f"g{g}-{i}".encode()) for i in range(8)}) == 1
    assert sorted(r.load for r in reps) == [32, 32, 32, 32]


def test_groups_spread_by_load() -> None:
    reps = [Rep("a"), Rep("b"), Rep("c"), Rep("d")]
    policy: GroupAffinity[Rep] = GroupAffinity(group_slack=8)
    # interleaved arrival: 4 groups of 4 samples
    for i in range(4):
        for g in range(4):
            place(policy, reps, f"g{g}-{i}", f"g{g}")
    assert sorted(r.load for r in reps) == [4, 4, 4, 4]
    by_group = {g: {policy.replica_of(f"g{g}-{i}".encode()) for i in range(4)} for g in range(4)}
    assert all(len(homes) == 1 for homes in by_group.values())


def test_a_trajectory_stays_until_its_replica_is_much_busier() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity(move_after=8)
    first = place(policy, reps, "t", "g")
    first.load += 6
    assert place(policy, reps, "t", "g") is first  # 7 busier: stays
    first.load += 1
    moved = place(policy, reps, "t", "g")  # 8 busier: a cache miss beats a queue
    assert moved is not first
    assert policy.replica_of(b"t") is moved


def test_a_replica_that_left_the_candidates_is_not_chosen() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity()
    first = place(policy, reps, "t", "g")
    others = [r for r in reps if r is not first]
    assert policy.choose(b"t", b"g", others, lambda r: r.load, first_of) is others[0]


def test_finish_forgets_the_trajectory_and_an_empty_group() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity()
    place(policy, reps, "t1", "g")
    place(policy, reps, "t2", "g")
    assert policy.finish(b"t1") is True
    assert policy.finish(b"t1") is False
    assert b"g" in policy.groups
    assert policy.finish(b"t2") is True
    assert b"g" not in policy.groups and not policy.trajectories


def test_idle_groups_stop_counting_as_homes_but_trajectories_stay() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity(idle_s=100)

    def at(now: float, traj: str, group: str) -> Rep:
        chosen = policy.choose(traj.encode(), group.encode(), reps, lambda r: 0, first_of, now)
        return chosen

    at(0, "old-1", "old")  # a batch long gone, never finished: home on a
    assert policy.homes == {id(reps[0]): 1}
    assert at(50, "new-1", "new") is reps[1]  # a has a live group: b
    assert at(200, "late-1", "late") is reps[0]  # both groups idle 100 s: a again
    assert policy.homes == {id(reps[0]): 1}
    assert at(210, "old-1", "old") is reps[0]  # an expired group's trajectory stays put


def test_maps_are_bounded() -> None:
    reps = [Rep("a"), Rep("b")]
    policy: GroupAffinity[Rep] = GroupAffinity(max_entries=10)
    for i in range(100):
        place(policy, reps, f"t{i}", f"g{i}")
    assert len(policy.trajectories) == 10 and len(policy.groups) <= 10


# ---- through the pool ---------------------------------------------------------------------

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 5)]


def body(group: int, turns: int = 0) -> dict:
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"task {group}"},
    ]
    for t in range(turns):
        messages += [{"role": "assistant", "content": f"a{t}"}, {"role": "user", "content": "o"}]
    return {"model": "m", "messages": messages}


def test_pool_places_groups_together_and_keeps_trajectories() -> None:
    pool = Pool.from_urls("r", URLS, PoolPolicy(strategy="group_affinity"))
    first_turn = {}
    for i in range(4):  # 4 samples per group, groups interleaved
        for g in range(4):
            ctx = RequestContext(request_id="t", session_id=f"g{g}-s{i}")
            replica = pool.pick(body(g), ctx, set())
            replica.in_flight += 1
            first_turn[(g, i)] = replica
    assert Counter(r.base_url for r in first_turn.values()) == Counter({u: 4 for u in URLS})
    assert all(len({first_turn[(g, i)].base_url for i in range(4)}) == 1 for g in range(4))
    for (g, i), replica in first_turn.items():  # later turns: the same replica
        ctx = RequestContext(request_id="t", session_id=f"g{g}-s{i}")
        assert pool.pick(body(g, turns=2), ctx, set()) is replica
    assert pool.finish_session("g0-s0") is True
    assert pool.finish_session("nobody") is False


def test_group_key_ignores_the_session_and_later_turns() -> None:
    assert opening_key(body(1)) == opening_key(body(1, turns=3))
    assert opening_key(body(1)) != opening_key(body(2))
    reps = Pool.from_urls("r", URLS, PoolPolicy()).replicas
    assert rendezvous_best(b"k", reps) in reps
