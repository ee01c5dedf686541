"""Simulated vLLM replicas for the rollout benchmark: what dominates engine time, in a model.

Each replica listens on its own port and speaks OpenAI Chat (JSON and SSE) like
`vllm serve`. Inside, a continuous-batching scheduler runs in simulated time:

* **Prompt → blocks.** The prompt is the messages rendered as `<|role|>content` in turn; one
  token is 4 characters, one KV block 16 tokens (vLLM's default `--block-size`). A block's
  hash chains its predecessor's, as vLLM's prefix cache does (`hash_block_tokens`), so two
  prompts share cached blocks only up to their first difference.
* **Prefix cache of finite capacity** (`--kv-tokens` per replica): blocks held by running
  requests cannot be evicted; released blocks stay cached, the least recently used evicted
  first. A new request hits the leading blocks already present; the generated answer's full
  blocks are cached when it finishes (the next turn resends it as history).
* **A step** (one forward pass) costs `step_ms + seq_ms × running decodes + prefill_ms ×
  prefill tokens this step`; prefill is chunked (`--prefill-chunk` tokens per step, vLLM's
  `max_num_batched_tokens`) and only *uncached* prompt tokens cost prefill.
* **A batch cap** (`--max-batch`, vLLM's `max_num_seqs`) and KV capacity bound the running
  set; the rest waits in a FIFO queue.
* Generated length is `max_tokens` (as with `ignore_eos`); the text is derived from the
  request's `seed`, so samples of one group diverge and a turn's history is reproducible.

Default parameters, for Llama-3.1-8B BF16 on one H100 with vLLM (see docs/performance.md,
"Rollout routing"): decode step 6.2 ms + 0.29 ms per running sequence, fitted to TPOT 6.48 ms
at concurrency 1 and 10.94 ms at 16 (InferenceBench concurrency sweep, vLLM 0.21.0, H100-80GB,
2026-05-16, yobitelcomm.github.io/bench/recipes/concurrency-sweep); prefill 0.04 ms per
uncached token (8B ≈ 16 GFLOP per token at ~40 % of the H100's 990 dense BF16 TFLOPS; a
cached prefix cuts TTFT by 7× at 2 kB and 18× at 8 kB in gigagpu.com's vLLM measurements,
which this model reproduces in shape). `--speed` runs simulated time faster than real time;
the routers' own cost is real time and is not scaled.

    python bench/sim_engine.py --replicas 4 [--port-file ports.json] [--speed 5]

`GET /sim/stats` on a replica: its counters; `POST /sim/reset`: empty cache and counters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from http_read import take_request

CHARS_PER_TOKEN = 4
BLOCK_TOKENS = 16
BLOCK_CHARS = CHARS_PER_TOKEN * BLOCK_TOKENS
ALPHABET = "abcdefghijklmnopqrstuvwxyz     "


def render(messages: list[dict[str, Any]]) -> str:
    """The prompt text the engine would tokenise (a chat template in miniature)."""
    parts = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str):
            content = orjson.dumps(content).decode() if content is not None else ""
        parts.append(f"<|{m.get('role', 'user')}|>{content}")
    return "".join(parts)


def block_hashes(text: str) -> list[int]:
    """Chained hashes of the text's full blocks (a partial last block is not cached)."""
    out, prev = [], 0
    for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
        prev = hash((prev, text[start : start + BLOCK_CHARS]))
        out.append(prev)
    return out


def generated_text(seed: int, tokens: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(ALPHABET, k=tokens * CHARS_PER_TOKEN))


