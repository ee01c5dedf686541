"""A small Prometheus registry for one event loop: no locks, no dependency, cheap updates.

Each worker process keeps its own numbers (with `--workers N`, scrape each worker or run
one worker per port); `GET /metrics` renders the text exposition format 0.0.4. In a fleet
(`cluster:`) every series also carries `worker="<host>:<pid>:<id>"`, and one scrape shows
every live member's series (gateway/fleet.py shares them; docs/scaling.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable

Labels = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Labels, values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels: Labels = tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> list[str]:
        return [
            f"{self.name}{_label_text(self.labels, k)} {_number(v)}" for k, v in self.values.items()
        ]


class Gauge(Counter):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value


class CallbackGauge(_Metric):
    """A gauge read at scrape time (queue depths, pool states owned by other objects)."""

    kind = "gauge"

    def __init__(
        self, name: str, help_text: str, labels: Iterable[str], read: Callable[[], dict]
    ) -> None:
        super().__init__(name, help_text, labels)
        self.read = read

    def render(self) -> list[str]:
        return [
            f"{self.name}{_label_text(self.labels, k)} {_number(v)}" for k, v in self.read().items()
        ]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labels: Iterable[str], buckets: Iterable[float]
    ) -> None:
        super().__init__(name, help_text, labels)
        self.bounds = tuple(sorted(buckets))
        # per label set: [count per bucket (non-cumulative) ..., +Inf bucket], sum, count
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0, 0.0])
        series[0][bisect_left(self.bounds, value)] += 1
        series[1][0] += value
        series[1][1] += 1

    def render(self) -> list[str]:
        lines = []
        for labels, (counts, (total, count)) in self.series.items():
            running = 0
            for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
                running += n
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_label_text(self.labels, labels, le)} {running}")
            lines.append(f"{self.name}_sum{_label_text(self.labels, labels)} {_number(total)}")
            lines.append(f"{self.name}_count{_label_text(self.labels, labels)} {int(count)}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines += metric.header()
            lines += metric.render()
        return "\n".join(lines) + "\n"

    def families(self, worker: str) -> dict[str, list[str]]:
        """Each metric's sample lines, labelled with this worker (what a fleet member shares)."""
        label = f'worker="{_escape(worker)}"'
        return {m.name: [_with_label(line, label) for line in m.render()] for m in self.metrics}

    def render_merged(self, worker: str, others: Iterable[dict[str, list[str]]]) -> str:
        """This worker's series and other workers' (same families), headers once per family."""
        mine = self.families(worker)
        others = list(others)
        lines: list[str] = []
        for metric in self.metrics:
            lines += metric.header()
            lines += mine[metric.name]
            for other in others:
                lines += other.get(metric.name, [])
        return "\n".join(lines) + "\n"


def _with_label(line: str, label: str) -> str:
    """`name{a="b"} 1` -> `name{worker="w",a="b"} 1`; `name 1` -> `name{worker="w"} 1`."""
    brace, space = line.find("{"), line.find(" ")
    if brace != -1 and brace < space:
        return f"{line[: brace + 1]}{label},{line[brace + 1 :]}"
    return f"{line[:space]}{{{label}}}{line[space:]}"


class GatewayMetrics:
    """Every metric the gateway exports (docs/operations.md lists them)."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.add(Counter(
            "gateway_requests_total", "Requests answered, by route, endpoint and HTTP status.",
            ("route", "endpoint", "status")))  # fmt: skip
        self.errors = r.add(Counter(
            "gateway_errors_total", "Failed requests by route and error code.",
            ("route", "code")))  # fmt: skip
        self.latency = r.add(Histogram(
            "gateway_request_duration_seconds", "Time from request arrival to the last byte.",
            ("route", "endpoint"), LATENCY_BUCKETS))  # fmt: skip
        self.ttft = r.add(Histogram(
            "gateway_time_to_first_token_seconds",
            "Streams: time from request arrival to the first upstream chunk.",
            ("route",), TTFT_BUCKETS))  # fmt: skip
        self.tokens = r.add(Counter(
            "gateway_tokens_total", "Tokens reported by upstream usage, in (prompt) and out.",
            ("route", "direction")))  # fmt: skip
        self.in_flight = r.add(Gauge(
            "gateway_in_flight_requests", "Requests being served now, by route.",
            ("route",)))  # fmt: skip
        self.upstream_requests = r.add(Counter(
            "gateway_upstream_requests_total", "Requests sent upstream, by route and upstream.",
            ("route", "upstream")))  # fmt: skip
        self.retries = r.add(Counter(
            "gateway_retries_total", "Upstream retries, by route and upstream.",
            ("route", "upstream")))  # fmt: skip
