"""Group-aware placement of rollouts on replicas (`strategy: group_affinity`): pure logic.

Two keys per request: the **trajectory** (the client's session id, else the conversation's
opening) and the **group** (the opening alone: model, system prompt, first user turn; the G
samples of a GRPO prompt share it). Rules, each measured in docs/scaling.md:

1. A known trajectory stays on its replica (its history is in that replica's prefix cache),
   unless that replica is `move_after` requests busier than the least loaded one.
2. A new trajectory joins its group's replica (the shared prompt is cached there and its
   blocks are shared by the running siblings) while that replica is less than
   `group_slack` requests busier than the least loaded one.
3. A new group (or one whose replica is too busy) goes to the replica that is home to the
   fewest live groups (a group is live while one of its trajectories sent a request in the
   last `idle_s` seconds), among those within `move_after` requests of the least loaded
   (ties: fewer requests in flight, then the rendezvous order of the group key, so gateway
   processes agree). Counting groups, not requests, keeps groups whole: during a batch's
   burst the siblings of a group arrive spread out, and request counts would split it.
4. `finish(trajectory)` forgets a trajectory, and its group when the group has none left.

No I/O: the pool passes candidates, their load and the time; the maps are bounded LRUs,
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
    group_slack: int = 16
    move_after: int = 8
    idle_s: float = 120.0
    max_entries: int = MAX_ENTRIES
    trajectories: OrderedDict[bytes, tuple[R, bytes]] = field(default_factory=OrderedDict)
    groups: OrderedDict[bytes, tuple[R, int]] = field(default_factory=OrderedDict)
    homes: dict[int, int] = field(default_factory=dict)  # id(replica) -> live groups there
    seen: OrderedDict[bytes, float] = field(default_factory=OrderedDict)  # group -> last request

    def choose(
        self,
        trajectory: bytes,
        group: bytes,
        candidates: Sequence[R],
        load: Callable[[R], int],
        tie_break: Callable[[bytes, Sequence[R]], R],
        now: float = 0.0,
    ) -> R:
        self._expire(now)
        if group in self.groups:
            self.seen[group] = now
            self.seen.move_to_end(group)
        low = min(load(r) for r in candidates)
        known = self.trajectories.get(trajectory)
        if known is not None:
            replica = known[0]
            if replica in candidates and load(replica) - low < self.move_after:
                self.trajectories.move_to_end(trajectory)
                return replica
            self._leave(trajectory)  # moves: a cache miss beats a queue
        home = self.groups.get(group)
        if home is not None and home[0] in candidates and load(home[0]) - low < self.group_slack:
            chosen = home[0]
        else:
            near = [r for r in candidates if load(r) - low < self.move_after]
            fewest = min((self.homes.get(id(r), 0), load(r)) for r in near)
            chosen = tie_break(
                group, [r for r in near if (self.homes.get(id(r), 0), load(r)) == fewest]
            )
        self._join(trajectory, group, chosen)
        self.seen[group] = now
        self.seen.move_to_end(group)
        return chosen

    def _expire(self, now: float) -> None:
        """Groups idle for `idle_s` stop counting as homes (their trajectories stay sticky)."""
        while self.seen:
            group, last = next(iter(self.seen.items()))
            if now - last < self.idle_s:
                return
            home = self.groups.get(group)
            if home is not None:
                self._set_group(group, home[0], 0)
            else:
                del self.seen[group]

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
        if home is not None and home[0] is replica:
            self._set_group(group, replica, home[1] + 1)
        else:
            if home is not None:
                self._set_group(group, home[0], 0)
            self._set_group(group, replica, 1)
        self.groups.move_to_end(group)
        while len(self.trajectories) > self.max_entries:
            self._leave(next(iter(self.trajectories)))
        while len(self.groups) > self.max_entries:
            oldest, (replica, _) = next(iter(self.groups.items()))
            self._set_group(oldest, replica, 0)

    def _set_group(self, group: bytes, replica: R, members: int) -> None:
        """A group's member count on its replica (0: gone), and the replica's home count."""
        before = self.groups[group][1] if group in self.groups else 0
        if members:
            self.groups[group] = (replica, members)
        else:
            self.groups.pop(group, None)
            self.seen.pop(group, None)
        change = (members >= 1) - (before >= 1)
        if change:
            count = self.homes.get(id(replica), 0) + change
            if count > 0:
                self.homes[id(replica)] = count
            else:
                self.homes.pop(id(replica), None)

    def _leave(self, trajectory: bytes) -> None:
        replica, group = self.trajectories.pop(trajectory)
        home = self.groups.get(group)
        if home is not None and home[0] is replica:
            self._set_group(group, replica, home[1] - 1)
