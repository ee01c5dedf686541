"""Numbers for the report: per-route speed, cost and fidelity, and pairwise answer agreement."""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.compare.client import Result
from gateway.fidelity import GROUPS, parse_header

Price = tuple[float, float]  # USD per million tokens: (input, output)
_SPACE = re.compile(r"\s+")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def request_cost(result: Result, price: Price | None) -> float | None:
    if price is None or not result.ok:
        return None
    return ((result.tokens_in or 0) * price[0] + (result.tokens_out or 0) * price[1]) / 1e6


@dataclass(slots=True)
class RouteStats:
    route: str
    requests: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, successful requests
    ttfts: list[float] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    fidelity_ok: int = 0  # requests whose header said every parameter was honoured
    fidelity: dict[str, Counter[str]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def success_rate(self) -> float:
        return self.ok / self.requests if self.requests else 0.0

    def p(self, q: float, ttft: bool = False) -> float | None:
        return percentile(self.ttfts if ttft else self.latencies, q)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens over the summed latency of successful requests (a client's view)."""
        seconds = sum(self.latencies) / 1000
        return self.tokens_out / seconds if seconds and self.tokens_out else None

    @property
    def cost_per_1k(self) -> float | None:
        return self.cost / self.ok * 1000 if self.cost is not None and self.ok else None

    def fidelity_text(self) -> str:
        parts = []
        for group in GROUPS:
            for name, count in sorted(self.fidelity.get(group, Counter()).items()):
                parts.append(f"{group} {name} {count}/{self.requests}")
        if parts:
            return "; ".join(parts)
        return "all honoured" if self.fidelity_ok else "n/a"


def route_stats(
    results: Sequence[Result], routes: Sequence[str], prices: Mapping[str, Price | None]
) -> list[RouteStats]:
    by_route = {route: RouteStats(route) for route in routes}
    for result in results:
        stats = by_route.get(result.route)
        if stats is None:
            continue
        stats.requests += 1
        result.cost = request_cost(result, prices.get(result.route))
        if result.fidelity == "ok":
            stats.fidelity_ok += 1
        elif result.fidelity:
            for group, names in parse_header(result.fidelity).items():
                stats.fidelity.setdefault(group, Counter()).update(names)
        if not result.ok:
            stats.errors[(result.error or f"HTTP {result.status}")[:120]] += 1
            continue
        stats.ok += 1
        stats.latencies.append(result.latency_ms)
        if result.ttft_ms is not None:
            stats.ttfts.append(result.ttft_ms)
        stats.tokens_in += result.tokens_in or 0
        stats.tokens_out += result.tokens_out or 0
        if result.cost is not None:
            stats.cost = (stats.cost or 0.0) + result.cost
    return list(by_route.values())


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def similarity(a: str, b: str) -> float:
    """difflib's ratio on whitespace- and case-normalized text (1.0 = the same)."""
    a, b = normalize(a), normalize(b)
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


@dataclass(slots=True)
class Agreement:
    a: str
    b: str
    compared: int = 0  # requests both routes answered
    exact: int = 0
    similarity_sum: float = 0.0

    @property
    def exact_rate(self) -> float | None:
        return self.exact / self.compared if self.compared else None

    @property
    def mean_similarity(self) -> float | None:
        return self.similarity_sum / self.compared if self.compared else None


def agreement(results: Sequence[Result], routes: Sequence[str]) -> list[Agreement]:
    answers: dict[tuple[int, int, str], str] = {
        (r.index, r.repeat, r.route): r.text for r in results if r.ok
    }
    keys = {(r.index, r.repeat) for r in results}
    out = []
    for a, b in itertools.combinations(routes, 2):
        pair = Agreement(a, b)
        for index, rep in sorted(keys):
            text_a, text_b = answers.get((index, rep, a)), answers.get((index, rep, b))
            if text_a is None or text_b is None:
                continue
            pair.compared += 1
            pair.exact += text_a == text_b
            pair.similarity_sum += similarity(text_a, text_b)
        out.append(pair)
    return out
