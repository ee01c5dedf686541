"""An attack battery from the upstream side (issue 18, items 1, 5, 6, 7), against a real
gateway process and a byte-exact misbehaving upstream (tests/raw_upstream.py).

- SSE framing: LF, CRLF and CR line ends, reads split between the CR and LF of the blank
  line: the openai SDK reads the whole text, the finish chunk and the rewritten model.
- Limits: a JSON answer or an SSE event past the configured limits is a 502 / an error
  event `upstream_too_large`, and no part of the oversized event reaches the client.
- Garbage: invalid JSON, invalid UTF-8, null, arrays, a non-list `choices`, `{}`, a 302:
  a 502 (or an error event mid-stream) `upstream_invalid` naming what was wrong.
- Secrets: an upstream echoing the route's key (in an error body or an error event) never
  gets it to the client or the gateway's log.
The client-side battery is tests/e2e/test_attack_battery_clients.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway_process import GatewayProcess
from tests.raw_upstream import Answer, RawUpstream

ROUTE_KEY = "sk-route-0123456789abcdef"  # the gateway sends it upstream
GATEWAY_KEY = "gw-key-fedcba9876543210"
ADMIN_KEY = "admin-key-5555aaaa"
ANSWER_LIMIT = 256 * 1024
EVENT_LIMIT = 64 * 1024


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "engine-model") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
        separators=(",", ":"),
    ).encode()


def framed(payloads: list[bytes], end: bytes) -> bytes:
    return b"".join(b"data: " + p + end + end for p in payloads)


ABC = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "a"}),
    chunk({"content": "b"}),
    chunk({"content": "c"}),
    chunk({}, "stop"),
    b"[DONE]",
]


def split_at(stream: bytes, marks: list[bytes]) -> list[bytes]:
    """Cut the stream right after each occurrence of the marks (CR of CRLF CRLF, ...)."""
    cuts = sorted({i + len(m) for m in marks for i in _find_all(stream, m)})
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _find_all(data: bytes, mark: bytes) -> list[int]:
    out, at = [], data.find(mark)
    while at >= 0:
        out.append(at)
        at = data.find(mark, at + 1)
    return out


def stream_of(pieces: list[bytes]) -> Any:
    return lambda headers, body: Answer(pieces=pieces)


def json_answer(raw: bytes, status: int = 200, length: bool = True) -> Any:
    return lambda headers, body: Answer(status, "application/json", pieces=[raw], length=length)


def completion(content: str = "fine") -> bytes:
    doc = {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 1,
        "model": "engine-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    return json.dumps(doc).encode()


def leak_error(headers: dict[str, str], body: dict) -> Answer:
    """A 500 quoting the request's Authorization header, as a careless proxy does."""
    doc = {"error": {"message": f"bad auth header: {headers.get('authorization')}"}}
    return Answer(500, "application/json", pieces=[json.dumps(doc).encode()], length=True)


def leak_midstream(headers: dict[str, str], body: dict) -> Answer:
    err = {"error": {"message": f"engine died; auth was {headers.get('authorization')}"}}
    pieces = [framed([ABC[0], ABC[1]], b"\n"), framed([json.dumps(err).encode()], b"\n")]
    return Answer(pieces=pieces)


CRLF = framed(ABC, b"\r\n")
CR = framed(ABC, b"\r")
LF = framed(ABC, b"\n")
BIG = b"x" * (EVENT_LIMIT * 4)

