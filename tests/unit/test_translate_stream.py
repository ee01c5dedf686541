"""Chat Completions stream -> Responses streaming events."""

from __future__ import annotations

import copy
import json

import pytest

from gateway.translate import ResponsesStreamTranslator, chat_to_response
from tests.spec.conformance import check_events

REQUEST = {
    "model": "route",
    "input": "hi",
    "tools": [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
        {"type": "function", "name": "get_time", "parameters": {"type": "object"}},
    ],
}
USAGE = {
    "prompt_tokens": 7,
    "completion_tokens": 9,
    "total_tokens": 16,
    "completion_tokens_details": {"reasoning_tokens": 3},
}
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def chunk(delta=None, finish=None, *, lps=None, index=0, token_ids=None, **top):
    choice = {"index": index, "delta": delta if delta is not None else {}, "finish_reason": finish}
    if lps is not None:
        choice["logprobs"] = {"content": lps}
    if token_ids is not None:
        choice["token_ids"] = token_ids
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
        **top,
    }


def role():
    return chunk({"role": "assistant", "content": ""})


def usage_chunk(usage=USAGE):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": usage,
    }


def tc(index, *, id=None, name=None, args=None):
    entry = {"index": index, "function": {}}
    if id is not None:
        entry["id"] = id
        entry["type"] = "function"
    if name is not None:
        entry["function"]["name"] = name
    if args is not None:
        entry["function"]["arguments"] = args
    return entry


def lp(token, logprob=-0.5):
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []}


def run(chunks, request=REQUEST):
    translator = ResponsesStreamTranslator(request, model="route")
    events = translator.start()
    for c in chunks:
        events += translator.feed(copy.deepcopy(c))
    events += translator.finish()
    return events


def accumulate(chunks):
    """An independent reference: fold chunks into the ChatCompletion a non-stream call gives."""
    msg: dict = {"role": "assistant", "content": None}
    calls: dict = {}
    finish, usage, lps, prompt_ids, gen_ids = None, None, [], None, None
    for c in chunks:
        usage = c.get("usage") or usage
        if c.get("prompt_token_ids") is not None and prompt_ids is None:
            prompt_ids = c["prompt_token_ids"]
        for choice in c.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            d = choice.get("delta") or {}
            for key in ("content", "reasoning", "reasoning_content", "refusal"):
                if d.get(key):
                    msg[key] = (msg.get(key) or "") + d[key]
            for t in d.get("tool_calls") or []:
                call = calls.setdefault(
                    t["index"],
                    {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
                )
                call["id"] = call["id"] or t.get("id")
                call["function"]["name"] = call["function"]["name"] or t["function"].get("name")
                call["function"]["arguments"] += t["function"].get("arguments") or ""
            lps += (choice.get("logprobs") or {}).get("content") or []
            if choice.get("token_ids"):
                gen_ids = (gen_ids or []) + choice["token_ids"]
            finish = choice.get("finish_reason") or finish
    if calls:
        msg["tool_calls"] = [calls[k] for k in sorted(calls)]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": usage,
    }
    if lps:
        body["choices"][0]["logprobs"] = {"content": lps}
    if gen_ids is not None:
        body["choices"][0]["token_ids"] = gen_ids
    if prompt_ids is not None:
        body["prompt_token_ids"] = prompt_ids
    return body


def strip_ids(resp):
    resp = copy.deepcopy(resp)
    resp.pop("id")
    resp.pop("created_at")
    resp.pop("completed_at")  # a clock reading: the two answers may straddle a second
    for item in resp["output"]:
        item.pop("id")
    return resp


