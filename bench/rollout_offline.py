"""The rollout workload replayed through the simulated engines in virtual time, with no HTTP and
no real time: the makespan's lower bound, where each policy's time goes, and a noise-free A/B
of placement rules before the real benchmark (bench/rollout.sh) measures them.

    python bench/rollout_offline.py [--replicas 4] [--prompts 16] [--group 8] [--turns 3]
                                    [--seed 0] [--kv-tokens 24000] [--policies a b ...]
                                    [--engine-priority none|turn|group|context]

The engines are bench/sim_engine.py's `Replica` (the same scheduler, cache and step costs),
stepped by an event loop instead of asyncio; the clients play bench/rollout_workload.py's
trajectories (the same texts, lengths and tool times). A policy sees what a router sees:
the request, the replicas' requests in flight, and its own memory. The peers' policies here
are models written from their documentation and `--help` (SMG 1.13 `cache_aware`: the
longest character-prefix match over what it routed to each worker, when it covers more
than `--cache-threshold` 0.3 of the request, else the worker with the smallest tree; the
spill gate by in-flight load); the real binaries are measured by bench/rollout.sh only.
Times are printed in the benchmark's real seconds (simulated seconds / --speed).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from rollout_workload import Shape, Trajectory, build
from sim_engine import (
    Params,
    Replica,
    SimRequest,
    block_hashes,
    render,
    tokens_of,
)

from backends.placement import GroupAffinity


@dataclass
class Ask:
    """What a router knows about one request."""

    session: str
    group_key: bytes  # the conversation's opening (system + first user turn)
    hashes: list[int]  # the prompt's chained block hashes (a stand-in for its text)
    prompt_tokens: int
    max_tokens: int
    turn: int


Policy = Callable[[Ask, list[int]], int]  # (request, in-flight per replica) -> replica


def _rank(key: bytes, i: int) -> bytes:
    return hashlib.blake2b(key + str(i).encode(), digest_size=8).digest()


class RoundRobin:
    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def __call__(self, ask: Ask, load: list[int]) -> int:
        self.i += 1
        return self.i % self.n


class LeastLoaded:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, ask: Ask, load: list[int]) -> int:
        low = min(load)
        return max((i for i in range(self.n) if load[i] == low), key=lambda i: _rank(b"", i))


class Sticky:
    """The gateway's sticky_least_loaded (move after 8)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.where: dict[str, int] = {}

    def __call__(self, ask: Ask, load: list[int]) -> int:
        low = min(load)
        known = self.where.get(ask.session)
        if known is not None and load[known] - low < 8:
            return known
        key = ask.session.encode()
        chosen = max((i for i in range(self.n) if load[i] == low), key=lambda i: _rank(key, i))
        self.where[ask.session] = chosen
        return chosen


class Groups:
    """The gateway's group_affinity (backends/placement.py) with a load function."""

    def __init__(self, n: int, **kw: Any) -> None:
        self.n = n
        self.ga: GroupAffinity[int] = GroupAffinity(**kw)
        self.clock = 0.0

    def __call__(self, ask: Ask, load: list[int]) -> int:
        return self.ga.choose(
            ask.session.encode(),
            ask.group_key,
            list(range(self.n)),
            lambda i: load[i],
            lambda key, cands: max(cands, key=lambda i: _rank(key, i)),
            self.clock,
        )


class SmgCacheAware:
    """A model of SMG 1.13 cache_aware on HTTP: per worker, the prefixes routed there; the
    best match above 30 % of the request wins unless the spill gate fires; else the worker
    with the least routed (the smallest tree). Matching is on block hashes, not characters."""

    def __init__(self, n: int, threshold: float = 0.3) -> None:
        self.n = n
        self.threshold = threshold
        self.trees: list[set[int]] = [set() for _ in range(n)]

    def __call__(self, ask: Ask, load: list[int]) -> int:
        mean = sum(load) / self.n
        best, best_len = 0, -1
        for i in range(self.n):
            m = 0
            for h in ask.hashes:
                if h not in self.trees[i]:
                    break
                m += 1
            if m > best_len or (m == best_len and load[i] < load[best]):
                best, best_len = i, m
        rate = best_len / max(1, len(ask.hashes))
        margin = min(64.0, max(4.0, 2 * mean**0.5))  # "the in-flight count's natural swing"
        if rate > self.threshold and not (load[best] > 1.5 * mean and load[best] - mean > margin):
            chosen = best
        elif rate > self.threshold:
            chosen = min(range(self.n), key=lambda i: load[i])
        else:
            chosen = min(range(self.n), key=lambda i: (len(self.trees[i]), load[i]))
        self.trees[chosen].update(ask.hashes)
        return chosen


