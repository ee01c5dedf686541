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