def check_stream(events):
    """Structural invariants every event stream must satisfy; returns the final response."""
    check_events(json.loads(json.dumps(events)))  # the spec's and the openai SDK's schemas
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    for e in events[:2]:
        assert e["response"]["status"] == "in_progress"
        assert e["response"]["output"] == [] and e["response"]["usage"] is None
    assert events[-1]["type"] in TERMINAL
    assert not [e for e in events[:-1] if e["type"] in TERMINAL]
    final = events[-1]["response"]
    added, done, text, args = {}, {}, {}, {}
    for e in events[2:-1]:
        t = e["type"]
        if t == "error":
            continue
        if t == "response.output_item.added":
            assert e["output_index"] not in added
            added[e["output_index"]] = e["item"]
            continue
        if t == "response.output_item.done":
            assert e["output_index"] in added and e["output_index"] not in done
            assert e["item"]["id"] == added[e["output_index"]]["id"]
            done[e["output_index"]] = e["item"]
            continue
        k = e["output_index"]
        assert k in added and k not in done, t  # nothing after an item is done
        assert e["item_id"] == added[k]["id"]
        key = (k, e.get("content_index"))
        if t in (
            "response.output_text.delta",
            "response.reasoning.delta",
            "response.refusal.delta",
        ):
            text[key] = text.get(key, "") + e["delta"]
        elif t in ("response.output_text.done", "response.reasoning.done"):
            assert e["text"] == text.get(key, "")
        elif t == "response.refusal.done":
            assert e["refusal"] == text.get(key, "")
        elif t == "response.function_call_arguments.delta":
            args[k] = args.get(k, "") + e["delta"]
        elif t == "response.function_call_arguments.done":
            assert e["arguments"] == args.get(k, "")
    if final["status"] != "failed" or events[-2]["type"] != "error":
        assert sorted(added) == sorted(done) == list(range(len(final["output"])))
        assert [done[k] for k in sorted(done)] == final["output"]
    for item in final["output"]:
        if item["type"] == "function_call":
            assert item["arguments"] == args.get(final["output"].index(item), "")
    return final


SEQ = [
    role(),
    chunk({"tool_calls": [tc(0, id="call_0", name="get_weather", args="")]}),
    chunk({"tool_calls": [tc(0, args='{"city":')]}),
    chunk({"tool_calls": [tc(0, args=' "Paris"}')]}),
    chunk({"tool_calls": [tc(1, id="call_1", name="get_time", args="{")]}),
    chunk({"tool_calls": [tc(1, args="}")]}),
    chunk({}, "tool_calls"),
    usage_chunk(),
]
INTERLEAVED = [
    role(),
    chunk({"tool_calls": [tc(0, id="call_0", name="get_weather")]}),
    chunk({"tool_calls": [tc(1, id="call_1", name="get_time")]}),
    chunk({"tool_calls": [tc(0, args='{"ci'), tc(1, args='{"tz":')]}),
    chunk({"tool_calls": [tc(1, args=' "UTC"}')]}),
    chunk({"tool_calls": [tc(0, args='ty": "Oslo"}')]}),
    chunk({}, "tool_calls"),
    usage_chunk(),
]
UNICODE = ["你", "好👩", "\u200d💻", "世", "界 e", "\u0301"]  # ZWJ emoji, combining accent

