"""The module map of gateway/ and backends/: every import edge (lazy imports inside functions
and `if TYPE_CHECKING:` imports included, as grimp reads them: the graph import-linter checks),
the import cycles, and the backends/ modules that import gateway/.

    .venv/bin/python .ci/import_map.py        # summary: cycles and upward imports
    .venv/bin/python .ci/import_map.py -v     # plus every module's direct imports
"""

from __future__ import annotations

import sys

import grimp


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def main() -> None:
    graph = grimp.build_graph("gateway", "backends", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    print(f"modules: {len(edges)}  import edges: {sum(len(v) for v in edges.values())}")
    groups = cycles(edges)
    print(f"import cycles: {len(groups)}")
    for group in groups:
        print(f"  [{len(group)} modules] " + ", ".join(group))
        for module in group:
            inside = sorted(edges[module] & set(group))
            print(f"      {module} -> {', '.join(inside)}")
    drivers = sorted(m for m in edges if m.startswith("backends"))
    upward = [m for m in drivers if any(n.startswith("gateway") for n in edges[m])]
    print(f"backends modules importing gateway: {len(upward)} of {len(drivers)}")
    if "-v" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {', '.join(sorted(edges[module]))}")


if __name__ == "__main__":
    main()
