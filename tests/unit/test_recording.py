"""The recorder on its own: records, bodies on/off, stream capture, rotation, sharing."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from gateway import fidelity
from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.recording import (
    Recorder,
    Recording,
    RecordWriter,
    acquire_writer,
    release_writer,
    upstream_host,
)

BODY = {"model": "r", "messages": [{"role": "user", "content": "secret words"}], "seed": 3}


def _ctx(**extra: object) -> RequestContext:
    ctx = RequestContext(request_id="req_1", route_name="r", endpoint="/v1/chat/completions")
    ctx.started = time.perf_counter() - 0.25
    ctx.first_token = ctx.started + 0.1
    ctx.status = 200
    ctx.upstream = "http://10.1.2.3:8001"
    ctx.prompt_tokens, ctx.completion_tokens = 5, 7
    ctx.request_body = BODY
    for key, value in extra.items():
        setattr(ctx, key, value)
    return ctx


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_record_is_complete(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    answer = {"choices": [{"message": {"content": "hi"}}]}
    Recorder(writer, bodies=True).record(_ctx(answer_body=answer, retries=1))
    writer.close()
    (record,) = _lines(tmp_path / "r.jsonl")
    assert record["request_id"] == "req_1" and record["route"] == "r"
    assert record["upstream"] == "10.1.2.3:8001"
    assert record["status"] == 200 and record["error"] is None
    assert 240 < record["latency_ms"] < 2000 and 99 < record["ttft_ms"] < 101
    assert (record["tokens_in"], record["tokens_out"], record["retries"]) == (5, 7, 1)
    assert record["fidelity"] == {"honoured": ["seed"]}
    assert record["request"] == BODY and record["answer"] == answer
    assert abs(record["ts"] - time.time()) < 5


def test_without_bodies_only_parameters_are_kept(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    Recorder(writer, bodies=False).record(_ctx(answer_body={"x": 1}))
    writer.close()
    raw = (tmp_path / "r.jsonl").read_text()
    assert "secret" not in raw
    (record,) = _lines(tmp_path / "r.jsonl")
    assert record["request"] == {"model": "r", "seed": 3} and "answer" not in record


def test_errors_are_recorded(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    error = {"error": {"message": "down", "code": "upstream_unreachable"}}
    Recorder(writer, bodies=False).record(_ctx(status=502, answer_body=error))
    Recorder(writer, bodies=False).record(_ctx(status=0, error_code=None))  # client went away
    writer.close()
    first, second = _lines(tmp_path / "r.jsonl")
    assert first["status"] == 502 and first["error"]["code"] == "upstream_unreachable"
    assert second["status"] == 499


async def test_streams_are_captured_and_rebuilt(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    recorder = Recorder(writer, bodies=True)
    ctx = _ctx(stream=True)
    chunks = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"hel"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\ndata: [DONE]\n\n',
    ]

    async def source():
        for chunk in chunks:
            yield chunk

    passed = [piece async for piece in recorder.tee(ctx, source())]
    assert passed == chunks
    recorder.record(ctx)
    writer.close()
    (record,) = _lines(tmp_path / "r.jsonl")
    message = record["answer"]["choices"][0]
    assert message["message"]["content"] == "hello" and message["finish_reason"] == "stop"
    assert record["answer"]["usage"]["completion_tokens"] == 2


def test_rotation_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RecordWriter(str(path), max_bytes=2000, keep=2)
    for _ in range(40):
        Recorder(writer, bodies=True).record(_ctx())
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["r.jsonl", "r.jsonl.1", "r.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2000
        assert all(line["request_id"] == "req_1" for line in _lines(tmp_path / name))


def test_writes_after_close_are_dropped_not_raised(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    writer.close()
    writer.put({"a": 1})
    assert writer.dropped == 1


def test_writers_are_shared_per_file_and_closed_by_the_last_user(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.jsonl")
    first = acquire_writer(path, 0, 3)
    second = acquire_writer(path, 0, 3)
    assert first is second
    release_writer(first)
    first.put({"still": "open"})
    release_writer(second)
    assert first.dropped == 0
    first.put({"now": "closed"})
    assert first.dropped == 1


def test_recording_from_config_routes_and_bodies(tmp_path: Path) -> None:
    text = f"""
server: {{record: {tmp_path}/all.jsonl}}
models:
  - {{name: a, backend: mock}}
  - {{name: b, backend: mock, record: {tmp_path}/b.jsonl, record_bodies: true}}
"""
    recording = Recording.from_config(parse_config(text, "t.yaml"))
    assert recording is not None
    assert not recording.by_route["a"].bodies and recording.by_route["b"].bodies
    assert recording.by_route["a"].writer is not recording.by_route["b"].writer
    ctx = RequestContext(request_id="x", route_name="b")
    recording.attach(ctx, BODY)
    assert ctx.recorder is recording.by_route["b"] and ctx.request_body is BODY
    recording.close()
    off = parse_config("models:\n  - {name: a, backend: mock}\n", "t.yaml")
    assert Recording.from_config(off) is None


def test_upstream_host_never_keeps_credentials() -> None:
    assert upstream_host("https://user:pw@api.example.com:443/v1") == "api.example.com:443"
    assert upstream_host("mock") == "mock"
    assert upstream_host("") is None


def test_fidelity_verdict_goes_into_the_record(tmp_path: Path) -> None:
    writer = RecordWriter(str(tmp_path / "r.jsonl"))
    verdict = fidelity.judge({"seed": fidelity.ParamRule("drop")}, BODY)
    Recorder(writer, bodies=False).record(_ctx(fidelity=verdict))
    writer.close()
    assert _lines(tmp_path / "r.jsonl")[0]["fidelity"] == {"dropped": ["seed"]}
