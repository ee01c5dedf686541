"""The rollout benchmark's table (markdown) and report (one offline HTML page, in the style
and with the SVG helpers of `gym-gateway compare`'s report)."""

from __future__ import annotations

from html import escape
from typing import Any

from gateway.compare import svg
from gateway.compare.report_html import CSP, STYLE, html_table

COLUMNS = (
    "router",
    "policy",
    "makespan s",
    "hit rate",
    "turn p50 ms",
    "turn p99 ms",
    "busiest share",
    "router CPU s",
)


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["router"],
        row["policy"],
        f"{row['makespan_s']:.2f}",
        f"{row['hit_rate'] * 100:.1f} %",
        f"{row['p50_turn_ms']:,.0f}",
        f"{row['p99_turn_ms']:,.0f}",
        f"{row['busiest_share'] * 100:.1f} %",
        f"{row['router_cpu_s']:.2f}",
    ]


def header_line(meta: dict[str, Any]) -> str:
    a = meta["args"]
    load = " / ".join(f"{x:.2f}" for x in meta["loadavg_start"])
    load_end = " / ".join(f"{x:.2f}" for x in meta.get("loadavg_end", meta["loadavg_start"]))
    return (
        f"{meta['started']} · {meta['nproc']} × {meta['cpu']} · Python {meta['python']} · "
        f"load average {load} at start, {load_end} at end · core 0 speed (sum(range(10**7)), "
        f"best of 3) {meta['core0_speed_ms_start']} ms at start, "
        f"{meta.get('core0_speed_ms_end', '?')} ms at end · replicas {a['replicas']} · "
        f"P {a['prompts']} × G {a['group']} × T {a['turns']} turns · seed {a['seed']} · "
        f"{'SSE' if a['stream'] else 'JSON'} · tokens: system {a['system_tokens']}, task "
        f"{a['prompt_tokens']}, tool {a['tool_tokens']}, answer {a['output_tokens']} · tool "
        f"time {a['tool_seconds']} s · "
        f"KV {a['kv_tokens']:,} tokens and batch cap {a['max_batch']} per replica · "
        f"simulated time ×{a['speed']:g}"
    )


def _errors(results: dict[str, Any]) -> list[str]:
    out = []
    for d in results.get("details", []):
        if d.get("errors"):
            out.append(
                f"{d['router']}:{d['policy']}: {d['errors']} errors, e.g. {d['first_errors'][:1]}"
            )
    return out + [f"not run: {s}" for s in results["meta"].get("skipped", [])]


def markdown(results: dict[str, Any]) -> str:
    lines = [header_line(results["meta"]), ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("| --- | --- | " + " | ".join("---:" for _ in COLUMNS[2:]) + " |")
    for row in results["rows"]:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    notes = _errors(results)
    if notes:
        lines += [""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def bars(plot_id: str, title: str, unit: str, series: list[tuple[str, float]]) -> str:
    """Horizontal bars, one per router and policy."""
    row = 26
    top = svg.TOP
    height = top + row * max(len(series), 1) + 50
    scale = svg.Scale(0.0, svg.nice_ticks(0.0, max([v for _, v in series] + [1e-9]))[-1],
                      svg.LEFT + 60, svg.WIDTH - svg.RIGHT)  # fmt: skip
    axis_y = top + row * len(series)
    body = [
        f'<line class="axis" x1="{scale.left}" y1="{axis_y}" x2="{scale.right}" y2="{axis_y}"/>'
    ]
    for tick in scale.ticks():
        x = scale(tick)
        body.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}"/>')
        body.append(f'<text class="tick" x="{x:.1f}" y="{axis_y + 16}">{svg.fmt(tick)}</text>')
    body.append(
        f'<text class="label" x="{(scale.left + scale.right) / 2}" y="{axis_y + 36}">'
        f"{escape(unit)}</text>"
    )
    for i, (label, value) in enumerate(series):
        y = top + row * i
        body.append(
            f'<text class="name" x="{scale.left - 8}" y="{y + row / 2 + 4}">{escape(label)}</text>'
        )
        width = max(scale(value) - scale.left, 1)
        body.append(
            f'<rect x="{scale.left}" y="{y + 4}" width="{width:.1f}" height="{row - 8}" '
            f'fill="{svg.color(i)}"><title>{escape(label)}: {value:g} {escape(unit)}</title></rect>'
        )
        x_text = scale.left + width + 4
        body.append(f'<text class="pname" x="{x_text:.1f}" y="{y + row / 2 + 4}">{value:g}</text>')
    return (
        f'<svg id="{plot_id}" class="plot" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {svg.WIDTH} {height:.0f}" width="{svg.WIDTH}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text class="title" x="{svg.WIDTH / 2}" y="22">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


SVG_STYLE = (
    "".join(line for line in STYLE.splitlines() if line.startswith("svg"))
    .replace("svg .", ".")
    .replace("svg.plot", ".plot")
)


def svg_files(results: dict[str, Any]) -> dict[str, str]:
    """The plots as standalone SVG files (their CSS inside), for docs/img/."""
    out = {}
    for chart in charts(results)[:-1]:  # the turn-latency dots stay in the HTML (~600 kB)
        plot_id = chart.split('id="', 1)[1].split('"', 1)[0]
        head, rest = chart.split(">", 1)
        out[f"rollout-{plot_id.removeprefix('plot-')}.svg"] = (
            f"{head}><style>text{{font:12px sans-serif}}{SVG_STYLE}</style>{rest}"
        )
    return out


def charts(results: dict[str, Any]) -> list[str]:
    rows = results["rows"]
    names = [f"{r['router']}:{r['policy']}" for r in rows]

    def series(key: str, scale: float = 1.0) -> list[tuple[str, float]]:
        return [(n, round(r[key] * scale, 3)) for n, r in zip(names, rows, strict=True)]

    turns = [(f"{d['router']}:{d['policy']}", d["turn_ms"]) for d in results["details"]]
    return [
        bars("plot-makespan", "Batch makespan (lower is better)", "seconds", series("makespan_s")),
        bars("plot-hit", "Prefix-cache hit rate (higher is better)", "% of prompt tokens",
             series("hit_rate", 100)),
        bars("plot-busiest", "Busiest replica's share of requests", "%",
             series("busiest_share", 100)),
        svg.distribution("plot-turns", "Turn latency", "ms", turns),
    ]  # fmt: skip


def html(results: dict[str, Any]) -> str:
    rows = results["rows"]
    notes = _errors(results)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Rollout routing benchmark</title><style>{STYLE}</style></head><body>",
        "<h1>Rollout routing benchmark</h1>",
        f"<p class=notes>{escape(header_line(results['meta']))}</p>",
        '<h2 id="routers">Routers and policies</h2>',
        html_table(COLUMNS, [_cells(r) for r in rows]),
        '<h2 id="plots">Plots</h2>',
        '<div class="plots">' + "".join(charts(results)) + "</div>",
    ]
    if notes:
        parts.append("<h2>Errors and skipped arms</h2><ul class=notes>"
                     + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)
