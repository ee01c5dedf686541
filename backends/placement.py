"""Group-aware placement of rollouts on replicas (`strategy: group_affinity`): pure logic.

Two keys per request: the **trajectory** (the client's session id, else the conversation's
opening) and the **group** (the opening alone: model, system prompt, first user turn; the G
samples of a GRPO prompt share it). Rules, each measured in docs/scaling.md:

1. A known trajectory stays on its replica (its history is in that replica's prefix cache),
   unless that replica is `move_after` requests busier than the least loaded one.
2. A new trajectory joins its group's replica (the shared prompt is cached there and its
   blocks are shared by the running siblings) while that replica is at most `group_slack`
   requests busier than the least loaded one.
3. Otherwise it goes to the least loaded replica (ties: rendezvous order of the group key,
   so gateway processes agree), which becomes the group's replica.
4. `finish(trajectory)` forgets a trajectory and its group when the group has none left.

No I/O and no clock: the pool passes candidates and their load; the maps are bounded LRUs,
so a store shared between gateway processes can replace them behind the same methods.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")

MAX_ENTRIES = 100_000


@dataclass
class GroupAffinity(Generic[R]):
    group_slack: int = 4
    move_after: int = 8
    max_entries: int = MAX_ENTRIES
    trajectories: OrderedDict[bytes, tuple[R, bytes]] = field(default_factory=OrderedDict)
    groups: OrderedDict[bytes, tuple[R, int]] = field(default_factory=OrderedDict)

    def choose(
        self,
        trajectory: bytes,
        group: bytes,
        candidates: Sequence[R],
        load: Callable[[R], int],
        tie_break: Callable[[bytes, Sequence[R]], R],
    ) -> R:
        low = min(load(r) for r in candidates)
        known = self.trajectories.get(trajectory)
        if known is not None:
            replica = known[0]
            if replica in candidates and load(replica) - low < self.move_after:
                self.trajectories.move_to_end(trajectory)
                return replica
            self._leave(trajectory)  # moves: a cache miss beats a queue
        home = self.groups.get(group)
        if home is not None and home[0] in candidates and load(home[0]) - low <= self.group_slack:
            chosen = home[0]
        else:
            chosen = tie_break(group, [r for r in candidates if load(r) == low])
        self._join(trajectory, group, chosen)
        return chosen

    def finish(self, trajectory: bytes) -> bool:
        """Forget a trajectory (its rollout ended); False when it was not known."""
        if trajectory not in self.trajectories:
            return False
        self._leave(trajectory)
        return True

    def replica_of(self, trajectory: bytes) -> R | None:
        known = self.trajectories.get(trajectory)
        return known[0] if known else None

    def _join(self, trajectory: bytes, group: bytes, replica: R) -> None:
        self.trajectories[trajectory] = (replica, group)
        home = self.groups.get(group)
        count = home[1] if home is not None and home[0] is replica else 0
        self.groups[group] = (replica, count + 1)
        self.groups.move_to_end(group)
        while len(self.trajectories) > self.max_entries:
            self._leave(next(iter(self.trajectories)))
        while len(self.groups) > self.max_entries:
            self.groups.popitem(last=False)

    def _leave(self, trajectory: bytes) -> None:
        replica, group = self.trajectories.pop(trajectory)
        home = self.groups.get(group)
        if home is not None and home[0] is replica:
            if home[1] <= 1:
                del self.groups[group]
            else:
                self.groups[group] = (replica, home[1] - 1)
