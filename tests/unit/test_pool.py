"""Replica selection, health (circuit per replica) and backpressure."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from backends.pool import UNREACHABLE, Pool, conversation_key, rendezvous_rank
from backends.retry import backoff_delay, retry_after_seconds
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.policies import PoolPolicy, RetryPolicy

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 5)]


def pool(strategy: str = "sticky_least_loaded", urls: list[str] = URLS, **kw) -> Pool:
    return Pool.from_urls("r", urls, PoolPolicy(strategy=strategy, **kw))


def rollout(i: int, turns: int) -> list[dict]:
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"task {i}"},
    ]
    for t in range(turns):
        messages += [
            {"role": "assistant", "content": f"step {t}"},
            {"role": "user", "content": f"obs {t}"},
        ]
    return messages


def ctx(session: str | None = None) -> RequestContext:
    return RequestContext(request_id="t", session_id=session)


def test_key_is_stable_across_turns_and_distinct_across_rollouts() -> None:
    keys = {conversation_key({"model": "m", "messages": rollout(1, t)}, ctx()) for t in range(5)}
    assert len(keys) == 1
    assert conversation_key({"model": "m", "messages": rollout(2, 0)}, ctx()) not in keys
    assert conversation_key({"messages": rollout(1, 0)}, ctx("sess-9")) == b"sess-9"
    # Responses-shaped bodies too
    first = {"model": "m", "instructions": "sys", "input": [{"role": "user", "content": "q"}]}
    later = {**first, "input": [*first["input"], {"type": "function_call_output", "output": "x"}]}
    assert conversation_key(first, ctx()) == conversation_key(later, ctx())


@pytest.mark.parametrize("strategy", ["sticky_least_loaded", "consistent_hash"])
def test_same_rollout_same_replica_across_turns(strategy: str) -> None:
    p = pool(strategy)
    for i in range(50):
        chosen = {
            p.pick({"model": "m", "messages": rollout(i, t)}, ctx(), set()).base_url
            for t in range(6)
        }
        assert len(chosen) == 1


def test_two_gateway_processes_agree_with_consistent_hash() -> None:
    a, b = pool("consistent_hash"), pool("consistent_hash")
    for i in range(200):
        body = {"model": "m", "messages": rollout(i, 0)}
        assert a.pick(body, ctx(), set()).base_url == b.pick(body, ctx(), set()).base_url


def test_removing_a_replica_moves_only_its_keys() -> None:
    full, smaller = pool("consistent_hash"), pool("consistent_hash", urls=URLS[:3])
    moved = 0
    for i in range(2000):
        body = {"model": "m", "messages": rollout(i, 0)}
        before = full.pick(body, ctx(), set()).base_url
        after = smaller.pick(body, ctx(), set()).base_url
        if before != URLS[3]:
            assert before == after
        else:
            moved += 1
    assert 350 < moved < 650  # about a quarter of the keys lived on the removed replica


def test_rendezvous_spreads_keys_evenly() -> None:
    p = pool("consistent_hash")
    counts = Counter(rendezvous_rank(str(i).encode(), p.replicas)[0].base_url for i in range(4000))
    assert min(counts.values()) > 800


def test_least_loaded_balances() -> None:
    p = pool("least_loaded")
    for _ in range(40):
        p.pick({}, ctx(), set()).in_flight += 1
    assert {r.in_flight for r in p.replicas} == {10}


def test_sticky_new_conversations_go_to_least_loaded() -> None:
    p = pool()
    p.replicas[0].in_flight = 5
    p.replicas[1].in_flight = 5
    p.replicas[2].in_flight = 5
    chosen = p.pick({"model": "m", "messages": rollout(99, 0)}, ctx(), set())
    assert chosen is p.replicas[3]


def test_round_robin() -> None:
    p = pool("round_robin")
    picks = [p.pick({}, ctx(), set()).base_url for _ in range(8)]
    assert Counter(picks) == Counter({u: 2 for u in URLS})


def test_failures_eject_with_backoff_and_probe_closes() -> None:
    p = pool("least_loaded", health={"failures_to_eject": 2, "eject_s": 0.05, "max_eject_s": 1})
    bad = p.replicas[0]
    p.record_failure(bad, "refused")
    assert bad.state(time.monotonic()) == "healthy"
    p.record_failure(bad, "refused")
    assert bad.state(time.monotonic()) == "ejected"
    assert all(p.pick({}, ctx(), set()) is not bad for _ in range(20))
    time.sleep(0.06)
    # half-open: exactly one probe may go; a failed probe doubles the ejection
    bad_only = pool("least_loaded", urls=[bad.base_url], health={"eject_s": 0.05})
    r = bad_only.replicas[0]
    for _ in range(3):
        bad_only.record_failure(r, "refused")
    with pytest.raises(GatewayError) as info:
        bad_only.pick({}, ctx(), set())
    assert info.value.status == 503 and info.value.headers["retry-after"] == "1"
    time.sleep(0.06)
    assert bad_only.pick({}, ctx(), set()) is r and r.probing
    with pytest.raises(GatewayError):  # while the probe is out, fail fast
        bad_only.pick({}, ctx(), set())
    bad_only.record_success(r)
    assert r.state(time.monotonic()) == "healthy"


def test_avoid_prefers_other_replicas_then_falls_back() -> None:
    p = pool("least_loaded", urls=URLS[:2])
    first = p.pick({}, ctx(), set())
    assert p.pick({}, ctx(), {id(first)}) is not first
    single = pool("least_loaded", urls=URLS[:1])
    only = single.replicas[0]
    assert single.pick({}, ctx(), {id(only)}) is only


async def test_backpressure_queue_then_429() -> None:
    p = pool(max_concurrency=2, max_queue=1, queue_timeout_s=0.2)
    await p.admit()
    await p.admit()
    waiter = asyncio.create_task(p.admit())
    await asyncio.sleep(0.01)
    assert p.queue_depth() == 1
    with pytest.raises(GatewayError) as info:
        await p.admit()  # queue full
    assert info.value.status == 429 and info.value.headers["retry-after"] == "1"
    p.release()
    await asyncio.wait_for(waiter, 1)
    assert p.in_flight == 2
    with pytest.raises(GatewayError) as timed_out:
        await p.admit()  # waits 0.2 s, nothing frees
    assert timed_out.value.code == "gateway_overloaded"
    p.release()
    p.release()
    assert p.in_flight == 0


async def test_cancelled_waiter_hands_its_slot_on() -> None:
    p = pool(max_concurrency=1, max_queue=5, queue_timeout_s=5)
    await p.admit()
    a = asyncio.create_task(p.admit())
    b = asyncio.create_task(p.admit())
    await asyncio.sleep(0.01)
    a.cancel()
    await asyncio.sleep(0.01)
    p.release()
    await asyncio.wait_for(b, 1)
    assert p.in_flight == 1


def test_retry_timing() -> None:
    policy = RetryPolicy(backoff_s=0.2, max_backoff_s=1.0)
    assert 0.1 <= backoff_delay(policy, 0) <= 0.2
    assert 0.5 <= backoff_delay(policy, 5) <= 1.0
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


def _pool_with_two(eject_s: float = 1.0) -> Pool:
    policy = PoolPolicy(
        base_urls=["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"],
        health={"eject_s": eject_s, "max_eject_s": 30.0, "failures_to_eject": 1},
    )
    return Pool.from_urls("r", policy.base_urls or [], policy, start_hint="Start it.")


def test_every_replica_unreachable_is_502_naming_addresses_and_hint() -> None:
    pool = _pool_with_two(eject_s=20.0)
    for replica in pool.replicas:
        pool.record_failure(replica, UNREACHABLE)
    with pytest.raises(GatewayError) as caught:
        pool.pick({"messages": []}, RequestContext("t"), set())
    error = caught.value
    assert error.status == 502 and error.code == UNREACHABLE
    assert "http://10.0.0.1:8000" in error.message and "http://10.0.0.2:8000" in error.message
    assert error.message.endswith("Start it.")
    # An ejection of 20 s must not turn into a 20 s sleep in the client's SDK.
    assert error.headers["retry-after"] == "2"


def test_replicas_ejected_for_errors_are_503_saying_why() -> None:
    pool = _pool_with_two()
    pool.record_failure(pool.replicas[0], "HTTP 500")
    pool.record_failure(pool.replicas[1], UNREACHABLE)
    with pytest.raises(GatewayError) as caught:
        pool.pick({"messages": []}, RequestContext("t"), set())
    error = caught.value
    assert error.status == 503 and error.code == "no_healthy_upstream"
    assert "after HTTP 500" in error.message and error.headers["retry-after"] == "1"
