"""gateway/collector.py: young objects are frozen, not walked; cycles are freed by full passes,
which come when idle, when memory doubled, or at the latest after max_pass_s."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import collector
from gateway.collector import Collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-object cycle nothing else references: only a collection frees it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def serving_gc() -> Iterator[None]:
    """The process as `gym-gateway serve` leaves it; pytest's own schedule restored after."""
    collector.prepare()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()
        collector._prepared = False


def test_prepare_turns_automatic_collection_off(serving_gc: None) -> None:
    assert not gc.isenabled()
    ref = cycle()
    for _ in range(3 * gc.get_threshold()[0]):  # what would have started a young collection
        Node()
    assert ref() is not None


def test_tick_freezes_without_collecting(serving_gc: None) -> None:
    busy = Collector(lambda: True, idle_pass_s=0.0)
    ref = cycle()
    kept = [Node() for _ in range(100)]
    before = gc.get_freeze_count()
    assert gc.get_count()[0] > 0
    assert busy.tick() is False  # busy, the pass not yet due, memory as it was
    assert gc.get_count()[0] == 0
    assert gc.get_freeze_count() >= before + len(kept)
    assert ref() is not None and busy.passes == 0
    # frozen objects still go the moment their last reference does
    probe = weakref.ref(kept[0])
    del kept
    assert probe() is None


def test_idle_pass_frees_cycles(serving_gc: None) -> None:
    idle = Collector(lambda: False, idle_pass_s=0.0)
    ref = cycle()
    assert idle.tick() is False  # too little new to be worth a pass
    new = [Node() for _ in range(collector.IDLE_PASS_MIN_NEW)]
    assert idle.tick() is True
    assert ref() is None and idle.passes == 1
    assert idle.tick() is False  # nothing much new since the pass: none again
    del new


def test_idle_pass_waits_its_interval(serving_gc: None) -> None:
    idle = Collector(lambda: False, idle_pass_s=3600.0)
    ref = cycle()
    new = [Node() for _ in range(collector.IDLE_PASS_MIN_NEW)]
    assert idle.tick() is False and ref() is not None
    del new


def test_totals_count_passes_their_time_and_what_they_freed(serving_gc: None) -> None:
    totals = collector.TOTALS
    passes, seconds, freed = totals.passes, totals.seconds, totals.freed
    cycle()
    Collector(lambda: True).full_pass()
    assert totals.passes == passes + 1
    assert totals.seconds > seconds and totals.freed >= freed + 2


def test_pass_at_the_latest_after_max_pass_s_even_when_busy(serving_gc: None) -> None:
    busy = Collector(lambda: True, idle_pass_s=0.0, max_pass_s=0.0)
    ref = cycle()
    assert busy.tick() is True
    assert ref() is None


def test_pass_when_memory_doubled_even_when_busy(serving_gc: None) -> None:
    busy = Collector(lambda: True, min_growth_bytes=0)
    ref = cycle()
    busy.rss_after_pass = 1  # as if the process had been tiny at the last pass
    assert busy.tick() is True
    assert ref() is None
    assert busy.rss_after_pass == collector.resident_bytes() > 1


def test_resident_bytes_reads_this_process() -> None:
    assert collector.resident_bytes() > 10 * 2**20


async def test_schedule_runs_only_in_a_prepared_process(
    serving_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "CHECK_S", 0.01)
    monkeypatch.setattr(collector, "IDLE_PASS_S", 0.0)
    async with collector.schedule(lambda: False) as running:
        assert running is not None
        ref = cycle()
        new = [Node() for _ in range(collector.IDLE_PASS_MIN_NEW)]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ref() is None:
                break
        assert ref() is None and running.passes >= 1
        del new
    gc.enable()  # as in a test process, where Python's schedule stays
    async with collector.schedule(lambda: False) as running:
        assert running is None