SCRIPTS: dict[str, Any] = {
    # framing: reads split inside the blank line's CRLF, CR-only, every byte on its own
    "crlf-split": stream_of(split_at(CRLF, [b"\r\n\r"])),
    "crlf-split-each": stream_of(split_at(CRLF, [b"\r", b"\n"])),
    "cr-only": stream_of(split_at(CR, [b"\r"])),
    "lf-bytewise": stream_of([*(LF[i : i + 1] for i in range(400)), LF[400:]]),
    # limits
    "long-line": stream_of(
        [framed([ABC[0]], b"\n"), b"data: " + BIG[:100_000]]
        + [BIG[i : i + 100_000] for i in range(100_000, len(BIG), 100_000)]
    ),
    "long-event-one-read": stream_of(
        [framed([ABC[0]], b"\n") + b'data: {"x":"' + BIG + b'"}\n\n' + framed(ABC[1:], b"\n")]
    ),
    "big-json": json_answer(completion("y" * (ANSWER_LIMIT * 2))),
    "big-json-chunked": lambda h, b: Answer(
        200, "application/json", pieces=[completion("y" * 100_000)] * 6, length=False
    ),
    "big-error": json_answer(b'{"error":{"message":"' + b"z" * ANSWER_LIMIT * 2 + b'"}}', 500),
    # garbage answers
    "json-broken": json_answer(b"{not json"),
    "json-bad-utf8": json_answer(b'{"choices":[],"x":"\xff\xfe"}'),
    "json-null": json_answer(b"null"),
    "json-array": json_answer(b"[1,2,3]"),
    "json-choices-5": json_answer(b'{"choices": 5}'),
    "json-empty": json_answer(b"{}"),
    "json-choice-no-message": json_answer(b'{"choices":[{"index":0}]}'),
    "redirect": lambda h, b: Answer(
        302, "text/plain", pieces=[b"moved"], length=True, extra_head=b"location: /elsewhere\r\n"
    ),
    # secrets
    "leak-error": leak_error,
    "leak-midstream": leak_midstream,
}
# garbage in the middle of a stream, after one good chunk
for name, payload in {
    "sse-broken": b"{not json",
    "sse-bad-utf8": b'{"choices":[{"index":0,"delta":{"content":"\xff"}}]}',
    "sse-null": b"null",
    "sse-array": b"[1,2,3]",
    "sse-choices-5": b'{"choices": 5}',
}.items():
    SCRIPTS[name] = stream_of([framed([ABC[0], ABC[1]], b"\n"), framed([payload], b"\n")])


def reads_of(name: str, truncated: bool = False) -> list[bytes]:
    """A token stream as engines send it, one network read per chunk (the relay's fast lane),
    mixed with reads the general path takes: two events at once, an event split in two, CRLF
    line ends, spaced JSON, raw UTF-8, the usage chunk, then [DONE] (or nothing: truncated)."""
    model = f"{name}:engine"
    usage = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1,
             "model": model, "choices": [],
             "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}}  # fmt: skip
    spaced = json.dumps(json.loads(chunk({"content": "e"}, model=model))).encode()
    raw_utf8 = json.dumps(
        json.loads(chunk({"content": "ü"}, model=model)), ensure_ascii=False, separators=(",", ":")
    ).encode()
    payloads = [
        chunk({"role": "assistant", "content": ""}, model=model),
        chunk({"content": "a"}, model=model),
        chunk({"content": "b"}, model=model),
        chunk({"content": "c"}, model=model),
        chunk({"content": "d"}, model=model),
        spaced,
        raw_utf8,
        chunk({"content": "f"}, model=model),
        chunk({}, "stop", model=model),
        json.dumps(usage, separators=(",", ":")).encode(),
    ]
    one = [framed([p], b"\n") for p in payloads]
    split = one[3]
    pieces = [
        one[0],
        one[1] + one[2],  # two events in one read
        split[:40],  # one event over two reads
        split[40:],
        framed([payloads[4]], b"\r\n"),
        one[5],
        one[6],
        one[7],
        *([] if truncated else [one[8], one[9], b"data: [DONE]\n\n"]),
    ]
    return pieces


for _name in ("reads", "reads-truncated"):
    SCRIPTS[_name] = stream_of(reads_of(_name, truncated=_name.endswith("truncated")))

AIOHTTP_CASES = ("big-json", "big-json-chunked", "redirect", "json-empty", "crlf-split")


