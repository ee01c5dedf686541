"""docs/backends.md's capability matrix is generated from the drivers' parameter tables."""

from __future__ import annotations

from backends import capabilities


def test_doc_matches_the_drivers_tables() -> None:
    text = capabilities.DOC.read_text(encoding="utf-8")
    assert capabilities.current_section(text) == capabilities.render(), (
        "docs/backends.md is stale: run python -m backends.capabilities --write"
    )


def test_every_family_and_param_appears() -> None:
    generated = capabilities.render()
    for family, table in capabilities.tables().items():
        assert f"#### {family}" in generated
        for param in table.params:
            assert f"| `{param.name}` |" in generated
