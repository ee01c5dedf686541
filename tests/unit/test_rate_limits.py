"""Per-API-key requests and tokens per minute (gateway/rate_limits.py), alone and in a fleet."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.rate_limits import RateLimiter


def ctx(key: str = "k", prompt: int = 0, completion: int = 0) -> RequestContext:
    c = RequestContext(request_id="t")
    c.key_name, c.prompt_tokens, c.completion_tokens = key, prompt, completion
    return c


async def test_requests_per_minute() -> None:
    limiter = RateLimiter({"k": (3, None)})
    for _ in range(3):
        await limiter.admit(ctx())
    with pytest.raises(GatewayError) as refused:
        await limiter.admit(ctx())
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    await limiter.admit(ctx("other"))  # keys without limits pass


async def test_tokens_per_minute_count_after_the_answer() -> None:
    limiter = RateLimiter({"k": (None, 100)})
    await limiter.admit(ctx())
    limiter.spend(ctx(prompt=60, completion=40))
    with pytest.raises(GatewayError, match="100 tokens per minute"):
        await limiter.admit(ctx())


class Shared:
    def __init__(self, answer: tuple[int, int] | None, members: int = 4) -> None:
        self.answer, self.members, self.spent = answer, members, 0

    async def hit(self, key: str, window: int) -> tuple[int, int] | None:
        return self.answer

    def spend(self, key: str, window: int, tokens: int) -> None:
        self.spent += tokens


async def test_fleet_counts_decide_when_they_arrive() -> None:
    limiter = RateLimiter({"k": (10, 1000)})
    limiter.shared = Shared((10, 0))
    await limiter.admit(ctx())  # the fleet's 10th
    limiter.shared = Shared((11, 0))
    with pytest.raises(GatewayError):
        await limiter.admit(ctx())
    limiter.spend(ctx(prompt=5))
    assert limiter.shared.spent == 5


def test_a_key_without_a_token_limit_spends_no_fleet_call() -> None:
    limiter = RateLimiter({"k": (10, None)})
    limiter.shared = Shared((1, 0))
    limiter.spend(ctx(prompt=5))
    assert limiter.shared.spent == 0


async def test_fleet_out_of_reach_means_this_members_share() -> None:
    limiter = RateLimiter({"k": (10, None)})
    limiter.shared = Shared(None, members=4)  # slow or unreachable: ceil(10 / 4) = 3 here
    for _ in range(3):
        await limiter.admit(ctx())
    with pytest.raises(GatewayError):
        await limiter.admit(ctx())


def test_config_takes_the_limits() -> None:
    config = parse_config(
        "server:\n  api_keys:\n    - {name: gym, key: gym-key-123, requests_per_minute: 600,"
        " tokens_per_minute: 2000000}\nmodels:\n  - {name: echo, backend: mock}\n",
        "test",
    )
    key = config.server.api_keys[0]
    assert (key.requests_per_minute, key.tokens_per_minute) == (600, 2_000_000)
