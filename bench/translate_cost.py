"""Micro-benchmark: what /v1/responses costs over a plain Chat pass-through, per request.

It times only the work that differs between the two paths, on the benchmark's bodies and the
fake upstream's answers:
  * JSON: validation + Responses->Chat request translation + Chat->Responses answer
    translation + encoding the (larger) Response, minus the Chat path's validation + encoding;
  * stream (50 chunks): parsing each chunk, the event state machine and framing the events,
    minus the Chat relay's byte-level model rewrite and framing.
Medians of several repeats; run pinned to an idle core:

    python bench/translate_cost.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import orjson  # noqa: E402
from bodies import chat_body, responses_body  # noqa: E402
from fake_upstream import CHAT_BODY, build_stream  # noqa: E402

from gateway.relay import ModelRewriter  # noqa: E402
from gateway.responses_api import _frames  # noqa: E402
from gateway.sse import frame_data  # noqa: E402
from gateway.translate import (  # noqa: E402
    DEFAULT_DIALECT,
    ResponsesStreamTranslator,
    chat_to_response,
    responses_to_chat,
)
from gateway.validation import check_chat_body, check_responses_body  # noqa: E402

MODEL = "bench-model"


def per_call_us(fn: Callable[[], object], repeats: int = 7, min_time: float = 0.2) -> float:
    """Median over `repeats` of the mean time per call, in microseconds."""
    n = 1
    while True:  # calibrate: enough calls for `min_time` seconds per repeat
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time / 4:
            break
        n *= 2
    n = max(1, int(n * min_time / max(time.perf_counter() - t0, 1e-9)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def measure() -> dict[str, float]:
    upstream_answer = CHAT_BODY
    stream_payloads = [p[6:-2] for p in build_stream(50)[:-1]]  # SSE data, without [DONE]

    def responses_json() -> None:
        body = orjson.loads(orjson.dumps(responses_body(MODEL)))  # the handler gets a fresh dict
        check_responses_body(body)
        responses_to_chat(body, DEFAULT_DIALECT)
        orjson.dumps(chat_to_response(orjson.loads(upstream_answer), body, model=MODEL))

    def chat_json() -> None:
        body = orjson.loads(orjson.dumps(chat_body(MODEL)))
        check_chat_body(body)
        answer = orjson.loads(upstream_answer)
        answer["model"] = MODEL
        orjson.dumps(answer)

    def responses_stream() -> None:  # as gateway/responses_api.py relays it (framed)
        translator = ResponsesStreamTranslator(
            responses_body(MODEL, True), model=MODEL, framed=True
        )
        out = [_frames(translator.start())]
        for payload in stream_payloads:
            out.append(_frames(translator.feed(orjson.loads(payload))))
        out.append(_frames(translator.finish()))

    def chat_stream() -> None:
        rewrite = ModelRewriter("fake", MODEL)
        out = [frame_data(rewrite(p)) for p in stream_payloads]
        out.append(b"data: [DONE]\n\n")

    results = {
        "responses_json_us": per_call_us(responses_json),
        "chat_json_us": per_call_us(chat_json),
        "responses_stream_us": per_call_us(responses_stream),
        "chat_stream_us": per_call_us(chat_stream),
    }
    results["json_overhead_us"] = results["responses_json_us"] - results["chat_json_us"]
    results["stream_overhead_us"] = results["responses_stream_us"] - results["chat_stream_us"]
    results["stream_chunks"] = len(stream_payloads)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:24s} {value:10.1f}")


if __name__ == "__main__":
    main()