class GroupsKV:
    """A rule tried and not adopted: group_affinity with a new group placed on the replica
    with the smallest live KV footprint (its groups' openings plus its trajectories' last
    prompt and answer) instead of the fewest live groups. docs/scaling.md has its figures."""

    def __init__(self, n: int, slack: int = 16, move: int = 8, by: str = "kv") -> None:
        self.n, self.slack, self.move, self.by = n, slack, move, by
        self.traj: dict[str, tuple[int, bytes, int]] = {}  # session -> replica, group, tokens
        self.groups: dict[bytes, tuple[int, int, int]] = {}  # group -> replica, members, opening
        self.kv = [0] * n

    def __call__(self, ask: Ask, load: list[int]) -> int:
        low = min(load)
        known = self.traj.get(ask.session)
        size = ask.prompt_tokens + ask.max_tokens
        if known is not None:
            r, g, before = known
            if load[r] - low < self.move:
                self.traj[ask.session] = (r, g, size)
                self.kv[r] += size - before
                return r
        home = self.groups.get(ask.group_key)
        if home is not None and load[home[0]] - low < self.slack:
            r = home[0]
            self.groups[ask.group_key] = (r, home[1] + 1, home[2])
            self.kv[r] += size - home[2]
        else:
            near = [i for i in range(self.n) if load[i] - low < self.move]
            if self.by == "kv":
                r = min(near, key=lambda i: (self.kv[i], load[i]))
            else:
                r = min(near, key=lambda i: (load[i],))
            self.groups[ask.group_key] = (r, 1, ask.prompt_tokens)
            self.kv[r] += size
        self.traj[ask.session] = (r, ask.group_key, size)
        return r


class CappedGroups(Groups):
    """An experiment: group_affinity, and at most `cap` live trajectories a replica (a new
    trajectory waits in the router until one ends), to keep the working set inside KV."""

    def __init__(self, n: int, cap: int = 24, **kw: Any) -> None:
        super().__init__(n, **kw)
        self.cap = cap
        self.live = [0] * n
        self.where: dict[str, int] = {}

    def __call__(self, ask: Ask, load: list[int]) -> int | None:  # type: ignore[override]
        known = self.where.get(ask.session)
        if known is not None:
            return known
        room = [i for i in range(self.n) if self.live[i] < self.cap]
        if not room:
            return None

        def top(key: bytes, cands: Sequence[int]) -> int:
            return max(cands, key=lambda i: _rank(key, i))

        r = self.ga.choose(
            ask.session.encode(), ask.group_key, room, lambda i: load[i], top, self.clock
        )
        self.where[ask.session] = r
        self.live[r] += 1
        return r

    def done(self, session: str) -> None:
        self.live[self.where[session]] -= 1


class OracleGroups:
    """Not a router: knows every trajectory's future (its answers' lengths and tool times)
    and places whole groups by longest-processing-time-first on their decode tokens, so each
    replica gets an equal share of the work. What placement with perfect foresight buys."""

    def __init__(self, n: int, shape: Shape | None = None) -> None:
        assert shape is not None
        self.n = n
        work: dict[int, int] = {}
        for t in build(shape):
            work[t.group] = work.get(t.group, 0) + sum(t.outputs)
        total = [0] * n
        self.home: dict[int, int] = {}
        for g in sorted(work, key=lambda g: -work[g]):
            r = min(range(n), key=lambda i: total[i])
            self.home[g] = r
            total[r] += work[g]

    def __call__(self, ask: Ask, load: list[int]) -> int:
        group = int(ask.session.split("-p")[1].split("-")[0])
        return self.home[group]


POLICIES: dict[str, Callable[[int], Policy]] = {
    "group_kv_footprint": GroupsKV,
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "sticky_least_loaded": Sticky,
    "group_affinity": Groups,
    "smg_cache_aware": SmgCacheAware,
    "oracle_groups": OracleGroups,  # type: ignore[dict-item]
    "capped_groups_16": lambda n: CappedGroups(n, cap=16),
    "capped_groups_24": lambda n: CappedGroups(n, cap=24),
}


