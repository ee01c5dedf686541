"""The rollout workload: GRPO groups × multi-turn tool trajectories, and a client that plays
them against one router and measures what RL pays for.

A batch is P prompts × G samples (a GRPO group shares its prompt), every trajectory T turns.
Turn 1 sends a shared system prompt and the group's task prompt; each later turn resends the
whole history plus the model's answer and a tool result, so the context grows every turn.
Between turns a tool runs (a uniform time, in simulated seconds). Lengths are mixed
(uniform in the ranges given), every text, length and tool time is drawn from the seed,
and all P × G trajectories start together, as a trainer's rollout batch does.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

CHARS_PER_TOKEN = 4  # as bench/sim_engine.py counts
WORDS = ("alpha", "beta", "gamma", "delta", "tool", "call", "result", "file", "line", "patch")


def text_of(rng: random.Random, tokens: int) -> str:
    out: list[str] = []
    size = 0
    while size < tokens * CHARS_PER_TOKEN:
        word = rng.choice(WORDS) + str(rng.randrange(1000))
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[: tokens * CHARS_PER_TOKEN]


@dataclass(frozen=True)
class Shape:
    prompts: int = 8
    group: int = 8
    turns: int = 3
    seed: int = 0
    system_tokens: int = 1500
    prompt_tokens: tuple[int, int] = (300, 3000)
    tool_tokens: tuple[int, int] = (50, 800)
    output_tokens: tuple[int, int] = (30, 250)
    tool_seconds: tuple[float, float] = (0.2, 2.0)  # simulated time a tool runs
    speed: float = 5.0  # simulated seconds per real second (as the engines run)
    stream: bool = False


@dataclass
class Trajectory:
    session: str  # unique per trajectory
    group: int
    sample: int
    messages: list[dict[str, Any]]
    outputs: list[int]  # max_tokens per turn
    tools: list[str]  # the tool result after each turn but the last
    tool_s: list[float]  # how long each tool runs (simulated seconds)
    seeds: list[int]


def build(shape: Shape) -> list[Trajectory]:
    rng = random.Random(shape.seed)
    system = "You are a coding agent. Tools: " + text_of(rng, shape.system_tokens)
    out = []
    for p in range(shape.prompts):
        task = f"Task {p}: " + text_of(rng, rng.randint(*shape.prompt_tokens))
        for g in range(shape.group):
            out.append(
                Trajectory(
                    session=f"s{shape.seed}-p{p}-g{g}",
                    group=p,
                    sample=g,
                    messages=[
                        {"role": "system", "content": system},
                        {"role": "user", "content": task},
                    ],
                    outputs=[rng.randint(*shape.output_tokens) for _ in range(shape.turns)],
                    tools=[
                        "Tool output: " + text_of(rng, rng.randint(*shape.tool_tokens))
                        for _ in range(shape.turns - 1)
                    ],
                    tool_s=[rng.uniform(*shape.tool_seconds) for _ in range(shape.turns - 1)],
                    seeds=[rng.randrange(1 << 30) for _ in range(shape.turns)],
                )
            )
    rng.shuffle(out)  # a trainer's batch arrives interleaved, not group by group
    return out


@dataclass
class Client:
    """How one router is talked to: its URL, the session key header, the end-of-session call."""

    url: str  # .../v1/chat/completions, or several (client-side round robin)
    model: str
    session_header: str | None = None
    finish: Callable[[aiohttp.ClientSession, str], Awaitable[None]] | None = None
    direct_urls: list[str] = field(default_factory=list)


@dataclass
class Result:
    makespan_s: float
    turn_ms: list[float]
    errors: list[str]


async def _turn(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool
) -> str:
    async with http.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
        if not stream:
            answer = orjson.loads(await resp.read())
            return answer["choices"][0]["message"]["content"]
        parts: list[str] = []
        buf = b""
        async for data in resp.content.iter_any():
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data: ") or event == b"data: [DONE]":
                    continue
                chunk = orjson.loads(event[6:])
                for choice in chunk.get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts)


async def play(client: Client, trajectories: list[Trajectory], shape: Shape) -> Result:
    turn_ms: list[float] = []
    errors: list[str] = []
    counter = 0
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(traj: Trajectory) -> None:
            nonlocal counter
            messages = list(traj.messages)
            headers = {"content-type": "application/json"}
            if client.session_header:
                headers[client.session_header] = traj.session
            try:
                for t in range(shape.turns):
                    body: dict[str, Any] = {
                        "model": client.model,
                        "messages": messages,
                        "max_tokens": traj.outputs[t],
                        "seed": traj.seeds[t],
                        "temperature": 1.0,
                    }
                    if shape.stream:
                        body["stream"] = True
                        body["stream_options"] = {"include_usage": True}
                    if client.direct_urls:
                        url = client.direct_urls[counter % len(client.direct_urls)]
                        counter += 1
                    else:
                        url = client.url
                    start = time.perf_counter()
                    content = await _turn(http, url, orjson.dumps(body), headers, shape.stream)
                    turn_ms.append((time.perf_counter() - start) * 1000)
                    messages.append({"role": "assistant", "content": content})
                    if t < shape.turns - 1:
                        await asyncio.sleep(traj.tool_s[t] / shape.speed)
                        messages.append({"role": "user", "content": traj.tools[t]})
            except Exception as exc:  # counted, the batch goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                if client.finish is not None:
                    try:
                        await client.finish(http, traj.session)
                    except Exception as exc:
                        errors.append(f"finish: {type(exc).__name__}: {exc}"[:300])

        start = time.perf_counter()
        await asyncio.gather(*(one(t) for t in trajectories))
        makespan = time.perf_counter() - start
    return Result(makespan, turn_ms, errors)
