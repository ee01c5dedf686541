"""One request to one route through the gateway's HTTP API, measured from the client side."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

from gateway.compare.answers import StreamAssembler, answer_text
from gateway.compare.inputs import PATHS, Case
from gateway.fidelity import HEADER as FIDELITY_HEADER


@dataclass(slots=True)
class Result:
    index: int
    case_id: str
    route: str
    repeat: int
    endpoint: str
    ok: bool
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    fidelity: str | None = None  # the x-gateway-param-fidelity header
    text: str = ""
    error: str | None = None
    request_id: str | None = None
    cost: float | None = None  # filled by stats from the route's price
    answer: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def request_body(case: Case, route: str, stream: bool | None) -> dict[str, Any]:
    body = {**case.body, "model": route}
    if stream is not None:
        body["stream"] = stream
    if body.get("stream") and case.endpoint == "chat":
        # usage in the last chunk, so streamed answers count tokens too
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


def _usage(answer: Any) -> tuple[int | None, int | None]:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None, None
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
    return tokens_in, tokens_out


def _error_message(answer: Any, status: int) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return f"{status} {code}: {error.get('message')}" if code else f"{status}: {error}"
    return f"HTTP {status}"


async def send(
    session: aiohttp.ClientSession,
    base_url: str,
    case: Case,
    route: str,
    repeat: int = 0,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    body = request_body(case, route, stream)
    started = time.perf_counter()
    result = Result(case.index, case.id, route, repeat, case.endpoint, False, 0, 0.0)
    try:
        async with session.post(
            base_url + PATHS[case.endpoint], data=orjson.dumps(body), headers=headers
        ) as response:
            result.status = response.status
            result.fidelity = response.headers.get(FIDELITY_HEADER)
            result.request_id = response.headers.get("x-request-id")
            is_sse = response.content_type == "text/event-stream"
            if is_sse and response.status == 200:
                answer = await _read_stream(response, result, started)
            else:
                raw = await response.read()
                try:
                    answer = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    answer = {"error": {"message": raw[:200].decode(errors="replace")}}
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.error = f"transport: {type(exc).__name__}: {exc}"
        return result
    result.latency_ms = (time.perf_counter() - started) * 1000
    result.answer = answer
    result.tokens_in, result.tokens_out = _usage(answer)
    failed = isinstance(answer, dict) and (
        answer.get("error") or answer.get("status") in ("failed", "incomplete")
    )
    result.ok = result.status == 200 and not failed
    result.text = answer_text(answer)
    if not result.ok:
        result.error = _error_message(answer, result.status)
    return result


async def _read_stream(
    response: aiohttp.ClientResponse, result: Result, started: float
) -> dict[str, Any]:
    """Read SSE events as they come; TTFT is the first event that carries output."""
    assembler = StreamAssembler()
    buffer = b""
    async for piece in response.content.iter_any():
        buffer += piece.replace(b"\r\n", b"\n")
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            data = b"\n".join(
                line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
            )
            if data and assembler.feed(data) and result.ttft_ms is None:
                result.ttft_ms = (time.perf_counter() - started) * 1000
    if result.ttft_ms is None:  # nothing but metadata arrived (an empty answer)
        result.ttft_ms = (time.perf_counter() - started) * 1000
    return assembler.answer()
