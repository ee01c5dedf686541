"""The import graph of gateway/ and backends/, as grimp reads it (the graph import-linter
checks): lazy imports inside functions and `if TYPE_CHECKING:` imports included.

- `AcyclicModulesContract`: the import-linter contract type `acyclic_modules` (pyproject.toml):
  no import cycle between any two modules of the root packages, across packages too.
  import-linter's own `acyclic_siblings` only sees cycles between siblings of one package, so
  it missed gateway.config -> backends -> gateway.config.
- The module map, for people: `.venv/bin/python -m tests.import_graph [-v]` prints the cycles,
  the backends/ modules that import gateway/, and with -v every module's direct imports.
"""

from __future__ import annotations

import sys

import grimp
from importlinter import Contract, ContractCheck, output


def module_edges(graph: grimp.ImportGraph, roots: list[str]) -> dict[str, set[str]]:
    """module -> the modules it imports directly, within the root packages."""
    inside = {m for m in graph.modules if m.split(".")[0] in roots}
    return {m: set(graph.find_modules_directly_imported_by(m)) & inside for m in inside}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or not (strongly connected
    components of more than one module, Tarjan's algorithm): each holds an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


class AcyclicModulesContract(Contract):
    """No import cycles between any modules of the root packages."""

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        edges = module_edges(graph, list(self.session_options["root_packages"]))
        groups = cycles(edges)
        inside = [{m: sorted(edges[m] & set(g)) for m in g} for g in groups]
        return ContractCheck(kept=not groups, metadata={"groups": inside})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for group in check.metadata["groups"]:
            output.print_error(f"These {len(group)} modules import each other in a cycle:")
            for module, imports in group.items():
                output.print(f"    {module} -> {', '.join(imports)}")
            output.new_line()


def main() -> None:
    roots = ["gateway", "backends"]
    edges = module_edges(grimp.build_graph(*roots, cache_dir=None), roots)
    print(f"modules: {len(edges)}  import edges: {sum(len(v) for v in edges.values())}")
    groups = cycles(edges)
    print(f"import cycles: {len(groups)}")
    for group in groups:
        print(f"  [{len(group)} modules] " + ", ".join(group))
        for module in group:
            print(f"      {module} -> {', '.join(sorted(edges[module] & set(group)))}")
    drivers = sorted(m for m in edges if m.startswith("backends"))
    upward = [m for m in drivers if any(n.startswith("gateway") for n in edges[m])]
    print(f"backends modules importing gateway: {len(upward)} of {len(drivers)}")
    if "-v" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {', '.join(sorted(edges[module]))}")


if __name__ == "__main__":
    main()