@dataclass
class Outcome:
    makespan_s: float  # benchmark seconds (simulated / speed)
    hit_rate: float
    busiest_share: float
    evicted_blocks: int
    queue_s: float  # mean seconds a request waited before admission (benchmark seconds)
    per_replica: list[dict[str, Any]] = field(default_factory=list)


def opening(messages: list[dict[str, Any]]) -> bytes:
    return hashlib.blake2b(render(messages[:2]).encode(), digest_size=16).digest()


# What a router could send as vLLM's `priority` (lower first) when the engines run
# `--scheduling-policy priority`; tried in this replay, not adopted (docs/performance.md).
PRIORITIES: dict[str, Callable[[Ask, dict[bytes, int]], float]] = {
    "none": lambda ask, groups: 0.0,
    "turn": lambda ask, groups: -ask.turn,  # later turns of a trajectory first
    "group": lambda ask, groups: groups.setdefault(ask.group_key, len(groups)),  # older groups
    "context": lambda ask, groups: -ask.prompt_tokens,  # the longest histories first
}


def replay(
    shape: Shape, params: Params, replicas: int, policy: Policy, priority_rule: str = "none"
) -> Outcome:
    """Play every trajectory through `policy` and the engines in virtual time."""
    priority = PRIORITIES[priority_rule]
    groups_seen: dict[bytes, int] = {}
    trajs = build(shape)
    engines = [Replica(i, params) for i in range(replicas)]
    load = [0] * replicas
    plans: dict[int, tuple[list[tuple[SimRequest, int]], list[SimRequest]]] = {}
    heap: list[tuple[float, int, str, int]] = []  # (time, seq, kind, index)
    seq = 0
    messages = [list(t.messages) for t in trajs]
    turn = [0] * len(trajs)
    owner: dict[int, tuple[int, int]] = {}  # id(request) -> (trajectory, replica)
    admitted_at: dict[int, float] = {}
    held: list[int] = []  # trajectories a policy holds back (returned None)
    waits: list[float] = []
    finished = 0.0

    def push(t: float, kind: str, index: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, index))

    def start_step(r: int, now: float) -> None:
        e = engines[r]
        e.clock = now
        before = {id(x) for x in e.running}
        e._schedule()
        for x in e.running:
            if id(x) not in before:
                waits.append(now - admitted_at.pop(id(x)))
        if not e.running:
            return
        seconds, prefills, decodes = e._plan_step()
        e.busy_s += seconds
        plans[r] = (prefills, decodes)
        push(now + seconds, "step", r)

    for i in range(len(trajs)):
        push(0.0, "turn", i)
    while heap:
        now, _, kind, index = heapq.heappop(heap)
        if kind == "turn":
            traj: Trajectory = trajs[index]
            t = turn[index]
            text = render(messages[index])
            hashes = block_hashes(text)
            ask = Ask(traj.session, opening(messages[index]), hashes, tokens_of(text),
                      traj.outputs[t], t)  # fmt: skip
            if isinstance(policy, Groups):  # and CappedGroups
                policy.clock = now / shape.speed
            r = policy(ask, load)
            if r is None:  # the router holds it back until a trajectory ends
                held.append(index)
                continue
            load[r] += 1
            req = SimRequest(messages[index], text, hashes, max(1, tokens_of(text)),
                             traj.outputs[t], traj.seeds[t], False, None, now)  # type: ignore[arg-type]  # fmt: skip
            req.priority = priority(ask, groups_seen)
            owner[id(req)] = (index, r)
            admitted_at[id(req)] = now
            idle = not engines[r].running and r not in plans
            engines[r].submit(req)
            if idle:
                start_step(r, now)
            continue
        # a step ended on replica `index`
        e = engines[index]
        prefills, decodes = plans.pop(index)
        running = list(e.running)
        for req, n in prefills:
            req.prefill_left -= n
            if not req.prefill_left:
                e._token(req)
        for req in decodes:
            e._token(req)
        done = [x for x in running if x.generated >= x.max_tokens]
        if done:
            e.running = [x for x in e.running if x.generated < x.max_tokens]
            for req in done:
                e._finish(req)
                ti, r = owner.pop(id(req))
                load[r] -= 1
                t = turn[ti]
                messages[ti].append({"role": "assistant", "content": req.text_out})
                turn[ti] += 1
                if turn[ti] < shape.turns:
                    messages[ti].append({"role": "user", "content": trajs[ti].tools[t]})
                    push(now + trajs[ti].tool_s[t], "turn", ti)
                else:
                    finished = max(finished, now)
                    if hasattr(policy, "done"):
                        policy.done(trajs[ti].session)
                    for waiting in held:
                        push(now, "turn", waiting)
                    held.clear()
        if e.waiting or e.running:
            start_step(index, now)
    served = [e.served for e in engines]
    prompt = sum(e.prompt_tokens for e in engines)
    return Outcome(
        makespan_s=finished / shape.speed,
        hit_rate=sum(e.cached_tokens for e in engines) / prompt if prompt else 0.0,
        busiest_share=max(served) / sum(served),
        evicted_blocks=sum(e.evicted for e in engines),
        queue_s=statistics.mean(waits) / shape.speed if waits else 0.0,
        per_replica=[e.stats() for e in engines],
    )


