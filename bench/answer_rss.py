"""Peak RSS of the gateway for the largest upstream answers its default limits allow
(issue 18.5; docs/operations.md, "Limits on upstream answers", quotes the figures).

Each shape runs in a fresh gateway process (default config limits, one worker) behind a
loopback upstream that sends one answer just under the limit; the figure is the process's
VmHWM (peak resident set) before and after that one request. Shapes:

- json-text:     a Chat answer whose content is one ~64 MiB string
- json-logprobs: a Chat answer with ~64 MiB of per-token logprobs (many small objects:
                 what an RL answer with logprobs looks like, the worst case for Python)
- sse-event:     a stream with one ~16 MiB event (server.upstream_max_event_bytes)
- json-over:     a 65 MiB answer: refused (502 upstream_too_large) as it arrives

    .venv/bin/python bench/answer_rss.py [shape ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.http import DEFAULT_LIMITS
from tests.gateway_process import GatewayProcess
from tests.raw_upstream import Answer, RawUpstream

MIB = 1024 * 1024
ANSWER = DEFAULT_LIMITS.answer_bytes
EVENT = DEFAULT_LIMITS.event_bytes


def chat_answer(message: dict, logprobs: list | None = None) -> dict:
    choice = {"index": 0, "message": message, "finish_reason": "length"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"id": "chatcmpl-big", "object": "chat.completion", "created": 1, "model": "big",
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip


def fit(build: object, target: int) -> bytes:
    """The largest body build(n) makes that stays under `target` bytes."""
    low, high = 1, 1
    while len(build(high)) < target:  # type: ignore[operator]
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if len(build(mid)) < target:  # type: ignore[operator]
            low = mid
        else:
            high = mid
    return build(low)  # type: ignore[operator,no-any-return]


def text_body(n: int) -> bytes:
    return json.dumps(chat_answer({"role": "assistant", "content": "x" * n})).encode()


_TOKEN = {"token": "token_id:12345", "logprob": -0.123456, "bytes": [32, 116], "top_logprobs": []}


def logprobs_body(n: int) -> bytes:
    tokens = [_TOKEN] * n
    answer = chat_answer({"role": "assistant", "content": "t" * n}, tokens)
    return json.dumps(answer, separators=(",", ":")).encode()


def shapes() -> dict[str, Answer]:
    text = fit(text_body, ANSWER - 1024)
    logprobs = fit(logprobs_body, ANSWER - 1024)
    event = b'{"choices":[{"index":0,"delta":{"content":"' + b"y" * (EVENT - 200) + b'"}}]}'
    over = text_body(ANSWER + MIB)
    return {
        "json-text": Answer(200, "application/json", [text], length=True),
        "json-logprobs": Answer(200, "application/json", [logprobs], length=True),
        "sse-event": Answer(pieces=[b"data: " + event + b"\n\n", b"data: [DONE]\n\n"]),
        "json-over": Answer(200, "application/json", [over], length=True),
    }


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(name: str, answer: Answer, workdir: Path) -> None:
    upstream = RawUpstream({"big": lambda headers, body: answer}).start()
    config = f"""
server: {{log_level: warning, request_log: false}}
models:
  - {{name: big, backend: vllm, base_url: "{upstream.base_url}", retries: {{attempts: 0}}}}
"""
    gateway = GatewayProcess(config, workdir).wait_ready()
    try:
        body = {"model": "big", "messages": [{"role": "user", "content": "hi"}]}
        httpx.post(gateway.url + "/v1/chat/completions", json={**body, "model": "none"})
        before = peak_rss(gateway.proc.pid)
        size = sum(map(len, answer.pieces or []))
        resp = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={**body, "stream": name.startswith("sse")},
            timeout=300,
        )
        after = peak_rss(gateway.proc.pid)
        print(
            f"{name:14s} upstream {size / MIB:6.1f} MiB -> HTTP {resp.status_code}, "
            f"{len(resp.content) / MIB:6.1f} MiB to the client; gateway peak RSS "
            f"{before / MIB:6.1f} -> {after / MIB:6.1f} MiB (+{(after - before) / MIB:.1f})",
            flush=True,
        )
    finally:
        gateway.stop()
        upstream.stop()


def main() -> None:
    wanted = sys.argv[1:]
    print(f"limits: answer {ANSWER / MIB:.0f} MiB, event {EVENT / MIB:.0f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, answer in shapes().items():
            if not wanted or name in wanted:
                measure(name, answer, Path(tmp))


if __name__ == "__main__":
    main()