# (id, chunks): each must give the same final response as the non-streamed equivalent.
SCENARIOS = [
    (
        "text",
        [
            role(),
            chunk({"content": "Hel"}),
            chunk({"content": "lo!"}),
            chunk({}, "stop"),
            usage_chunk(),
        ],
    ),
    (
        "reasoning-field",
        [
            role(),
            chunk({"reasoning": "Let me "}),
            chunk({"reasoning": "think"}),
            chunk({"content": "4"}),
            chunk({}, "stop"),
            usage_chunk(),
        ],
    ),
    (
        "reasoning-content-field",
        [
            role(),
            chunk({"reasoning_content": "hmm"}),
            chunk({"content": "ok"}, "stop"),
            usage_chunk(),
        ],
    ),
    ("tool-calls-sequential", SEQ),
    (
        "tool-calls-one-chunk",
        [
            chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        tc(0, id="call_0", name="get_weather", args='{"city": "Rome"}'),
                        tc(1, id="call_1", name="get_time", args="{}"),
                    ],
                },
                "tool_calls",
            ),
            usage_chunk(),
        ],
    ),
    ("tool-calls-interleaved", INTERLEAVED),
    (
        "arguments-before-name",
        [
            role(),
            chunk({"tool_calls": [tc(0, args='{"a"')]}),
            chunk({"tool_calls": [tc(0, id="call_x", name="get_time", args=": 1}")]}),
            chunk({}, "tool_calls"),
        ],
    ),
    (
        "text-then-tools",
        [
            role(),
            chunk({"reasoning": "r"}),
            chunk({"content": "Checking."}),
            chunk(
                {"tool_calls": [tc(0, id="call_0", name="get_weather", args="{}")]}, "tool_calls"
            ),
            usage_chunk(),
        ],
    ),
    ("length", [role(), chunk({"content": "trunc"}), chunk({}, "length"), usage_chunk()]),
    ("length-in-reasoning", [role(), chunk({"reasoning": "thinking..."}, "length"), usage_chunk()]),
    (
        "length-in-tool-call",
        [
            role(),
            chunk({"tool_calls": [tc(0, id="call_0", name="get_time", args='{"a')]}),
            chunk({}, "length"),
        ],
    ),
    ("content-filter", [role(), chunk({"content": "x"}), chunk({}, "content_filter")]),
    ("abort", [role(), chunk({"content": "x"}), chunk({}, "abort")]),
    ("empty-content", [role(), chunk({"content": ""}, "stop"), usage_chunk()]),
    ("no-chunks-at-all", []),
    (
        "refusal",
        [role(), chunk({"refusal": "I can"}), chunk({"refusal": "'t."}), chunk({}, "stop")],
    ),
    ("unicode-split", [role(), *[chunk({"content": p}) for p in UNICODE], chunk({}, "stop")]),
    (
        "unicode-split-reasoning",
        [role(), *[chunk({"reasoning": p}) for p in UNICODE], chunk({"content": "ok"}, "stop")],
    ),
    (
        "logprobs",
        [
            role(),
            chunk({"content": "He"}, lps=[lp("He")]),
            chunk({"content": "y"}, lps=[lp("y", -1.25)]),
            chunk({}, "stop"),
        ],
    ),
    (
        "logprobs-with-reasoning",
        [
            role(),
            chunk({"reasoning": "r"}, lps=[lp("r")]),
            chunk({"content": "a"}, lps=[lp("a")]),
            chunk({}, "stop"),
        ],
    ),
    (
        "token-ids",
        [
            chunk({"role": "assistant", "content": ""}, prompt_token_ids=[1, 2, 3]),
            chunk({"content": "x"}, lps=[lp("x", -0.1)], token_ids=[10]),
            chunk({"content": "y"}, lps=[lp("y", -0.2)], token_ids=[11]),
            chunk({}, "stop", token_ids=[]),
            usage_chunk(),
        ],
    ),
    (
        "token-ids-on-tool-call",
        [
            chunk({"role": "assistant"}, prompt_token_ids=[5]),
            chunk({"tool_calls": [tc(0, id="c", name="get_time", args="{}")]}, token_ids=[1, 2]),
            chunk({}, "tool_calls", token_ids=[3]),
        ],
    ),
    ("usage-on-last-choice-chunk", [role(), {**chunk({"content": "x"}, "stop"), "usage": USAGE}]),
    (
        "other-choice-ignored",
        [role(), chunk({"content": "zero"}), chunk({"content": "one"}, index=1), chunk({}, "stop")],
    ),
]


@pytest.mark.parametrize("chunks", [r[1] for r in SCENARIOS], ids=[r[0] for r in SCENARIOS])
def test_stream_equals_non_stream(chunks):
    events = run(chunks)
    final = check_stream(events)
    expected = chat_to_response(accumulate(chunks), REQUEST, model="route")
    assert strip_ids(final) == strip_ids(expected)
    assert json.loads(json.dumps(events)) == events  # plain JSON, no shared-state surprises


def sdk_validate(events):
    """Validate every event against the Open Responses spec and the openai SDK's types."""
    check_events(json.loads(json.dumps(events)))


@pytest.mark.parametrize("chunks", [r[1] for r in SCENARIOS], ids=[r[0] for r in SCENARIOS])
def test_openai_sdk_validates_events(chunks):
    sdk_validate(run(chunks))


def test_openai_sdk_validates_failure_events():
    translator = ResponsesStreamTranslator(REQUEST, model="route")
    events = translator.feed(chunk({"reasoning": "r"}))
    events += translator.feed(chunk({"tool_calls": [tc(0, id="c", name="get_time", args="{")]}))
    events += translator.fail("gone")
    sdk_validate(events)


def types(events):
    return [e["type"] for e in events]


def test_text_event_sequence():
    events = run(
        [
            role(),
            chunk({"content": "Hi"}),
            chunk({"content": "!"}),
            chunk({}, "stop"),
            usage_chunk(),
        ]
    )
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[2]["item"]
    assert added["type"] == "message" and added["status"] == "in_progress"
    assert added["content"] == []
    assert events[3]["part"] == {
        "type": "output_text",
        "text": "",
        "annotations": [],
        "logprobs": [],
    }
    assert events[4]["delta"] == "Hi" and events[4]["logprobs"] == []
    assert events[4]["content_index"] == 0 and events[4]["output_index"] == 0
    assert events[6]["text"] == "Hi!"
    assert events[8]["item"]["status"] == "completed"
    final = events[-1]["response"]
    assert final["usage"]["input_tokens"] == 7
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3