def lower_bound(shape: Shape, params: Params, replicas: int) -> dict[str, float]:
    """Benchmark seconds no router can beat on these engines.

    * `critical_path`: the longest trajectory alone: its answers decoded at batch 1, its
      tools run, and only tokens no one could have cached (each later turn's tool result)
      prefilled; nothing queued.
    * `work`: every replica's engine time if the load split perfectly: all decode tokens
      at the per-sequence cost, each group's prompt prefilled once and every tool result
      once, divided over the replicas (the per-step fixed cost shared as if every replica
      ran its steps at the batch cap).
    """
    trajs = build(shape)
    paths = []
    for traj in trajs:
        # a turn's first token comes from its prefill step (a fixed step cost plus the
        # uncached tokens: the tool result, or at least one); every later token from a
        # decode step holding at least this sequence
        ms = sum(params.step_ms + (n - 1) * (params.step_ms + params.seq_ms)
                 for n in traj.outputs)  # fmt: skip
        ms += params.prefill_ms * (1 + sum(tokens_of(x) for x in traj.tools))
        paths.append(ms / 1000 + sum(traj.tool_s))
    groups = {}
    for traj in trajs:
        groups[traj.group] = tokens_of(render(traj.messages))
    decode = sum(sum(t.outputs) for t in trajs)
    prefill = sum(groups.values()) + sum(sum(tokens_of(x) for x in t.tools) for t in trajs)
    work = (decode * (params.seq_ms + params.step_ms / params.max_batch)
            + prefill * params.prefill_ms) / 1000 / replicas  # fmt: skip
    return {"critical_path": max(paths) / shape.speed, "work": work / shape.speed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--seed", type=int, nargs="+", default=[0])
    p.add_argument("--kv-tokens", type=int, default=24_000)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--speed", type=float, default=5.0)
    p.add_argument("--policies", nargs="+", default=list(POLICIES))
    p.add_argument(
        "--engine-priority", choices=list(PRIORITIES), default="none",
        help="engines admit by a router-given priority (vLLM --scheduling-policy priority)",
    )  # fmt: skip
    a = p.parse_args()
    params = Params(
        kv_tokens=a.kv_tokens, max_batch=a.max_batch, speed=a.speed,
        priority_scheduling=a.engine_priority != "none",
    )  # fmt: skip
    for seed in a.seed:
        shape = Shape(prompts=a.prompts, group=a.group, turns=a.turns, seed=seed, speed=a.speed)
        lb = lower_bound(shape, params, a.replicas)
        print(f"R {a.replicas} P {a.prompts} G {a.group} T {a.turns} seed {seed} "
              f"KV {a.kv_tokens}: lower bound {max(lb.values()):.2f} s "
              f"(critical path {lb['critical_path']:.2f}, work {lb['work']:.2f})")  # fmt: skip
        for name in a.policies:
            make = POLICIES[name]
            policy = make(a.replicas, shape) if make is OracleGroups else make(a.replicas)
            out = replay(shape, params, a.replicas, policy, a.engine_priority)
            peak = max(r["peak_waiting"] for r in out.per_replica)
            print(f"  {name:22s} makespan {out.makespan_s:5.2f} s  hits {out.hit_rate:6.1%}  "
                  f"busiest {out.busiest_share:5.1%}  evicted {out.evicted_blocks:6d}  "
                  f"wait {out.queue_s * 1000:6.1f} ms  peak queue {peak}")  # fmt: skip


if __name__ == "__main__":
    main()
