"""The Markdown report: the per-route table, pairwise agreement, fidelity and errors."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.compare.stats import Agreement, RouteStats

DASH = "–"
ROUTE_COLUMNS = (
    "route",
    "success",
    "p50 ms",
    "p99 ms",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "tokens/s",
    "tokens in",
    "tokens out",
    "est. cost $",
    "$ / 1k req",
    "parameter fidelity",
)


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def money(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.6f}" if value < 0.01 else f"{value:,.4f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def route_row(s: RouteStats) -> list[str]:
    return [
        s.route,
        f"{s.success_rate:.0%} ({s.ok}/{s.requests})",
        num(s.p(50)),
        num(s.p(99)),
        num(s.p(50, ttft=True)),
        num(s.p(99, ttft=True)),
        num(s.tokens_per_s),
        f"{s.tokens_in:,}",
        f"{s.tokens_out:,}",
        money(s.cost),
        money(s.cost_per_1k),
        s.fidelity_text(),
    ]


def routes_table(stats: Sequence[RouteStats]) -> str:
    return table(ROUTE_COLUMNS, [route_row(s) for s in stats])


def agreement_row(a: Agreement) -> list[str]:
    exact = DASH if a.exact_rate is None else f"{a.exact_rate:.0%} ({a.exact}/{a.compared})"
    return [f"{a.a} vs {a.b}", str(a.compared), exact, num(a.mean_similarity, 3)]


def agreement_table(agreements: Sequence[Agreement]) -> str:
    header = ("routes", "both answered", "exact match", "similarity")
    return table(header, [agreement_row(a) for a in agreements])


def errors_section(stats: Sequence[RouteStats]) -> str:
    rows = [
        [s.route, str(count), message] for s in stats for message, count in s.errors.most_common(5)
    ]
    if not rows:
        return ""
    return "## Errors\n\n" + table(("route", "count", "error"), rows) + "\n"


NOTES = """## How to read this

* **success**: HTTP 200 with a complete answer; latency, TTFT, tokens and cost count
  successful requests only.
* **TTFT**: time to the first streamed output (streamed requests only; `--stream` forces it).
* **tokens/s**: output tokens over the summed latency of successful requests.
* **est. cost**: tokens × the route's `price` (USD per million tokens) from the config.
* **parameter fidelity**: from the `x-gateway-param-fidelity` header of each answer:
  parameters a route dropped, refused, clamped, overrode, translated or added, with how many
  requests were affected. Compare routes only where the parameters that matter were honoured.
* **similarity**: difflib ratio of whitespace- and case-normalized answer text, averaged over
  the requests both routes answered (1.000 = identical).
"""


def markdown(
    title: str,
    meta: dict[str, str],
    stats: Sequence[RouteStats],
    agreements: Sequence[Agreement],
    extra: str = "",
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"* {key}: {value}" for key, value in meta.items()]
    lines += ["", "## Routes", "", routes_table(stats), ""]
    if agreements:
        lines += ["## Agreement of answers", "", agreement_table(agreements), ""]
    errors = errors_section(stats)
    if errors:
        lines += [errors]
    if extra:
        lines += [extra]
    lines += [NOTES]
    return "\n".join(lines)