def test_reasoning_event_sequence():
    events = run([role(), chunk({"reasoning_content": "a"}), chunk({"content": "b"}, "stop")])
    assert types(events)[2:9] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning.delta",
        "response.reasoning.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert events[2]["item"]["type"] == "reasoning"
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[8]["output_index"] == 1


def test_sequential_calls_close_before_next_opens():
    events = run(SEQ)
    seq = [(e["type"], e.get("output_index")) for e in events]
    assert seq.index(("response.output_item.done", 0)) < seq.index(
        ("response.output_item.added", 1)
    )
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(d["name"], d["arguments"]) for d in done] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", "{}"),
    ]
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(a["call_id"], a["arguments"], a["status"]) for a in added] == [
        ("call_0", "", "in_progress"),
        ("call_1", "", "in_progress"),
    ]


def test_interleaved_calls_keep_arguments_apart():
    final = check_stream(run(INTERLEAVED))
    assert [(o["call_id"], o["arguments"]) for o in final["output"]] == [
        ("call_0", '{"city": "Oslo"}'),
        ("call_1", '{"tz": "UTC"}'),
    ]


def test_arguments_before_name_are_buffered():
    events = run(
        [
            role(),
            chunk({"tool_calls": [tc(0, args='{"a"')]}),
            chunk({"tool_calls": [tc(0, id="call_x", name="get_time", args=": 1}")]}),
            chunk({}, "tool_calls"),
        ]
    )
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["name"] == "get_time" and added["item"]["arguments"] == ""
    deltas = [e["delta"] for e in events if e["type"].endswith("arguments.delta")]
    assert deltas == ['{"a": 1}']  # buffered fragments flushed once the name is known


def test_unicode_split_concatenates():
    final = check_stream(
        run([role(), *[chunk({"content": p}) for p in UNICODE], chunk({}, "stop")])
    )
    text = final["output"][0]["content"][0]["text"]
    assert text == "你好\U0001f469\u200d\U0001f4bb世界 e\u0301"
    assert text.encode("utf-8").decode("utf-8") == text


def test_length_is_incomplete_with_last_item_incomplete():
    events = run([role(), chunk({"reasoning": "r"}), chunk({"content": "cut"}, "length")])
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    item_done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["status"] for i in item_done] == ["completed", "incomplete"]


def test_abort_is_failed():
    events = run([role(), chunk({"content": "x"}, "abort")])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert "error" not in types(events)


def test_logprobs_on_deltas_and_reasoning_logprobs_carried():
    events = run(
        [
            role(),
            chunk({"reasoning": "r"}, lps=[lp("r")]),
            chunk({"content": "a"}, lps=[lp("a")]),
            chunk({"content": "b"}, lps=[lp("b")]),
            chunk({}, "stop"),
        ],
        {**REQUEST, "include": ["message.output_text.logprobs"]},
    )
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [[x["token"] for x in d["logprobs"]] for d in deltas] == [["r", "a"], ["b"]]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert [x["token"] for x in done["logprobs"]] == ["r", "a", "b"]


def test_token_fields_only_on_final_last_item():
    events = run(SCENARIOS[[r[0] for r in SCENARIOS].index("token-ids")][1])
    final = events[-1]["response"]
    last = final["output"][-1]
    assert last["prompt_token_ids"] == [1, 2, 3]
    assert last["generation_token_ids"] == [10, 11]
    assert last["generation_log_probs"] == [-0.1, -0.2]
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert not any("prompt_token_ids" in a for a in added)
    plain = run([role(), chunk({"content": "x"}, "stop")])[-1]["response"]
    assert "prompt_token_ids" not in plain["output"][-1]


