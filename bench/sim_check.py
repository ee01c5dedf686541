"""Checks the simulated engine's shape against a real vLLM server: the same two experiments
on both, ratios side by side.

1. Prefix cache: TTFT of a long prompt seen for the first time, of one whose first half was
   seen, and of the same prompt again (cached); median of 3 prompts.
2. Batching: time per output token of 1 request alone, then of 8 at once (`ignore_eos`,
   same `max_tokens`).

    python bench/sim_check.py --url http://127.0.0.1:8012 --model tiny-llama   # a vLLM
    python bench/sim_check.py --sim                                            # the model

`--sim` starts bench/sim_engine.py (one replica, real time) and measures it the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent


def prompt(rng: random.Random, words: int) -> str:
    return " ".join(f"w{rng.randrange(100000)}" for _ in range(words))


async def ttft(http: aiohttp.ClientSession, url: str, model: str, text: str) -> tuple[float, int]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    prompt_tokens = 0
    async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk.get("choices"):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                prompt_tokens = chunk["usage"]["prompt_tokens"]
    return (first or time.perf_counter() - start) * 1000, prompt_tokens


async def decode(http: aiohttp.ClientSession, url: str, model: str, n: int, tokens: int) -> float:
    """ms per output token, averaged over the `n` concurrent requests (TTFT excluded)."""

    async def one(i: int) -> float:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": f"count {i}"}],
            "max_tokens": tokens,
            "ignore_eos": True,
            "stream": True,
        }
        first = last = None
        async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if line.startswith(b"data: {"):
                    last = time.perf_counter()
                    first = first or last
        assert first is not None and last is not None
        return (last - first) * 1000 / (tokens - 1)

    return statistics.mean(await asyncio.gather(*(one(i) for i in range(n))))


async def measure(url: str, model: str, words: int, tokens: int) -> dict[str, float]:
    rng = random.Random(time.time_ns())  # prompts never seen by this server before
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        await ttft(http, url, model, "warm up")
        await decode(http, url, model, 1, 8)
        cold, half, warm, sizes = [], [], [], []
        for _ in range(3):
            text = prompt(rng, words)
            c, size = await ttft(http, url, model, text)
            w, _ = await ttft(http, url, model, text)
            # the first half cached, the second half new
            h, _ = await ttft(http, url, model, text[: len(text) // 2] + prompt(rng, words // 2))
            cold.append(c)
            warm.append(w)
            half.append(h)
            sizes.append(size)
        one = statistics.median([await decode(http, url, model, 1, tokens) for _ in range(3)])
        eight = statistics.median([await decode(http, url, model, 8, tokens) for _ in range(3)])
    return {
        "prompt_tokens": statistics.median(sizes),
        "ttft_uncached_ms": round(statistics.median(cold), 2),
        "ttft_half_cached_ms": round(statistics.median(half), 2),
        "ttft_cached_ms": round(statistics.median(warm), 2),
        "uncached_over_cached": round(statistics.median(cold) / statistics.median(warm), 2),
        "tpot_batch1_ms": round(one, 2),
        "tpot_batch8_ms": round(eight, 2),
        "batch8_over_batch1": round(eight / one, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8012")
    p.add_argument("--model", default="tiny-llama")
    p.add_argument("--sim", action="store_true", help="measure bench/sim_engine.py instead")
    p.add_argument("--words", type=int, default=700, help="prompt length in words")
    p.add_argument("--tokens", type=int, default=64, help="output tokens in the decode test")
    args = p.parse_args()
    proc = None
    if args.sim:
        port_file = Path(tempfile.mkdtemp()) / "ports.json"
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "sim_engine.py"), "--replicas", "1", "--speed", "1",
             "--port-file", str(port_file)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        while not port_file.exists():
            time.sleep(0.05)
        args.url = f"http://127.0.0.1:{json.loads(port_file.read_text())['ports'][0]}"
        args.model = "sim-model"
    try:
        out = asyncio.run(measure(args.url, args.model, args.words, args.tokens))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    print(json.dumps({"server": "sim" if args.sim else args.url, **out}))


if __name__ == "__main__":
    main()
