"""Inline SVG charts, generated here: no script, no CDN, so the report opens offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5")
WIDTH, LEFT, RIGHT, TOP = 760, 160, 30, 40


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks = [round(math.floor(low / step) * step, 10)]
    while ticks[-1] < high:  # the last tick covers the highest value
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mult in (1, 2, 5):
            value = mult * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


@dataclass(slots=True)
class Scale:
    low: float
    high: float
    left: float
    right: float
    log: bool = False

    @classmethod
    def fit(cls, values: Sequence[float], left: float, right: float) -> Scale:
        positive = [v for v in values if v > 0]
        high = max(values) if values else 1.0
        if positive and high / max(min(positive), 1e-9) > 30:  # spread over decades: log
            return cls(min(positive) / 1.2, high * 1.2, left, right, log=True)
        ticks = nice_ticks(0.0, high or 1.0)
        return cls(0.0, ticks[-1], left, right)

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.low)
            frac = math.log(value / self.low) / math.log(self.high / self.low)
        else:
            frac = (value - self.low) / ((self.high - self.low) or 1)
        return self.left + frac * (self.right - self.left)

    def ticks(self) -> list[float]:
        if self.log:
            return log_ticks(self.low, self.high)
        return nice_ticks(self.low, self.high)


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _axis(scale: Scale, y: float, label: str, top: float) -> list[str]:
    out = [f'<line class="axis" x1="{scale.left}" y1="{y}" x2="{scale.right}" y2="{y}"/>']
    for tick in scale.ticks():
        x = scale(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{y + 16}">{fmt(tick)}</text>')
    middle = (scale.left + scale.right) / 2
    suffix = " (log scale)" if scale.log else ""
    out.append(f'<text class="label" x="{middle}" y="{y + 36}">{escape(label)}{suffix}</text>')
    return out


def _svg(plot_id: str, height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg id="{plot_id}" class="plot" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text class="title" x="{WIDTH / 2}" y="22">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def distribution(
    plot_id: str,
    title: str,
    unit: str,
    series: Sequence[tuple[str, Sequence[float]]],
    max_points: int = 400,
) -> str:
    """One row per series: every value as a dot, a box from p25 to p75, the median, p99."""
    row = 46
    height = TOP + row * max(len(series), 1) + 50
    everything = [v for _, values in series for v in values]
    scale = Scale.fit(everything, LEFT, WIDTH - RIGHT)
    axis_y = TOP + row * len(series)
    body = _axis(scale, axis_y, unit, TOP)
    for index, (label, values) in enumerate(series):
        middle = TOP + row * index + row / 2
        body.append(f'<text class="name" x="{LEFT - 10}" y="{middle + 4}">{escape(label)}</text>')
        if not values:
            body.append(f'<text class="none" x="{LEFT + 8}" y="{middle + 4}">no data</text>')
            continue
        ordered = sorted(values)
        step = max(1, len(ordered) // max_points)
        hue = color(index)
        for n, value in enumerate(ordered[::step]):
            jitter = ((n * 7919) % 23 - 11) * 1.2  # deterministic spread, no randomness
            body.append(
                f'<circle class="dot" cx="{scale(value):.1f}" cy="{middle + jitter:.1f}" r="2.5" '
                f'fill="{hue}"><title>{escape(label)}: {value:.1f} {escape(unit)}</title></circle>'
            )
        q1, q2, q3 = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
        p99 = _quantile(ordered, 0.99)
        x1, x3 = scale(q1), scale(q3)
        body.append(
            f'<rect class="box" x="{x1:.1f}" y="{middle - 14}" width="{max(x3 - x1, 1):.1f}" '
            f'height="28" stroke="{hue}"><title>{escape(label)}: p25 {q1:.1f}, p50 {q2:.1f}, '
            f"p75 {q3:.1f}, p99 {p99:.1f} {escape(unit)}</title></rect>"
        )
        x2 = scale(q2)
        body.append(
            f'<line class="median" x1="{x2:.1f}" y1="{middle - 16}" x2="{x2:.1f}" '
            f'y2="{middle + 16}"/>'
        )
        x99 = scale(p99)
        body.append(
            f'<line class="p99" x1="{x99:.1f}" y1="{middle - 10}" x2="{x99:.1f}" '
            f'y2="{middle + 10}" stroke="{hue}"/>'
        )
    return _svg(plot_id, height, title, body)


def scatter(
    plot_id: str,
    title: str,
    x_label: str,
    y_label: str,
    points: Sequence[tuple[str, float, float, float | None]],
) -> str:
    """Labelled points (name, x, y, x_high): a line from x to x_high (e.g. p50 to p99)."""
    height = 340
    bottom = height - 60
    xs = [p[1] for p in points] + [p[3] for p in points if p[3] is not None]
    x_scale = Scale.fit(xs, LEFT - 60, WIDTH - RIGHT)
    y_ticks = nice_ticks(0.0, 1.15 * max([p[2] for p in points] + [1e-9]))  # label headroom
    top = y_ticks[-1] or 1.0
    body = _axis(x_scale, bottom, x_label, TOP)

    def y_of(value: float) -> float:
        return bottom - (value / top) * (bottom - TOP)

    for tick in y_ticks:
        y = y_of(tick)
        body.append(
            f'<line class="grid" x1="{x_scale.left}" y1="{y:.1f}" x2="{x_scale.right}" '
            f'y2="{y:.1f}"/>'
        )
        body.append(f'<text class="ytick" x="{x_scale.left - 6}" y="{y + 4:.1f}">{tick:g}</text>')
    body.append(
        f'<text class="label" transform="translate(18 {(TOP + bottom) / 2}) rotate(-90)">'
        f"{escape(y_label)}</text>"
    )
    for index, (name, x, y, x_high) in enumerate(points):
        hue = color(index)
        cx, cy = x_scale(x), y_of(y)
        if x_high is not None:
            body.append(
                f'<line class="range" x1="{cx:.1f}" y1="{cy:.1f}" x2="{x_scale(x_high):.1f}" '
                f'y2="{cy:.1f}" stroke="{hue}"/>'
            )
        body.append(
            f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="7" fill="{hue}">'
            f"<title>{escape(name)}: {x:.1f} ms, ${y:.6f}</title></circle>"
        )
        body.append(
            f'<text class="pname" x="{cx + 10:.1f}" y="{cy - 10:.1f}">{escape(name)}</text>'
        )
    return _svg(plot_id, height, title, body)
