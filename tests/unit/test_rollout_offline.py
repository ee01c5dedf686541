"""The rollout benchmark's virtual-time replay (bench/rollout_offline.py): the lower bound
holds for every policy, and the replay is deterministic (no wall clock in it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from rollout_offline import POLICIES, OracleGroups, lower_bound, replay
from rollout_workload import Shape
from sim_engine import Params

SHAPE = Shape(prompts=3, group=3, turns=2, seed=7, prompt_tokens=(100, 600),
              tool_tokens=(20, 200), output_tokens=(10, 60), system_tokens=300)  # fmt: skip
PARAMS = Params(kv_tokens=6_000)


def make(name: str, replicas: int):  # type: ignore[no-untyped-def]
    cls = POLICIES[name]
    return cls(replicas, SHAPE) if cls is OracleGroups else cls(replicas)


def test_no_policy_beats_the_lower_bound() -> None:
    bound = max(lower_bound(SHAPE, PARAMS, 2).values())
    for name in POLICIES:
        out = replay(SHAPE, PARAMS, 2, make(name, 2))
        assert out.makespan_s >= bound, name
        assert 0.0 < out.hit_rate < 1.0


def test_the_replay_is_deterministic() -> None:
    a = replay(SHAPE, PARAMS, 2, make("group_affinity", 2))
    b = replay(SHAPE, PARAMS, 2, make("group_affinity", 2))
    assert (a.makespan_s, a.hit_rate, a.evicted_blocks) == (
        b.makespan_s,
        b.hit_rate,
        b.evicted_blocks,
    )


def test_group_affinity_keeps_groups_whole_and_shares_their_prompt() -> None:
    grouped = replay(SHAPE, PARAMS, 3, make("group_affinity", 3))
    spread = replay(SHAPE, PARAMS, 3, make("round_robin", 3))
    assert grouped.hit_rate > spread.hit_rate
    assert [r["served"] for r in grouped.per_replica] == [6, 6, 6]  # 3 groups × 3 × 2 turns


def test_priority_scheduling_admits_the_lowest_priority_first() -> None:
    from sim_engine import Replica, SimRequest

    engine = Replica(0, Params(kv_tokens=6_000, max_batch=1, priority_scheduling=True))
    for priority in (2.0, 0.0, 1.0, 0.0):
        request = SimRequest([], "x", [], 1, 1, 0, False, None, 0.0)  # type: ignore[arg-type]
        request.priority = priority
        engine.submit(request)
    engine._schedule()
    assert [r.priority for r in engine.running] == [0.0]
    assert [r.priority for r in engine.waiting] == [2.0, 1.0, 0.0]  # ties: arrival order


def test_engine_priorities_keep_the_lower_bound() -> None:
    bound = max(lower_bound(SHAPE, PARAMS, 2).values())
    params = Params(kv_tokens=6_000, priority_scheduling=True)
    for rule in ("turn", "group", "context"):
        out = replay(SHAPE, params, 2, make("group_affinity", 2), rule)
        assert out.makespan_s >= bound, rule
