"""Write a run's files: DIR/report.md, DIR/report.html and DIR/results.jsonl."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from gateway.compare.client import Result
from gateway.compare.report_html import html
from gateway.compare.report_md import markdown
from gateway.compare.stats import Agreement, RouteStats


def write_outputs(
    out_dir: str | Path,
    title: str,
    meta: dict[str, str],
    stats: Sequence[RouteStats],
    agreements: Sequence[Agreement],
    results: Sequence[Result],
    extra_md: str = "",
    extra_html: str = "",
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report.md": out / "report.md",
        "report.html": out / "report.html",
        "results.jsonl": out / "results.jsonl",
    }
    paths["report.md"].write_text(markdown(title, meta, stats, agreements, extra_md), "utf-8")
    paths["report.html"].write_text(html(title, meta, stats, agreements, extra_html), "utf-8")
    with paths["results.jsonl"].open("wb") as file:
        for result in results:
            file.write(orjson.dumps(result.to_json(), default=str) + b"\n")
    return paths
