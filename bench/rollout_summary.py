"""Several rollout benchmark runs in one table: per run, the best gateway policy against the
best policy of each peer, and the ratio the issue-22 target is about.

    python bench/rollout_summary.py bench/results/rollout-r4-p8-s0-detail.json ...

Each argument is a `-detail.json` that bench/rollout.py wrote. Prints markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def best(rows: list[dict[str, Any]], router: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r["router"] == router]
    return min(mine, key=lambda r: r["makespan_s"]) if mine else None


def cell(row: dict[str, Any] | None, with_policy: bool = True) -> str:
    if row is None:
        return "–"
    text = f"{row['makespan_s']:.2f} · {row['hit_rate'] * 100:.1f} %"
    return f"{text} ({row['policy']})" if with_policy else text


def summary(paths: list[str]) -> str:
    lines = [
        "| replicas × trajectories | seed | speed | gym-gateway best | SMG best | vllm-router best "
        "| ratio to the best peer | hit rate ≥ best peer's |",
        "| --- | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for path in paths:
        data = json.loads(Path(path).read_text())
        a = data["meta"]["args"]
        rows = data["rows"]
        gw = best(rows, "gym-gateway")
        peers = [r for r in (best(rows, "smg"), best(rows, "vllm-router")) if r]
        peer = min(peers, key=lambda r: r["makespan_s"]) if peers else None
        ratio = f"{gw['makespan_s'] / peer['makespan_s']:.2f}" if gw and peer else "–"
        hits = "yes" if gw and peer and gw["hit_rate"] >= peer["hit_rate"] else "no"
        lines.append(
            f"| {a['replicas']} × {a['prompts'] * a['group']} | {a['seed']} | {a['speed']:g} "
            f"| {cell(gw)} | {cell(best(rows, 'smg'))} | {cell(best(rows, 'vllm-router'))} "
            f"| {ratio} | {hits} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summary(sys.argv[1:]), end="")