@pytest.fixture(scope="module")
def raw_upstream() -> Iterator[RawUpstream]:
    server = RawUpstream(SCRIPTS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(raw_upstream: RawUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    routes = "\n".join(
        f"""  - name: {name}
    backend: vllm
    base_url: {raw_upstream.base_url}
    upstream_model: {name}:engine
    api_key: {ROUTE_KEY}
    retries: {{attempts: 0}}"""
        for name in SCRIPTS
    )
    # the same upstream through aiohttp (what https upstreams use): credentials in the URL
    # keep a route off backends/h1.py
    aio_url = raw_upstream.base_url.replace("http://", "http://user:pass@")
    routes += "\n" + "\n".join(
        f"""  - name: aio-{name}
    backend: vllm
    base_url: {aio_url}
    upstream_model: {name}:engine
    retries: {{attempts: 0}}"""
        for name in AIOHTTP_CASES
    )
    config = f"""
server:
  log_level: info
  upstream_max_answer_bytes: {ANSWER_LIMIT}
  upstream_max_event_bytes: {EVENT_LIMIT}
  admin_key: {ADMIN_KEY}
  api_keys:
    - {{name: battery, key: {GATEWAY_KEY}}}
models:
{routes}
"""
    proc = GatewayProcess(config, tmp_path_factory.mktemp("attack")).wait_ready()
    yield proc
    proc.stop()


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)


def post(gw: GatewayProcess, model: str, stream: bool = False, path: str = "chat") -> Any:
    body: dict[str, Any] = {"model": model, "stream": stream}
    if path == "chat":
        body["messages"] = [{"role": "user", "content": "hi"}]
        url = gw.url + "/v1/chat/completions"
    else:
        body["input"] = "hi"
        url = gw.url + "/v1/responses"
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    return httpx.post(url, json=body, headers=auth, timeout=30)


def sse_data(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


# -- 1. SSE framing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model", ["crlf-split", "crlf-split-each", "cr-only", "lf-bytewise", "aio-crlf-split"]
)
def test_every_line_end_and_split_relays_the_whole_answer(gw: GatewayProcess, model: str) -> None:
    stream = client(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abc"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {model}  # rewritten on every chunk


def test_reads_of_one_chunk_or_many_relay_the_same_events(gw: GatewayProcess) -> None:
    # whichever way the reads split the stream (push mode's one-chunk lane and its general
    # path, interleaved), every event arrives, in order, with only the model renamed
    resp = post(gw, "reads", stream=True)
    assert resp.status_code == 200
    frames = [b for b in resp.content.split(b"\n\n") if b]
    assert frames[-1] == b"data: [DONE]"
    payloads = [json.loads(f[6:]) for f in frames[:-1]]
    assert len(payloads) == 10
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"])
    assert text == "abcdeüf"
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["usage"]["total_tokens"] == 9
    assert {p["model"] for p in payloads} == {"reads"}
    # a compact chunk read on its own is passed on byte for byte, the model renamed
    for piece in reads_of("reads"):
        lone = piece.count(b"\n") == 2 and piece.endswith(b"}\n\n") and b'": ' not in piece
        if lone:
            assert piece.replace(b'"model":"reads:engine"', b'"model":"reads"') in resp.content
    # no [DONE] and no finish reason: the client is told the answer was cut short
    resp = post(gw, "reads-truncated", stream=True)
    frames = [b for b in resp.content.split(b"\n\n") if b]
    assert len(frames) == 8 + 2
    assert frames[-1] == b"data: [DONE]"
    assert json.loads(frames[-2][6:])["error"]["code"] == "upstream_truncated"


# -- 5. limits ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model", ["big-json", "big-json-chunked", "big-error", "aio-big-json", "aio-big-json-chunked"]
)
def test_an_answer_past_the_limit_is_a_502(gw: GatewayProcess, model: str) -> None:
    resp = post(gw, model)
    assert resp.status_code == 502, resp.text[:300]
    error = resp.json()["error"]
    assert error["code"] == "upstream_too_large"
    assert str(ANSWER_LIMIT) in error["message"]
    assert "upstream_max_answer_bytes" in error["message"]


@pytest.mark.parametrize("model", ["long-line", "long-event-one-read"])
def test_an_event_past_the_limit_ends_the_stream_before_any_of_it(
    gw: GatewayProcess, model: str
) -> None:
    resp = post(gw, model, stream=True)
    assert resp.status_code == 200
    assert "xxxx" not in resp.text  # no part of the oversized event was relayed
    events = sse_data(resp.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1]["error"]["code"] == "upstream_too_large"
    assert "upstream_max_event_bytes" in events[-1]["error"]["message"]
    assert resp.text.endswith("data: [DONE]\n\n")


# -- 6. garbage -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("json-broken", "invalid JSON"),
        ("json-bad-utf8", "invalid JSON"),
        ("json-null", "JSON null, not an object"),
        ("json-array", "JSON list, not an object"),
        ("json-choices-5", "'choices' that is no list"),
        ("json-empty", "no 'choices' list"),
        ("json-choice-no-message", "without a 'message' object"),
        ("redirect", "HTTP 302"),
        ("aio-redirect", "HTTP 302"),
        ("aio-json-empty", "no 'choices' list"),
    ],
)
def test_a_garbage_answer_is_a_502_naming_it(gw: GatewayProcess, model: str, says: str) -> None:
    for path in ("chat", "responses"):
        resp = post(gw, model, path=path)
        assert resp.status_code == 502, (path, resp.text[:300])
        error = resp.json()["error"]
        assert error["code"] == "upstream_invalid", (path, error)
        assert says in error["message"], (path, error)
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502


