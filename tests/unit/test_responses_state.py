"""The stateful Responses parts without a server: the SQLite store (chains, namespaces,
bounds, restart), sealed compaction items, the expansion of a continuation into the input
a client would have sent, and the events made from a finished Response."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.compaction import PREFIX, Sealer, load_key
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.responses_events import response_events
from gateway.responses_state import ConnectionCache, begin
from gateway.responses_store import (
    MemoryResponseStore,
    RedisResponseStore,
    SQLiteResponseStore,
    StoredResponse,
)
from gateway.translate import DEFAULT_DIALECT, ResponsesStreamTranslator, responses_to_chat
from tests.upstream import free_port

BUNDLE = {"prompt_token_ids": [1, 2, 3], "generation_token_ids": [7, 8, 2],
          "generation_log_probs": [-0.5, -0.25, -0.125]}  # fmt: skip


def record(rid: str, prev: str | None = None, ns: str = "a", text: str = "hi", age: float = 0):
    response = {"id": rid, "object": "response", "status": "completed", "output": [
        {"id": f"msg_{rid}", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": f"re: {text}", "annotations": []}],
         **BUNDLE}]}  # fmt: skip
    inp = [{"id": f"in_{rid}", "type": "message", "role": "user", "content": text}]
    return StoredResponse(rid, ns, prev, time.time() - age, inp, response)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (the Redis store is the fleet's; issue 20's `cluster:`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["sqlite", "memory", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryResponseStore()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisResponseStore(url, f"test-{tmp_path.name}:", max_age_s=3600)
    return SQLiteResponseStore(tmp_path / "r.db", max_bytes=0, max_age_s=3600)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_chain_namespace_and_delete(store: Any) -> None:
    async def go() -> None:
        await store.put(record("r1", text="one"))
        await store.put(record("r2", "r1", text="two"))
        await store.put(record("r3", "r2", text="three"))
        chain = await store.chain("a", "r3")
        assert chain.complete and [r.id for r in chain.records] == ["r1", "r2", "r3"]
        texts = [i["content"] if i.get("role") == "user" else i["content"][0]["text"]
                 for i in chain.input_items()]  # fmt: skip
        assert texts == ["one", "re: one", "two", "re: two", "three"]
        assert await store.get("b", "r1") is None and await store.chain("b", "r3") is None
        assert not await store.delete("b", "r1")
        assert await store.delete("a", "r1") and await store.get("a", "r1") is None
        broken = await store.chain("a", "r3")
        assert not broken.complete and [r.id for r in broken.records] == ["r2", "r3"]
        await store.aclose()

    run(go())


def test_sqlite_survives_reopening_and_prunes_by_age_and_size(tmp_path: Path) -> None:
    path = tmp_path / "r.db"

    async def go() -> None:
        first = SQLiteResponseStore(path, max_bytes=0, max_age_s=3600)
        await first.put(record("kept"))
        await first.aclose()
        again = SQLiteResponseStore(path, max_bytes=0, max_age_s=3600)
        assert (await again.get("a", "kept")).response["output"][0]["generation_token_ids"] == [
            7, 8, 2]  # fmt: skip
        again._next_prune = 0
        await again.put(record("old", age=7200))  # older than max_age_s: pruned on this put
        assert await again.get("a", "old") is None and await again.get("a", "kept")
        await again.aclose()
        size = len(record("x").encode())
        small = SQLiteResponseStore(path, max_bytes=size * 5, max_age_s=3600)
        for i in range(12):
            small._next_prune = 0
            await small.put(record(f"n{i}", age=100 - i))
        kept = [i for i in range(12) if await small.get("a", f"n{i}")]
        assert kept and kept == list(range(12 - len(kept), 12))  # the newest stay
        assert len(kept) <= 5
        await small.aclose()

    run(go())


def test_compaction_seal_open_and_refusals(tmp_path: Path) -> None:
    key = load_key(None, tmp_path)
    assert load_key(None, tmp_path) == key  # generated once, then read
    assert oct(os.stat(tmp_path / "compaction.key").st_mode & 0o777) == "0o600"
    sealer = Sealer(key)
    items = [{"type": "message", "role": "user", "content": "secret plan"}]
    content = sealer.seal(items, "tenant-a")
    assert content.startswith(PREFIX) and "secret" not in content
    assert sealer.open(content, "tenant-a", "input[0]") == items
    tampered = content[:-4] + ("AAAA" if not content.endswith("AAAA") else "BBBB")
    for bad, ns in ((content, "tenant-b"), (tampered, "tenant-a"), ("x", "tenant-a")):
        with pytest.raises(GatewayError) as exc:
            sealer.open(bad, ns, "input[0]")
        assert exc.value.code == "invalid_encrypted_content"
    other = Sealer(load_key("a configured secret", tmp_path))
    with pytest.raises(GatewayError):
        other.open(content, "tenant-a", "input[0]")


def fake_gateway(store: Any) -> Any:
    return SimpleNamespace(responses_store=store, sealer=Sealer(os.urandom(32)))


def test_continuation_is_the_input_a_client_would_send() -> None:
    """The expanded request translates to the same Chat request, bundles on the same
    messages, as the full conversation sent back by the client."""
    store = MemoryResponseStore()
    gateway = fake_gateway(store)
    ctx = RequestContext(request_id="r", key_name="a")

    async def go() -> None:
        await store.put(record("r1", text="one"))
        call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "ping",
                "arguments": "{}", "status": "completed", **BUNDLE}  # fmt: skip
        r2 = record("r2", "r1", text="two")
        r2.response["output"] = [call]
        await store.put(r2)
        new = [{"type": "function_call_output", "call_id": "call_1", "output": "pong"}]
        turn = await begin(gateway, {"model": "m", "input": new, "previous_response_id": "r2",
                                     "return_tokens_as_token_ids": True}, ctx, False)  # fmt: skip
        sent_back = [
            {"type": "message", "role": "user", "content": "one"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "re: one", "annotations": []}], **BUNDLE},
            {"type": "message", "role": "user", "content": "two"}, call, *new,
        ]  # fmt: skip
        full = {"model": "m", "input": sent_back, "return_tokens_as_token_ids": True}
        assert responses_to_chat(turn.body, DEFAULT_DIALECT) == responses_to_chat(
            full, DEFAULT_DIALECT
        )
        assert turn.previous_id == "r2" and turn.stored_parent == "r2" and turn.store
        with pytest.raises(GatewayError) as exc:
            bad = [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]
            await begin(gateway, {"model": "m", "input": bad, "previous_response_id": "r2"},
                        ctx, False)  # fmt: skip
        assert exc.value.code == "tool_call_not_found"
        for missing in ("nope", "r1x"):
            with pytest.raises(GatewayError) as exc:
                await begin(gateway, {"model": "m", "input": "x",
                                      "previous_response_id": missing}, ctx, False)  # fmt: skip
            assert exc.value.code == "previous_response_not_found"

    run(go())


def test_connection_cache_keeps_the_latest_and_evicts() -> None:
    cache = ConnectionCache()
    gateway = fake_gateway(None)
    ctx = RequestContext(request_id="r")

    async def go() -> None:
        first = await begin(gateway, {"model": "m", "input": "a", "store": False}, ctx, False,
                            cache)  # fmt: skip
        await first.record(record("w1").response)
        turn = await begin(gateway, {"model": "m", "input": "b", "previous_response_id": "w1"},
                           ctx, False, cache)  # fmt: skip
        assert turn.body["input"][0]["content"] == "a"
        assert turn.stored_parent is None  # the first turn was never stored
        cache.evict("w1")
        with pytest.raises(GatewayError):
            await begin(gateway, {"model": "m", "input": "b", "previous_response_id": "w1"},
                        ctx, False, cache)  # fmt: skip

    run(go())


def test_events_from_a_response_match_a_stream_of_it() -> None:
    """Same event types, in the same order, as the stream translator sends for the answer."""
    request = {"model": "m", "input": "x"}
    translator = ResponsesStreamTranslator(request, model="m")
    streamed = translator.start()
    chunks = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
            "function": {"name": "ping", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]  # fmt: skip
    for chunk in chunks:
        streamed += translator.feed(chunk)
    streamed += translator.finish()
    final = streamed[-1]["response"]
    made = response_events(final)
    assert [e["type"] for e in made] == [e["type"] for e in streamed]
    assert [e["sequence_number"] for e in made] == list(range(len(made)))
    assert made[-1]["response"] is final
    done = [e["item"] for e in made if e["type"] == "response.output_item.done"]
    assert done == final["output"]


def test_sqlite_deletion_leaves_nothing_in_the_file(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteResponseStore(tmp_path / "r.db", max_bytes=0, max_age_s=3600)
        await store.put(record("gone", text="SECRET-WORD-4711"))
        await store.put(record("kept", text="other"))
        assert await store.delete("a", "gone")

        def checkpoint() -> None:
            assert store._db is not None
            store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await store._run(checkpoint)
        await store.aclose()

    run(go())
    for path in tmp_path.glob("r.db*"):
        assert b"SECRET-WORD-4711" not in path.read_bytes(), path
