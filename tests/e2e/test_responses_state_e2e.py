"""Stateful Responses through the real server: `store`, `previous_response_id`, GET, DELETE,
input_items, `/v1/responses/compact` and WebSocket mode, against the built-in mock `echo`.

The `test_or_*` tests reproduce, case by case, the WebSocket, compact and stateful tests of
the Open Responses acceptance suite (spec 2026-04-24, `src/lib/compliance-tests.ts` of
openresponses/openresponses): same requests, same checks, the events validated against the
spec's own schemas (`ErrorStreamingEvent`, `WebSocketErrorEvent`, `CompactResource`, …).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import websockets

from tests.gateway_process import GatewayProcess

SPEC = Path("/work/shared/reference/open_responses/openapi-2026-04-24.json")
KEY_A, KEY_B = "sk-tenant-a-secret", "sk-tenant-b-secret"
TERMINAL = ("response.completed", "response.failed", "response.incomplete")

CONFIG = f"""
server:
  api_keys:
    - {{name: tenant-a, key: {KEY_A}}}
    - {{name: tenant-b, key: {KEY_B}}}
models:
  - name: echo
    backend: mock
responses:
  max_age_s: 3600
"""


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses-state")


@pytest.fixture(scope="module")
def gw(state_dir: Path) -> Iterator[GatewayProcess]:
    env = {"GYM_GATEWAY_SERVER__STATE_DIR": str(state_dir)}
    proc = GatewayProcess(CONFIG, state_dir, env=env).wait_ready()
    yield proc
    proc.stop()


def client(gw: GatewayProcess, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def ws_url(gw: GatewayProcess) -> str:
    return gw.url.replace("http://", "ws://") + "/v1/responses"


async def ws_session(
    gw: GatewayProcess, steps: list[Any], key: str = KEY_A
) -> list[list[dict[str, Any]]]:
    """As the suite's makeWebSocketSession: one message per step (a step may be a function
    of the earlier turns), each turn read up to its terminal or error event."""
    turns: list[list[dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(ws_url(gw), additional_headers=headers) as ws:
        for step in steps:
            body = step(turns) if callable(step) else step
            await ws.send(json.dumps(body))
            events: list[dict[str, Any]] = []
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                events.append(event)
                if event["type"] in TERMINAL or event["type"] == "error":
                    break
            turns.append(events)
    return turns


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- schema checks from the spec document ------------------------------------------------------


# Required fields of the spec's schemas (Open Responses openapi.json, info.version
# 2026-04-24, commit 1e33c10 of openresponses/openresponses): structural facts only.
REQUIRED = {
    "WebSocketErrorEvent": ["type", "status", "error"],
    "CompactResource": ["id", "object", "output", "created_at", "usage"],
    "CompactionBody": ["type", "id", "encrypted_content"],
}


@pytest.fixture(scope="module")
def spec() -> dict[str, list[str]]:
    """The required fields; checked against the document itself where it is on the machine."""
    if SPEC.exists():
        schemas = json.loads(SPEC.read_text())["components"]["schemas"]
        for name, required in REQUIRED.items():
            assert schemas[name]["required"] == required
    return REQUIRED


def required_of(spec: dict[str, list[str]], name: str) -> list[str]:
    return spec[name]


def final(turn: list[dict[str, Any]]) -> dict[str, Any] | None:
    last = turn[-1]
    return last.get("response") if last["type"] in TERMINAL else None


def error_code(turn: list[dict[str, Any]]) -> str | None:
    last = turn[-1]
    if last["type"] == "error":
        return last["error"]["code"]
    response = final(turn) or {}
    return (response.get("error") or {}).get("code")


def check_ws_error(spec: dict[str, list[str]], event: dict[str, Any]) -> None:
    for name in required_of(spec, "WebSocketErrorEvent"):
        assert name in event
    assert isinstance(event["status"], int)
    assert isinstance(event["error"]["code"], str) and isinstance(event["error"]["message"], str)


def check_completed(turn: list[dict[str, Any]]) -> dict[str, Any]:
    types = [e["type"] for e in turn]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e["sequence_number"] for e in turn] == list(range(len(turn)))
    response = final(turn)
    assert response is not None and response["status"] == "completed" and response["output"]
    return response


# ---- the acceptance suite's cases ----------------------------------------------------------------


def test_or_websocket_response(gw: GatewayProcess) -> None:
    [turn] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "input": [
        {"type": "message", "role": "user", "content": "Count from 1 to 3."}]}]))  # fmt: skip
    response = check_completed(turn)
    assert response["store"] is True  # OpenAI's default


def test_or_websocket_sequential_responses(gw: GatewayProcess) -> None:
    steps = [
        {"type": "response.create", "model": "echo", "store": False, "input": f"Reply with {w}"}
        for w in ("first", "second")
    ]
    turns = run(ws_session(gw, steps))
    first, second = (check_completed(t) for t in turns)
    assert first["id"] != second["id"] and second["output"][0]["content"][0]["text"].endswith(
        "second"
    )


def test_or_websocket_continuation(gw: GatewayProcess) -> None:
    first = {"type": "response.create", "model": "echo", "store": False,
             "input": "Remember the code word: cobalt. Reply with OK."}  # fmt: skip

    def second(turns: list[Any]) -> dict[str, Any]:
        return {"type": "response.create", "model": "echo", "store": False,
                "previous_response_id": final(turns[0])["id"],
                "input": "What is the code word? Reply with only the code word."}  # fmt: skip

    turns = run(ws_session(gw, [first, second]))
    check_completed(turns[0])
    response = check_completed(turns[1])
    assert response["previous_response_id"] == final(turns[0])["id"]
    assert response["store"] is False
    # the echo mock answers the last user message; its usage counts the whole context
    assert response["usage"]["input_tokens"] > final(turns[0])["usage"]["input_tokens"]


def test_or_websocket_reconnect_store_false_recovery(gw: GatewayProcess, spec: Any) -> None:
    [first] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "store": False,
                                   "input": "Remember the code word: copper."}]))  # fmt: skip
    previous = check_completed(first)["id"]
    reconnect = {"type": "response.create", "model": "echo", "store": False,
                 "previous_response_id": previous, "input": "reconnected"}  # fmt: skip
    recovery = {"type": "response.create", "model": "echo", "store": False,
                "input": [{"type": "message", "role": "user", "content": "recovered"}]}  # fmt: skip
    missed, recovered = run(ws_session(gw, [reconnect, recovery]))
    assert error_code(missed) == "previous_response_not_found"
    check_ws_error(spec, missed[-1])
    assert check_completed(recovered)["previous_response_id"] is None


def test_or_websocket_previous_response_not_found(gw: GatewayProcess, spec: Any) -> None:
    [turn] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "store": False,
                                  "previous_response_id": "resp_openresponses_missing_1",
                                  "input": "This should fail."}]))  # fmt: skip
    assert error_code(turn) == "previous_response_not_found"
    check_ws_error(spec, turn[-1])
    assert turn[-1]["status"] == 400


def test_or_websocket_failed_continuation_evicts_cache(gw: GatewayProcess, spec: Any) -> None:
    first = {"type": "response.create", "model": "echo", "store": False,
             "input": "Remember the code word: ember. Reply with OK."}  # fmt: skip

    def failing(turns: list[Any]) -> dict[str, Any]:
        return {"type": "response.create", "model": "echo", "store": False,
                "previous_response_id": final(turns[0])["id"],
                "input": [{"type": "function_call_output", "call_id": "call_openresponses_missing",
                           "output": "No matching tool call exists."}]}  # fmt: skip

    def retry(turns: list[Any]) -> dict[str, Any]:
        return {"type": "response.create", "model": "echo", "store": False,
                "previous_response_id": final(turns[0])["id"], "input": "stale"}  # fmt: skip

    turns = run(ws_session(gw, [first, failing, retry]))
    check_completed(turns[0])
    assert turns[1][-1]["type"] == "error" and error_code(turns[1]) == "tool_call_not_found"
    check_ws_error(spec, turns[1][-1])
    assert error_code(turns[2]) == "previous_response_not_found"


def test_or_websocket_compact_new_chain(gw: GatewayProcess) -> None:
    compact = {"model": "echo", "input": [
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Remember the compaction code word: slate."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Compress this conversation."}]}]}  # fmt: skip
    answer = httpx.post(gw.url + "/v1/responses/compact", json=compact,
                        headers={"Authorization": f"Bearer {KEY_A}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    request = {"type": "response.create", "model": "echo", "store": False, "tools": [],
               "input": [*output, {"type": "message", "role": "user",
                                   "content": "Continue from here. Reply with exactly: compacted"}]}  # fmt: skip
    [turn] = run(ws_session(gw, [request]))
    response = check_completed(turn)
    assert (
        response["output"][0]["content"][0]["text"]
        == "Continue from here. Reply with exactly: compacted"
    )
    # the sealed items reached the engine: the prompt is the whole conversation
    assert response["usage"]["input_tokens"] > 12


def test_or_compact_response(gw: GatewayProcess, spec: Any) -> None:
    body = {"model": "echo", "prompt_cache_key": "openresponses-compact-test", "input": [
        {"type": "message", "role": "user", "content": "We launch on Tuesday."},
        {"type": "message", "role": "assistant", "content": "Understood: Tuesday."}]}  # fmt: skip
    compacted = client(gw).responses.compact(**body)
    doc = compacted.model_dump()
    for name in required_of(spec, "CompactResource"):
        assert name in doc
    assert doc["object"] == "response.compaction"
    [item] = doc["output"]
    assert item["type"] == "compaction" and item["id"].startswith("cmp_")
    for name in required_of(spec, "CompactionBody"):
        assert item[name]
    # opaque: the conversation's text is nowhere in it
    assert "Tuesday" not in item["encrypted_content"]


def test_or_compact_missing_model(gw: GatewayProcess) -> None:
    answer = httpx.post(gw.url + "/v1/responses/compact",
                        json={"input": [{"type": "message", "role": "user", "content": "x"}]},
                        headers={"Authorization": f"Bearer {KEY_A}"})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"


# ---- store, continuation, isolation, deletion --------------------------------------------------


def test_http_chain_get_input_items_and_delete(gw: GatewayProcess) -> None:
    c = client(gw)
    r1 = c.responses.create(model="echo", input="hello there")
    assert r1.store is True and r1.previous_response_id is None
    r2 = c.responses.create(model="echo", input="second turn", previous_response_id=r1.id)
    assert r2.previous_response_id == r1.id and r2.output_text == "second turn"
    with c.responses.stream(model="echo", input="third", previous_response_id=r2.id) as stream:
        events = list(stream)
        r3 = stream.get_final_response()
    assert r3.previous_response_id == r2.id and r3.store is True
    created = next(e for e in events if e.type == "response.created")
    assert created.response.previous_response_id == r2.id
    stored = c.responses.retrieve(r3.id)
    assert (stored.id, stored.output_text, stored.usage) == (r3.id, r3.output_text, r3.usage)
    assert stored.previous_response_id == r2.id
    items = c.responses.input_items.list(r3.id, order="asc").data
    texts = [(i.role, i.content[0].text) for i in items]
    assert texts == [("user", "hello there"), ("assistant", "hello there"),
                     ("user", "second turn"), ("assistant", "second turn"),
                     ("user", "third")]  # fmt: skip
    assert all(i.id for i in items)
    page = c.responses.input_items.list(r3.id, limit=2)
    assert [i.content[0].text for i in page.data] == ["third", "second turn"]
    assert page.has_more is True
    c.responses.delete(r1.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r1.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(r1.id)
    # the chain lost its root: continuing it would silently drop history, so it is refused
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="echo", input="more", previous_response_id=r3.id)
    assert exc.value.code == "previous_response_not_found"


def test_store_false_is_not_stored(gw: GatewayProcess) -> None:
    c = client(gw)
    r = c.responses.create(model="echo", input="private", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="echo", input="x", previous_response_id=r.id)
    assert exc.value.code == "previous_response_not_found"


def test_one_key_never_sees_another_keys_responses(gw: GatewayProcess) -> None:
    a, b = client(gw, KEY_A), client(gw, KEY_B)
    r = a.responses.create(model="echo", input="tenant a's secret")
    for call in (
        lambda: b.responses.retrieve(r.id),
        lambda: b.responses.input_items.list(r.id),
        lambda: b.responses.delete(r.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError):
        b.responses.create(model="echo", input="x", previous_response_id=r.id)
    sealed = a.responses.compact(model="echo", input="tenant a's secret").output
    with pytest.raises(openai.BadRequestError) as exc:
        b.responses.create(model="echo", input=[o.model_dump() for o in sealed])
    assert exc.value.code == "invalid_encrypted_content"
    assert a.responses.retrieve(r.id).id == r.id
    # the WebSocket handshake needs a key too
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        run(ws_session(gw, [{"type": "response.create"}], key="sk-wrong-key-0000"))
    assert refused.value.response.status_code == 401


def test_forged_compaction_is_refused(gw: GatewayProcess) -> None:
    c = client(gw)
    for content in ("ggc1.AAAA", "not ours", "ggc1." + "A" * 80):
        with pytest.raises(openai.BadRequestError) as exc:
            c.responses.create(model="echo", input=[
                {"type": "compaction", "encrypted_content": content}])  # fmt: skip
        assert exc.value.code == "invalid_encrypted_content"


def test_continuation_after_compaction_over_http(gw: GatewayProcess) -> None:
    c = client(gw)
    r1 = c.responses.create(model="echo", input="one")
    sealed = c.responses.compact(model="echo", previous_response_id=r1.id, input="two").output
    r2 = c.responses.create(model="echo", input=[*[o.model_dump() for o in sealed], {
        "role": "user", "content": "three"}])  # fmt: skip
    items = [i.content[0].text for i in c.responses.input_items.list(r2.id, order="asc").data]
    assert items == ["one", "one", "two", "three"]


def test_websocket_store_true_continues_over_http_and_new_socket(gw: GatewayProcess) -> None:
    [turn] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "input": "ws"}]))
    rid = check_completed(turn)["id"]
    assert client(gw).responses.retrieve(rid).output_text == "ws"
    [again] = run(ws_session(gw, [{"type": "response.create", "model": "echo",
                                   "previous_response_id": rid, "input": "later"}]))  # fmt: skip
    assert check_completed(again)["previous_response_id"] == rid


def test_websocket_bad_messages_get_error_events(gw: GatewayProcess, spec: Any) -> None:
    cases = [
        ({"type": "response.cancel"}, "unsupported_event_type"),
        ({"type": "response.create", "model": "echo", "input": "x", "stream": True},
         "unsupported_parameter"),
        ({"type": "response.create", "model": "nope", "input": "x"}, "model_not_found"),
        ({"type": "response.create", "model": "echo"}, "invalid_request_error"),
    ]  # fmt: skip
    turns = run(ws_session(gw, [body for body, _ in cases]))
    for turn, (_, code) in zip(turns, cases, strict=True):
        check_ws_error(spec, turn[-1])
        assert turn[-1]["error"]["code"] == code
    # and the connection still serves turns after them
    [ok] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "input": "x"}]))
    check_completed(ok)


def test_openai_sdk_websocket_connection(gw: GatewayProcess) -> None:
    """The openai SDK's own WebSocket client (`client.responses.connect()`)."""
    with client(gw).responses.connect(max_retries=0) as conn:
        conn.response.create(model="echo", input="over the sdk", store=False)
        types, done = [], None
        for event in conn:
            types.append(event.type)
            if event.type == "response.completed":
                done = event.response
                break
    assert types[0] == "response.created" and done is not None
    assert done.output_text == "over the sdk"