def tokens_of(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class Params:
    step_ms: float = 6.2
    seq_ms: float = 0.29
    prefill_ms: float = 0.04
    prefill_chunk: int = 8192
    max_batch: int = 256
    kv_tokens: int = 200_000
    speed: float = 5.0
    stream_interval: int = 8
    # vLLM's `--scheduling-policy priority`: the waiting request with the lowest `priority`
    # is admitted first (ties by arrival), instead of first come, first served
    priority_scheduling: bool = False


@dataclass(eq=False)
class SimRequest:
    messages: list[dict[str, Any]]
    text: str
    hashes: list[int]
    prompt_tokens: int
    max_tokens: int
    seed: int
    stream: bool
    out: asyncio.Queue[bytes | None]
    arrived: float
    cached_tokens: int = 0
    prefill_left: int = 0
    generated: int = 0
    held: list[int] = field(default_factory=list)  # prompt blocks it pins
    anon_blocks: int = 0  # blocks for the tokens it generated
    sent_tokens: int = 0
    text_out: str = ""
    priority: float = 0.0  # lower first, under Params.priority_scheduling


class Replica:
    """One engine: the block cache, the scheduler and its simulated clock."""

    def __init__(self, index: int, params: Params) -> None:
        self.index = index
        self.p = params
        self.capacity = params.kv_tokens // BLOCK_TOKENS
        self.used: dict[int, int] = {}  # block hash -> requests pinning it
        self.free: OrderedDict[int, None] = OrderedDict()  # cached, evictable, LRU first
        self.anon = 0  # blocks of generated tokens not yet hashed
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.wake = asyncio.Event()
        self.t0 = time.monotonic()
        self.clock = 0.0  # simulated seconds
        self.reset_stats()

    def reset_stats(self) -> None:
        self.served = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.busy_s = 0.0
        self.peak_running = 0
        self.peak_waiting = 0
        self.evicted = 0

    def reset(self) -> None:
        self.used.clear()
        self.free.clear()
        self.anon = 0
        self.reset_stats()

    def stats(self) -> dict[str, Any]:
        return {
            "replica": self.index,
            "served": self.served,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "hit_rate": round(self.cached_tokens / self.prompt_tokens, 4)
            if self.prompt_tokens
            else 0.0,
            "busy_sim_s": round(self.busy_s, 3),
            "peak_running": self.peak_running,
            "peak_waiting": self.peak_waiting,
            "evicted_blocks": self.evicted,
            "cached_blocks": len(self.free) + len(self.used),
            "running": len(self.running),
            "waiting": len(self.waiting),
        }

    def now_sim(self) -> float:
        return (time.monotonic() - self.t0) * self.p.speed

    # -- the block cache -------------------------------------------------------------------
    def _in_use(self) -> int:
        return len(self.used) + self.anon

    def _make_room(self, blocks: int) -> bool:
        """Evict least recently used free blocks until `blocks` more fit; False if they can't."""
        while self._in_use() + len(self.free) + blocks > self.capacity:
            if not self.free:
                return False
            self.free.popitem(last=False)
            self.evicted += 1
        return True

    def _fits(self, req: SimRequest) -> bool:
        new = sum(1 for h in req.hashes if h not in self.used)
        # blocks of the prompt not pinned yet + the answer's blocks, all must be claimable
        need = new + -(-req.max_tokens // BLOCK_TOKENS) + 1
        return self._in_use() + need <= self.capacity

    def _admit(self, req: SimRequest) -> None:
        hit = 0
        for h in req.hashes:
            if h in self.used or h in self.free:
                hit += 1
            else:
                break
        for i, h in enumerate(req.hashes):
            if h in self.used:
                self.used[h] += 1
            elif h in self.free and i < hit:
                del self.free[h]
                self.used[h] = 1
            else:
                self.free.pop(h, None)
                self._make_room(1)
                self.used[h] = 1
            req.held.append(h)
        req.cached_tokens = min(hit * BLOCK_TOKENS, req.prompt_tokens - 1)
        req.prefill_left = req.prompt_tokens - req.cached_tokens
        self.served += 1
        self.prompt_tokens += req.prompt_tokens
        self.cached_tokens += req.cached_tokens
        self.running.append(req)

    def _finish(self, req: SimRequest) -> None:
        for h in req.held:  # release: pinned blocks become evictable, most recent last
            n = self.used[h] - 1
            if n:
                self.used[h] = n
            else:
                del self.used[h]
                self.free[h] = None
        self.anon -= req.anon_blocks
        # the answer's full blocks, hashed as the next turn's history will hash them
        history = req.text + render([{"role": "assistant", "content": req.text_out}])
        for h in block_hashes(history)[len(req.hashes) :]:
            if h in self.used or h in self.free:
                continue
            if not self._make_room(1):
                break
            self.free[h] = None

    # -- the scheduler ---------------------------------------------------------------------
    def submit(self, req: SimRequest) -> None:
        self.waiting.append(req)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        self.wake.set()

    def _schedule(self) -> None:
        while self.waiting and len(self.running) < self.p.max_batch:
            if self.p.priority_scheduling:  # min() keeps the first of equals: arrival order
                req = min(self.waiting, key=lambda r: r.priority)
            else:
                req = self.waiting[0]
            if not self._fits(req) and self.running:
                break  # wait for blocks to free up (a lone request always runs)
            self.waiting.remove(req)
            self._admit(req)
        self.peak_running = max(self.peak_running, len(self.running))

    def _plan_step(self) -> tuple[float, list[tuple[SimRequest, int]], list[SimRequest]]:
        budget = self.p.prefill_chunk
        prefills: list[tuple[SimRequest, int]] = []
        decodes: list[SimRequest] = []
        for req in self.running:
            if req.prefill_left:
                if budget:
                    take = min(budget, req.prefill_left)
                    budget -= take
                    prefills.append((req, take))
            else:
                decodes.append(req)
        prefill_tokens = sum(n for _, n in prefills)
        ms = self.p.step_ms + self.p.seq_ms * len(decodes) + self.p.prefill_ms * prefill_tokens
        return ms / 1000.0, prefills, decodes

    def _apply_step(
        self, prefills: list[tuple[SimRequest, int]], decodes: list[SimRequest]
    ) -> None:
        for req, n in prefills:
            req.prefill_left -= n
            if not req.prefill_left:
                self._token(req)  # the prefill's last chunk yields the first token
        for req in decodes:
            self._token(req)
        done = [r for r in self.running if r.generated >= r.max_tokens]
        if done:
            self.running = [r for r in self.running if r.generated < r.max_tokens]
            for req in done:
                self._finish(req)
                req.out.put_nowait(None)

    def _token(self, req: SimRequest) -> None:
        req.generated += 1
        if req.generated % BLOCK_TOKENS == 1:
            req.anon_blocks += 1
            self.anon += 1
        if req.generated == 1:
            req.text_out = generated_text(req.seed, req.max_tokens)
        if req.stream and (
            req.generated == 1
            or req.generated - req.sent_tokens >= self.p.stream_interval
            or req.generated >= req.max_tokens
        ):
            start, req.sent_tokens = req.sent_tokens, req.generated
            piece = req.text_out[start * CHARS_PER_TOKEN : req.generated * CHARS_PER_TOKEN]
            req.out.put_nowait(piece.encode())

    async def run(self) -> None:
        while True:
            if not self.waiting and not self.running:
                self.wake.clear()
                await self.wake.wait()
                self.clock = max(self.clock, self.now_sim())
            self._schedule()
            seconds, prefills, decodes = self._plan_step()
            self.clock += seconds
            self.busy_s += seconds
            delay = (self.clock - self.now_sim()) / self.p.speed
            if delay > 0:
                await asyncio.sleep(delay)
            self._apply_step(prefills, decodes)


# ---- HTTP ---------------------------------------------------------------------------------

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_response(status: int, body: Any) -> bytes:
    data = orjson.dumps(body)
    reason = {200: b"OK", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found"}.get(
        status, b"OK"
    )
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        reason,
        len(data),
        data,
    )


def _tokenize(raw: bytes) -> dict[str, Any]:
    """vLLM's POST /tokenize answer (a prompt or chat messages), on this model's tokens."""
    try:
        body = orjson.loads(raw)
        text = render(body["messages"]) if "messages" in body else str(body.get("prompt", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = ""
    tokens = [hash(text[i : i + CHARS_PER_TOKEN]) & 0xFFFF for i in range(0, len(text), 4)]
    return {"count": len(tokens), "max_model_len": 131072, "tokens": tokens, "token_strs": None}


class EngineProtocol(asyncio.Protocol):
    def __init__(self, replica: Replica, model: str) -> None:
        self.replica = replica
        self.model = model
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.chain: asyncio.Future[None] | None = None  # answers go out in request order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (request := take_request(self.buf)) is not None:
            (method, path, *_), body, end = request
            self.buf = self.buf[end:]
            task = asyncio.ensure_future(self.respond(method, path, body, self.chain))
            self.chain = task
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def respond(
        self, method: bytes, path: bytes, body: bytes, before: asyncio.Future[None] | None
    ) -> None:
        path = path.split(b"?", 1)[0]
        if path.endswith(b"/chat/completions") and method == b"POST":
            await self.chat(body, before)
            return
        if before is not None:
            await asyncio.wait([before])
        if path in (b"/health", b"/healthz", b"/ping"):
            self.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        elif path == b"/tokenize" and method == b"POST":
            self.write(_json_response(200, _tokenize(body)))
        elif path.endswith(b"/chat/completions/render"):
            # vLLM 0.32 without --enable-scale-out answers this (vllm-router asks for it)
            message = (
                "Scale-out endpoints are disabled. Restart vllm serve with --enable-scale-out "
                "to enable them."
            )
            error = {"message": message, "type": "PermissionDeniedError", "param": None}
            self.write(_json_response(403, {"error": {**error, "code": 403}}))
        elif path == b"/version":  # what routers probe to recognise a vLLM worker
            self.write(_json_response(200, {"version": "0.32.0"}))
        elif path.endswith(b"/models"):
            card = {
                "id": self.model,
                "object": "model",
                "owned_by": "vllm",
                "max_model_len": 131072,
            }
            self.write(_json_response(200, {"object": "list", "data": [card]}))
        elif path == b"/sim/stats":
            self.write(_json_response(200, self.replica.stats()))
        elif path == b"/sim/reset" and method == b"POST":
            self.replica.reset()
            self.write(_json_response(200, {"reset": True}))
        else:
            print(f"sim replica {self.replica.index}: 404 {method!r} {path!r}", file=sys.stderr)
            self.write(_json_response(404, {"error": {"message": "not found", "code": 404}}))

    async def chat(self, raw: bytes, before: asyncio.Future[None] | None) -> None:
        try:
            body = orjson.loads(raw)
            messages = body["messages"]
            text = render(messages)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            if before is not None:
                await asyncio.wait([before])
            self.write(_json_response(400, {"error": {"message": f"bad request: {exc}"}}))
            return
        stream = bool(body.get("stream"))
        req = SimRequest(
            messages=messages,
            text=text,
            hashes=block_hashes(text),
            prompt_tokens=max(1, tokens_of(text)),
            max_tokens=max(
                1, int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
            ),
            seed=int(body.get("seed") or 0),
            stream=stream,
            out=asyncio.Queue(),
            arrived=time.monotonic(),
        )
        self.replica.submit(req)
        ident = f"chatcmpl-sim{self.replica.index}-{id(req):x}"
        model = body.get("model") or self.model
        if before is not None:
            await asyncio.wait([before])
        if not stream:
            while await req.out.get() is not None:
                pass
            self.write(_json_response(200, self._answer(ident, model, req)))
            return
        self.write(SSE_HEAD)
        first = True
        while (piece := await req.out.get()) is not None:
            delta: dict[str, Any] = {"content": piece.decode()}
            if first:
                delta = {"role": "assistant", **delta}
                first = False
            self.write(_http_chunk(self._chunk(ident, model, delta, None)))
        self.write(_http_chunk(self._chunk(ident, model, {}, "length")))
        usage_chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": self._usage(req),
        }
        self.write(_http_chunk(b"data: " + orjson.dumps(usage_chunk) + b"\n\n"))
        self.write(_http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    @staticmethod
    def _usage(req: SimRequest) -> dict[str, Any]:
        return {
            "prompt_tokens": req.prompt_tokens,
            "completion_tokens": req.generated,
            "total_tokens": req.prompt_tokens + req.generated,
            "prompt_tokens_details": {"cached_tokens": req.cached_tokens},
        }

    def _answer(self, ident: str, model: str, req: SimRequest) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": req.text_out},
                    "finish_reason": "length",
                }
            ],
            "usage": self._usage(req),
        }

    @staticmethod
    def _chunk(ident: str, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"


async def serve(args: argparse.Namespace) -> None:
    params = Params(
        step_ms=args.step_ms,
        seq_ms=args.seq_ms,
        prefill_ms=args.prefill_ms,
        prefill_chunk=args.prefill_chunk,
        max_batch=args.max_batch,
        kv_tokens=args.kv_tokens,
        speed=args.speed,
        stream_interval=args.stream_interval,
    )
    loop = asyncio.get_running_loop()
    ports, servers, runners = [], [], []
    for i in range(args.replicas):
        replica = Replica(i, params)
        server = await loop.create_server(
            lambda r=replica: EngineProtocol(r, args.model),
            args.host,
            args.base_port + i if args.base_port else 0,
            backlog=4096,
        )
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
        runners.append(asyncio.ensure_future(replica.run()))
    info = {"ports": ports, "params": params.__dict__, "pid": __import__("os").getpid()}
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            json.dump(info, f)
        __import__("os").replace(args.port_file + ".tmp", args.port_file)
    print(f"sim engine: {args.replicas} replicas on {ports} ({params})", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Params()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--base-port", type=int, default=0, help="0: any free ports")
    p.add_argument("--port-file", help="write the ports (JSON) here once listening")
    p.add_argument("--model", default="sim-model")
    p.add_argument("--step-ms", type=float, default=d.step_ms)
    p.add_argument("--seq-ms", type=float, default=d.seq_ms)
    p.add_argument("--prefill-ms", type=float, default=d.prefill_ms)
    p.add_argument("--prefill-chunk", type=int, default=d.prefill_chunk)
    p.add_argument("--max-batch", type=int, default=d.max_batch)
    p.add_argument("--kv-tokens", type=int, default=d.kv_tokens)
    p.add_argument("--speed", type=float, default=d.speed)
    p.add_argument("--stream-interval", type=int, default=d.stream_interval)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