@pytest.mark.parametrize("model", ["redirect", "aio-redirect"])
def test_a_redirect_on_a_stream_is_a_502_not_a_truncated_200(
    gw: GatewayProcess, model: str
) -> None:
    resp = post(gw, model, stream=True)
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_invalid"


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("sse-broken", "not valid JSON"),
        ("sse-bad-utf8", "not valid UTF-8"),
        ("sse-null", "JSON null"),
        ("sse-array", "JSON list"),
        ("sse-choices-5", "'choices' that is not a list"),
    ],
)
def test_a_garbage_event_ends_the_stream_with_an_error(
    gw: GatewayProcess, model: str, says: str
) -> None:
    resp = post(gw, model, stream=True)
    assert resp.status_code == 200
    events = sse_data(resp.text)
    assert [e["choices"][0]["delta"] for e in events[:2]] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
    ]
    assert len(events) == 3, events  # the garbage itself never reaches the client
    assert events[-1]["error"]["code"] == "upstream_invalid"
    assert says in events[-1]["error"]["message"]
    # the SDK raises instead of returning a short answer
    with pytest.raises(openai.APIError):
        list(
            client(gw).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    # the Responses translation ends with response.failed naming it
    resp = post(gw, model, stream=True, path="responses")
    assert "event: response.failed" in resp.text
    assert "upstream_invalid" in resp.text


# -- 7. secrets -------------------------------------------------------------------------------
def test_an_echoed_route_key_never_reaches_client_or_log(gw: GatewayProcess) -> None:
    for path in ("chat", "responses"):
        resp = post(gw, "leak-error", path=path)
        assert resp.status_code == 500
        assert ROUTE_KEY not in resp.text
        assert "bad auth header: Bearer [redacted]" in resp.json()["error"]["message"]
    for path in ("chat", "responses"):
        resp = post(gw, "leak-midstream", stream=True, path=path)
        assert ROUTE_KEY not in resp.text
        assert "[redacted]" in resp.text
    log = gw.log()
    assert "bad auth header" in log  # the 5xx was logged...
    for secret in (ROUTE_KEY, GATEWAY_KEY, ADMIN_KEY):
        assert secret not in log  # ...without the key


def test_the_gateway_still_serves_after_the_battery(gw: GatewayProcess) -> None:
    stream = client(gw).chat.completions.create(
        model="crlf-split", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "abc"
    assert gw.proc.poll() is None
