"""Replay: the recorded answers as one side, a live route as the other, and what differs."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from gateway.compare.answers import answer_text
from gateway.compare.client import Result
from gateway.compare.inputs import Case
from gateway.compare.stats import similarity
from gateway.fidelity import GROUPS, Verdict


def recorded_label(cases: Sequence[Case]) -> str:
    routes = sorted({str((c.recorded or {}).get("route")) for c in cases})
    return f"recorded:{routes[0]}" if len(routes) == 1 else "recorded"


def recorded_results(cases: Sequence[Case], label: str) -> list[Result]:
    """What the recording says each request got, as Results of a pseudo-route."""
    out = []
    for case in cases:
        record = case.recorded or {}
        answer = record.get("answer")
        status = int(record.get("status") or 0)
        error = record.get("error")
        verdict = Verdict(
            **{
                g: v
                for g, v in (record.get("fidelity") or {}).items()
                if g in (*GROUPS, "honoured")
            }
        )
        result = Result(
            index=case.index,
            case_id=case.id,
            route=label,
            repeat=0,
            endpoint=case.endpoint,
            ok=status == 200 and not error,
            status=status,
            latency_ms=float(record.get("latency_ms") or 0.0),
            ttft_ms=record.get("ttft_ms"),
            tokens_in=record.get("tokens_in"),
            tokens_out=record.get("tokens_out"),
            fidelity=verdict.header(),
            text=answer_text(answer),
            error=None if not error else str(error.get("message") or error.get("code") or error),
            request_id=record.get("request_id"),
            answer=answer,
        )
        out.append(result)
    return out


@dataclass(slots=True)
class Difference:
    case_id: str
    request_id: str | None
    status: tuple[int, int]
    similarity: float | None
    fidelity: tuple[str | None, str | None]
    diff: list[str] = field(default_factory=list)


def differences(before: Sequence[Result], after: Sequence[Result]) -> list[Difference]:
    """Requests whose status, answer text or parameter fidelity changed."""
    now = {r.index: r for r in after}
    out = []
    for old in before:
        new = now.get(old.index)
        if new is None:
            continue
        same_text = old.text == new.text
        same_fidelity = (old.fidelity or "ok") == (new.fidelity or "ok")
        if old.ok == new.ok and same_text and same_fidelity:
            continue
        both = old.ok and new.ok
        diff = list(
            difflib.unified_diff(
                old.text.splitlines(), new.text.splitlines(), old.route, new.route, lineterm="", n=1
            )
        )[:24]
        out.append(
            Difference(
                case_id=old.case_id,
                request_id=old.request_id,
                status=(old.status, new.status),
                similarity=similarity(old.text, new.text) if both else None,
                fidelity=(old.fidelity, new.fidelity),
                diff=diff,
            )
        )
    return out


def _describe(d: Difference) -> list[str]:
    lines = [f"status {d.status[0]} → {d.status[1]}"]
    if d.similarity is not None:
        lines.append(f"similarity {d.similarity:.3f}")
    if d.fidelity[0] != d.fidelity[1]:
        lines.append(f"fidelity `{d.fidelity[0]}` → `{d.fidelity[1]}`")
    return lines


def differences_markdown(diffs: Sequence[Difference], total: int) -> str:
    lines = [f"## Differences\n\n{len(diffs)} of {total} requests differ.\n"]
    for d in diffs:
        lines.append(f"### {d.case_id} (recorded as {d.request_id})\n")
        lines.append("; ".join(_describe(d)) + "\n")
        if d.diff:
            lines += ["```diff", *d.diff, "```", ""]
    return "\n".join(lines)


def differences_html(diffs: Sequence[Difference], total: int) -> str:
    parts = [f"<h2>Differences</h2><p>{len(diffs)} of {total} requests differ.</p>"]
    for d in diffs:
        parts.append(f"<h3>{escape(d.case_id)} (recorded as {escape(str(d.request_id))})</h3>")
        parts.append(f"<p>{escape('; '.join(_describe(d)))}</p>")
        if d.diff:
            parts.append("<pre>" + escape("\n".join(d.diff)) + "</pre>")
    return "".join(parts)
