"""report.html: the tables and inline SVG plots in one self-contained page (no script, no
external resource; a Content-Security-Policy forbids loading any)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from gateway.compare import svg
from gateway.compare.report_md import NOTES, ROUTE_COLUMNS, agreement_row, route_row
from gateway.compare.stats import Agreement, RouteStats

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1240px;padding:0 16px;color:#1d2330;background:#fff}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px}
ul.meta{color:#555;padding-left:18px;columns:2;max-width:760px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d8dce3;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}
td.wrap{white-space:normal;text-align:left;min-width:180px;max-width:260px}
.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{border:1px solid #e3e6ec;border-radius:6px;background:#fcfcfd;max-width:100%;height:auto}
svg .title{font-weight:600;font-size:14px;text-anchor:middle}
svg .axis{stroke:#444}svg .grid{stroke:#e6e8ee}
svg .tick{font-size:11px;text-anchor:middle;fill:#555}
svg .ytick{font-size:11px;text-anchor:end;fill:#555}
svg .label{font-size:12px;text-anchor:middle;fill:#333}
svg .name{font-size:12px;text-anchor:end;fill:#1d2330}
svg .pname{font-size:12px;fill:#1d2330}svg .none{font-size:12px;fill:#999}
svg .dot{opacity:.45}svg .box{fill:none;stroke-width:2}
svg .median{stroke:#1d2330;stroke-width:2.5}svg .p99{stroke-width:2;stroke-dasharray:3 2}
svg .range{stroke-width:3;opacity:.6}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
.notes{color:#444;font-size:13px}
"""


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: bool = False
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="wrap"' if wrap_last and i == len(row) - 1 else ""
            cells.append(f"<td{cls}>{escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_html = "".join(body)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'  # noqa: E501


def plots(stats: Sequence[RouteStats]) -> str:
    charts = [
        svg.distribution(
            "plot-latency",
            "Latency per request (successful requests)",
            "ms",
            [(s.route, s.latencies) for s in stats],
        )
    ]
    if any(s.ttfts for s in stats):
        charts.append(
            svg.distribution(
                "plot-ttft",
                "Time to first token (streamed requests)",
                "ms",
                [(s.route, s.ttfts) for s in stats],
            )
        )
    priced = [s for s in stats if s.cost_per_1k is not None and s.latencies]
    if priced:
        points = [(s.route, s.p(50) or 0.0, s.cost_per_1k or 0.0, s.p(99)) for s in priced]
        charts.append(
            svg.scatter(
                "plot-cost-latency",
                "Cost against latency (line: p50 to p99)",
                "latency p50 (ms)",
                "USD per 1,000 requests",
                points,
            )
        )
    else:
        charts.append(
            '<p id="plot-cost-latency" class="notes">Cost against latency: no route has a '
            "<code>price</code> in the config.</p>"
        )
    return '<div class="plots">' + "".join(charts) + "</div>"


def _notes_html() -> str:
    items = [line[2:] for line in NOTES.splitlines() if line.startswith("* ")]
    return "<ul class=notes>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def html(
    title: str,
    meta: dict[str, str],
    stats: Sequence[RouteStats],
    agreements: Sequence[Agreement],
    extra_html: str = "",
) -> str:
    meta_items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in meta.items())
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1><ul class=meta>{meta_items}</ul>",
        '<h2 id="routes">Routes</h2>',
        html_table(ROUTE_COLUMNS, [route_row(s) for s in stats], wrap_last=True),
        '<h2 id="plots">Plots</h2>',
        plots(stats),
    ]
    if agreements:
        header = ("routes", "both answered", "exact match", "similarity")
        parts += ['<h2 id="agreement">Agreement of answers</h2>']
        parts += [html_table(header, [agreement_row(a) for a in agreements])]
    errors = [[s.route, str(n), m] for s in stats for m, n in s.errors.most_common(5)]
    if errors:
        parts += ["<h2>Errors</h2>", html_table(("route", "count", "error"), errors, True)]
    parts += [extra_html, "<h2>How to read this</h2>", _notes_html(), "</body></html>"]
    return "\n".join(parts)
