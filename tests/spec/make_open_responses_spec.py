"""Regenerate open_responses_2026_04_24.json: the structural facts of the Open Responses
OpenAPI document (types, required fields, enums, refs), its prose removed.

    python tests/spec/make_open_responses_spec.py \
        /work/shared/reference/open_responses/openapi-2026-04-24.json

Source: file `public/openapi/openapi.json` of github.com/openresponses/openresponses at commit
1e33c10fb3c19480751658eae966dad8e9c91514 (`info.version: 2026-04-24`). Only
`components.schemas` is kept; descriptions, titles, examples and enum prose are dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("open_responses_2026_04_24.json")
COMMIT = "1e33c10fb3c19480751658eae966dad8e9c91514"
PROSE = frozenset({"description", "title", "example", "examples", "x-enumDescriptions"})


def structural(node: Any, *, in_properties: bool = False) -> Any:
    """`node` without prose keys; inside a `properties` map the keys are field names (a field
    may be called `description`), so they are kept."""
    if isinstance(node, list):
        return [structural(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if not in_properties and key in PROSE:
            continue
        out[key] = structural(value, in_properties=key == "properties" and not in_properties)
    return out


def main(source: str) -> None:
    doc = json.loads(Path(source).read_text())
    version = doc["info"]["version"]
    result = {
        "source": "github.com/openresponses/openresponses public/openapi/openapi.json",
        "commit": COMMIT,
        "version": version,
        "note": "Structural facts only (types, required fields, enums, refs): descriptions, "
        "titles and examples removed by tests/spec/make_open_responses_spec.py.",
        "components": {"schemas": structural(doc["components"]["schemas"])},
    }
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(result['components']['schemas'])} schemas, version {version})")


if __name__ == "__main__":
    main(sys.argv[1])