def test_stored_responses_survive_a_restart(state_dir: Path) -> None:
    env = {"GYM_GATEWAY_SERVER__STATE_DIR": str(state_dir / "restart")}
    first = GatewayProcess(CONFIG, state_dir, env=env).wait_ready()
    try:
        r = client(first).responses.create(model="echo", input="durable")
        sealed = client(first).responses.compact(model="echo", input="sealed").output
    finally:
        first.stop()
    second = GatewayProcess(CONFIG, state_dir, env=env).wait_ready()
    try:
        c = client(second)
        assert c.responses.retrieve(r.id).output_text == "durable"
        cont = c.responses.create(model="echo", input="next", previous_response_id=r.id)
        assert cont.previous_response_id == r.id
        # the generated compaction key was kept too
        c.responses.create(model="echo", input=[o.model_dump() for o in sealed])
    finally:
        second.stop()


def test_websocket_on_a_native_route_relays_the_backends_events(gateway: GatewayProcess) -> None:
    """A `native_responses` route over WebSocket: the backend's own events, `model` rewritten,
    its SSE `[DONE]` not sent as a message; the backend keeps its own state."""
    body = {"type": "response.create", "model": "native", "input": "hi"}
    turns = run(ws_session(gateway, [body, body], key="unused"))
    for turn in turns:
        assert turn[0]["type"] == "response.created"
        assert final(turn)["model"] == "native"
        assert final(turn)["output"][0]["content"][0]["text"] == "native answer"


