"""When the cyclic garbage collector runs in a serving process (`gym-gateway serve`).

No request path makes reference cycles (tests/unit/test_no_reference_cycles.py), so Python's
automatic young collections free nothing here: each only walks the live objects of the
requests in flight (about 125 per open stream) and moves them one generation up. With 2,000
slow streams starting that was five pauses of 10-25 ms per burst, ~100 ms in all, each one
landing on the first byte of every stream that started meanwhile (docs/performance.md, "The
collector's pauses").

So automatic collection is off, and a timer on the event loop does two things instead:

* every `check_s` it freezes what was allocated since (`gc.freeze()`: it moves the young
  objects to the permanent generation without walking them, in constant time). A frozen object
  is still freed by reference counting the moment its last reference goes, so memory follows
  the live requests as before;
* a **full pass** (unfreeze, collect, freeze again: the one place cycles are found and freed)
  when nothing is in flight and much was frozen since the last pass (then it costs ~25 ms
  and delays no one; at most every `idle_pass_s`), when the process's resident memory
  doubled since the last pass and grew by `min_growth_bytes` (so cyclic garbage, say from an
  error path, cannot hold more memory than the rest of the process; amortized like the
  collector's own rule for its oldest generation: a pass walks what is live, and comes after
  as much growth), and at the latest `max_pass_s` after the last pass (a bound on how long
  garbage lives).

Python counts container objects, not bytes, and the only exact count of frozen ones walks
them all (`gc.get_freeze_count()`): the memory rule reads the resident size instead, one small
read of /proc a check.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

log = logging.getLogger("gateway.gc")

CHECK_S = 0.25
IDLE_PASS_S = 10.0
# new container objects since the last pass below which an idle pass is not worth its
# ~25 ms (a idle process's health checks and metrics); the other two rules still apply
IDLE_PASS_MIN_NEW = 10_000
MAX_PASS_S = 300.0
# resident growth since the last pass that, with a doubling, forces one even under load
MIN_GROWTH_BYTES = 256 * 2**20

_prepared = False


class Totals:
    """This process's full passes so far (for /metrics): a count of objects freed that keeps
    growing means some path makes reference cycles."""

    passes = 0
    seconds = 0.0
    freed = 0


TOTALS = Totals()


def prepare() -> None:
    """Once the app is built: a full collection, everything start-up made frozen (out of every
    later pass but the full ones), automatic collection off; `schedule()` runs the rest."""
    global _prepared
    gc.collect()
    gc.freeze()
    gc.disable()
    _prepared = True


class Collector:
    """The two rules of the module docstring; `tick()` is one check (the timer calls it)."""

    def __init__(
        self,
        busy: Callable[[], bool],
        idle_pass_s: float = IDLE_PASS_S,
        max_pass_s: float = MAX_PASS_S,
        min_growth_bytes: int = MIN_GROWTH_BYTES,
    ) -> None:
        self.busy = busy
        self.idle_pass_s = idle_pass_s
        self.max_pass_s = max_pass_s
        self.min_growth_bytes = min_growth_bytes
        self.last_pass = time.monotonic()
        self.rss_after_pass = resident_bytes()
        self.frozen_since_pass = 0  # young objects frozen since (net allocations; a guide)
        self.passes = 0

    def tick(self) -> bool:
        """Freeze the young objects, or make a full pass if one is due; True if it made one."""
        self.frozen_since_pass += gc.get_count()[0]
        gc.freeze()  # also sets the young count back to 0
        if not self.frozen_since_pass:
            return False  # nothing new since the last pass: nothing a pass could find
        since = time.monotonic() - self.last_pass
        rss = resident_bytes()
        if (
            (
                since >= self.idle_pass_s
                and self.frozen_since_pass >= IDLE_PASS_MIN_NEW
                and not self.busy()
            )
            or since >= self.max_pass_s
            or rss > max(2 * self.rss_after_pass, self.rss_after_pass + self.min_growth_bytes)
        ):
            self.full_pass()
            return True
        return False

    def full_pass(self) -> int:
        """Every object walked once, cycles freed; returns how many objects were freed."""
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        took = time.perf_counter() - started
        self.passes += 1
        TOTALS.passes += 1
        TOTALS.seconds += took
        TOTALS.freed += freed
        self.last_pass = time.monotonic()
        self.rss_after_pass = resident_bytes()
        self.frozen_since_pass = 0
        log.debug("full collection: %d objects freed in %.1f ms", freed, took * 1000)
        return freed


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory (Linux); 0 where /proc is not there (no memory rule)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@asynccontextmanager
async def schedule(busy: Callable[[], bool]) -> AsyncIterator[Collector | None]:
    """While serving: the timer, if `prepare()` turned automatic collection off in this
    process (elsewhere, in tests say, Python's own schedule stays and this does nothing)."""
    if not _prepared or gc.isenabled():
        yield None
        return
    collector = Collector(busy, IDLE_PASS_S, MAX_PASS_S)

    async def run() -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            collector.tick()

    task = asyncio.create_task(run())
    try:
        yield collector
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