def test_fail_emits_error_then_failed():
    translator = ResponsesStreamTranslator(
        REQUEST, model="route", response_id="resp_fixed", created_at=99
    )
    events = (
        translator.start()
        + translator.feed(role())
        + translator.feed(chunk({"content": "partial"}))
    )
    events += translator.fail("upstream went away", "server_error")
    assert types(events)[-2:] == ["error", "response.failed"]
    assert events[-2] == {
        "type": "error",
        "sequence_number": events[-2]["sequence_number"],
        "error": {
            "type": "server_error",
            "code": "server_error",
            "message": "upstream went away",
            "param": None,
        },
        "code": "server_error",
        "message": "upstream went away",
        "param": None,
    }
    response = events[-1]["response"]
    assert response["id"] == "resp_fixed" and response["created_at"] == 99
    assert response["status"] == "failed"
    assert response["error"] == {"code": "server_error", "message": "upstream went away"}
    assert response["output"][0]["content"][0]["text"] == "partial"
    assert response["output"][0]["status"] == "incomplete"
    assert "response.output_item.done" not in types(events)
    check_stream(events)
    assert translator.finish() == [] and translator.feed(chunk({"content": "x"})) == []


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"message": "boom", "type": "BadRequestError", "code": 400}, "server_error", "boom"),
        (
            {"message": "slow down", "code": "rate_limit_exceeded"},
            "rate_limit_exceeded",
            "slow down",
        ),
        ("plain string", "server_error", "plain string"),
    ],
)
def test_error_chunk_fails_the_stream(error, code, message):
    translator = ResponsesStreamTranslator(REQUEST, model="route")
    events = translator.start() + translator.feed(chunk({"content": "a"}))
    events += translator.feed({"error": error})
    assert events[-2]["type"] == "error"
    assert (events[-2]["code"], events[-2]["message"]) == (code, message)
    assert events[-1]["type"] == "response.failed"
    assert translator.finish() == []
    check_stream(events)


def test_feed_without_start_starts():
    translator = ResponsesStreamTranslator(REQUEST, model="route")
    events = translator.feed(chunk({"content": "x"}))
    assert types(events)[:2] == ["response.created", "response.in_progress"]
    assert translator.start() == []
    events += translator.finish()
    check_stream(events)
    assert translator.finish() == []


def test_request_echo_and_ids():
    request = {**REQUEST, "instructions": "I", "temperature": 0.3, "tool_choice": "required"}
    translator = ResponsesStreamTranslator(
        request, model="route", response_id="resp_1", created_at=5
    )
    events = translator.start() + translator.feed(chunk({"content": "x"}, "stop"))
    events += translator.finish()
    for e in (events[0], events[1], events[-1]):
        r = e["response"]
        assert (r["id"], r["created_at"], r["model"]) == ("resp_1", 5, "route")
        assert (r["instructions"], r["temperature"], r["tool_choice"]) == ("I", 0.3, "required")
        assert r["tools"] == [{**t, "description": None, "strict": None} for t in REQUEST["tools"]]
    item_ids = {e["item_id"] for e in events if "item_id" in e}
    assert len(item_ids) == 1 and item_ids.pop().startswith("msg_")


def test_chunks_not_mutated():
    chunks = [*copy.deepcopy(SEQ), chunk({"content": "x"}, lps=[{"token": "x", "logprob": -1.0}])]
    before = copy.deepcopy(chunks)
    translator = ResponsesStreamTranslator(REQUEST, model="route")
    for c in chunks:
        translator.feed(c)
    translator.finish()
    assert chunks == before


@pytest.mark.parametrize("chunks", [r[1] for r in SCENARIOS], ids=[r[0] for r in SCENARIOS])
def test_framed_translator_sends_the_same_bytes(chunks, monkeypatch):
    """framed=True (the relay's hot path) frames plain text deltas itself: byte for byte what
    frame_named() makes of the dict events, in every scenario."""
    import itertools

    import gateway.translate.stream as stream_module
    from gateway.responses_api import _frames

    def translate(framed: bool) -> bytes:
        counter = itertools.count()
        monkeypatch.setattr(stream_module, "new_id", lambda prefix: f"{prefix}_{next(counter)}")
        translator = ResponsesStreamTranslator(
            REQUEST, model="route", response_id="resp_1", created_at=1, framed=framed
        )
        out = [_frames(translator.start())]
        out += [_frames(translator.feed(copy.deepcopy(c))) for c in chunks]
        out.append(_frames(translator.finish()))
        return b"".join(out)

    plain, framed = translate(False), translate(True)
    assert framed == plain
    terminal = (b"response.completed", b"response.incomplete", b"response.failed")
    assert any(b"event: " + name + b"\n" in framed for name in terminal)