def test_websocket_turns_carry_the_policy_version(gw: GatewayProcess) -> None:
    answer = httpx.post(gw.url + "/admin/policy_version", json={"version": "v7"})
    assert answer.status_code == 200, answer.text
    try:
        [turn] = run(ws_session(gw, [{"type": "response.create", "model": "echo", "input": "x"}]))
        assert final(turn)["policy_version"] == "v7"
        assert client(gw).responses.retrieve(final(turn)["id"]).model_dump()["policy_version"] == (
            "v7"
        )
    finally:
        httpx.post(gw.url + "/admin/policy_version", json={"version": None})


def test_websocket_connection_age_cap(state_dir: Path) -> None:
    """Past `responses.ws_max_age_s` the connection gets a structured error event and is
    closed; the turn before the cap completed normally."""
    config = CONFIG.replace("  max_age_s: 3600", "  max_age_s: 3600\n  ws_max_age_s: 1")
    capped = GatewayProcess(config, state_dir).wait_ready()

    async def go() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        headers = {"Authorization": f"Bearer {KEY_A}"}
        async with websockets.connect(ws_url(capped), additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "x"}))
            events = []
            while not events or events[-1]["type"] not in TERMINAL:
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            cap = json.loads(await asyncio.wait_for(ws.recv(), 30))  # idle until the cap
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 30)
            return events, cap

    try:
        events, cap = run(go())
    finally:
        capped.stop()
    check_completed(events)
    assert cap["type"] == "error" and cap["error"]["code"] == "websocket_connection_limit_reached"


def test_websocket_turn_waits_out_a_refit_pause(gw: GatewayProcess) -> None:
    """A turn sent while the trainer has paused the gateway is held, then runs under the
    policy version set before the resume (had it run during the pause, it would have none)."""

    async def go() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {KEY_A}"}
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as admin:
            assert (await admin.post("/admin/pause", json={"mode": "wait"})).status_code == 200
            try:
                async with websockets.connect(ws_url(gw), additional_headers=headers) as ws:
                    body = {"type": "response.create", "model": "echo", "input": "held"}
                    await ws.send(json.dumps(body))
                    await asyncio.sleep(0.3)  # the message reaches the gateway during the pause
                    await admin.post("/admin/policy_version", json={"version": "v9"})
                    await admin.post("/admin/resume")
                    while True:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if event["type"] in (*TERMINAL, "error"):
                            return event
            finally:
                await admin.post("/admin/resume")
                await admin.post("/admin/policy_version", json={"version": None})

    event = run(go())
    assert event["type"] == "response.completed" and event["response"]["policy_version"] == "v9"
