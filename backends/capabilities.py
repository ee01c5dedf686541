"""The capability matrix in docs/backends.md, generated from the drivers' declared tables.

    python -m backends.capabilities           # print the generated section
    python -m backends.capabilities --write   # rewrite it in docs/backends.md
    python -m backends.capabilities --check   # exit 1 if the doc and the code disagree

tests/unit/test_capabilities_doc.py fails when they disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backends import driver_class, extras
from backends.params import HONOURED, REFUSED, TRANSLATED, ParamTable

FAMILIES = ("vllm", "sglang", "tgi", "openai", "gemini")
DOC = Path(__file__).resolve().parent.parent / "docs" / "backends.md"
BEGIN = "<!-- BEGIN GENERATED: python -m backends.capabilities --write -->"
END = "<!-- END GENERATED -->"
MARK = {HONOURED: "✅", TRANSLATED: "🔁", REFUSED: "❌"}
UNLISTED_PASS = "➡️"


def tables() -> dict[str, ParamTable]:
    return {family: driver_class(family).params for family in FAMILIES}


def _rows(all_tables: dict[str, ParamTable]) -> list[str]:
    ordered = [
        *extras.OPENAI_CORE,
        *extras.OPENAI_ONLY,
        *extras.BOOKKEEPING,
        "store",
        "structured_outputs",
        *extras.GUIDED,
        extras.GUIDED_BACKEND,
        *extras.SHARED_ENGINE_EXTRAS,
        *extras.VLLM_ONLY,
        *extras.SGLANG_ONLY,
    ]
    declared = {p.name for t in all_tables.values() for p in t.params}
    rows = list(dict.fromkeys(ordered))
    return rows + sorted(declared - set(rows))


def _cell(table: ParamTable, name: str) -> str:
    param = table.get(name)
    if param is None:
        return UNLISTED_PASS if table.unknown == "pass" else MARK[REFUSED]
    return MARK[param.action]


def _endpoint_rows() -> list[str]:
    families = (*FAMILIES, "mock", "litellm")
    lines = [
        "| endpoint | " + " | ".join(families) + " |",
        "| --- |" + " --- |" * len(families),
        "| `POST /v1/chat/completions` |" + " ✅ |" * len(families),
    ]
    native = {"openai": "✅ native (default)", "vllm": "🔁 (✅ native: opt-in)",
              "sglang": "🔁 (✅ native: opt-in)"}  # fmt: skip
    lines.append(
        "| `POST /v1/responses` | "
        + " | ".join(native.get(f, "🔁 translated") for f in families)
        + " |"
    )
    completions, tokenize = [], []
    for family in FAMILIES:
        cls = driver_class(family)
        completions.append("✅" if cls.serves_completions else "❌")
        tokenize.append("✅" if "/tokenize" in cls.engine_paths else "❌")
    lines.append("| `POST /v1/completions` | " + " | ".join([*completions, "✅", "❌"]) + " |")
    lines.append(
        "| `POST /tokenize`, `POST /detokenize` | " + " | ".join([*tokenize, "❌", "❌"]) + " |"
    )
    return lines


def _details(family: str, table: ParamTable) -> list[str]:
    lines = [f"#### {family}", ""]
    for action, title in ((TRANSLATED, "Translated"), (REFUSED, "Refused")):
        entries = [p for p in table.params if p.action == action]
        if not entries:
            continue
        lines.append(f"{title}:")
        lines.append("")
        for p in entries:
            lines.append(f"* `{p.name}`: {p.note}")
        lines.append("")
    notes = [p for p in table.params if p.action == HONOURED and p.note]
    if notes:
        lines.append("Honoured, with a caveat:")
        lines.append("")
        lines += [f"* `{p.name}`: {p.note}" for p in notes]
        lines.append("")
    policy = "passed on as sent" if table.unknown == "pass" else "refused"
    lines.append(f"Any other parameter: {policy} ({table.unknown_note})")
    lines.append("")
    return lines


def render() -> str:
    all_tables = tables()
    lines = [
        BEGIN,
        "",
        "### Endpoints",
        "",
        *_endpoint_rows(),
        "",
        "### Chat Completions parameters",
        "",
        "✅ honoured (sent as written) · 🔁 translated (see below) · ❌ refused (400 naming it, "
        "or dropped with `unsupported_params: drop`) · ➡️ not listed, passed on as sent",
        "",
        "| parameter | " + " | ".join(FAMILIES) + " |",
        "| --- |" + " --- |" * len(FAMILIES),
    ]
    for name in _rows(all_tables):
        cells = " | ".join(_cell(all_tables[f], name) for f in FAMILIES)
        lines.append(f"| `{name}` | {cells} |")
    lines += ["", "### Per family: translations and refusals", ""]
    for family in FAMILIES:
        lines += _details(family, all_tables[family])
    lines.append(END)
    return "\n".join(lines)


def current_section(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        raise ValueError(f"{DOC} has no generated section ({BEGIN} ... {END})")
    return text[start : end + len(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the capability matrix of docs/backends.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the section in the doc")
    mode.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    args = parser.parse_args(argv)
    generated = render()
    if not args.write and not args.check:
        print(generated)
        return 0
    text = DOC.read_text(encoding="utf-8")
    section = current_section(text)
    if args.check:
        if section != generated:
            print(f"{DOC} is stale: run python -m backends.capabilities --write", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text.replace(section, generated), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
