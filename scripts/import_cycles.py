"""Print the import cycles among Odin's modules, and among sibling packages; exit 1 when there is any.

Why a script and not a contract: issue 9 item 1 is to remove the cycles that exist today. Until it is done, this
says which ones are left (and will say when a new one appears); once the list is empty an import-linter
`acyclic_siblings` contract can keep it so.

Two views, both from grimp's import graph (the one `lint-imports` reads):

- **modules**: groups of modules that import each other, directly or through others (strongly connected
  components), each with one shortest cycle through it;
- **packages**: inside each package, its children (modules and subpackages, each standing for everything below it)
  that import each other: `engine ⇄ executors` is a cycle even when no single module imports itself back.

Usage: `.venv/bin/python scripts/import_cycles.py [--runtime-only]`; `--runtime-only` leaves out imports made only
for type checkers (`if TYPE_CHECKING:`), which cannot fail at run time but still tie the designs together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping

import grimp

ROOT_PACKAGES = ("odin.cli", "odin.api", "odin.webhooks", "odin.controller", "odin.midgard", "odin.schema")

Graph = Mapping[str, set[str]]


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (module graphs are deep enough to hit the recursion limit): the components with
    more than one member, each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found, key=lambda c: (-len(c), c))


def shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt not in within or nxt in previous:
                    continue
                previous[nxt] = node
                if nxt == start:
                    path = [start]
                    at = node
                    while at != start:
                        path.append(at)
                        at = previous[at]
                    return [start, *reversed(path[1:]), start]
                following.append(nxt)
        frontier = following
    return [start]


def module_graph(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def sibling_graphs(graph: grimp.ImportGraph, modules: Graph) -> Iterable[tuple[str, dict[str, set[str]]]]:
    """For each package, the graph among its children, each child standing for itself and its descendants."""
    for package in sorted(graph.modules):
        children = sorted(graph.find_children(package))
        if len(children) < 2:
            continue
        owner = {}
        for child in children:
            owner[child] = child
            for descendant in graph.find_descendants(child):
                owner[descendant] = child
        siblings: dict[str, set[str]] = {child: set() for child in children}
        for importer, imported in modules.items():
            a = owner.get(importer)
            if a is None:
                continue
            for target in imported:
                b = owner.get(target)
                if b is not None and b != a:
                    siblings[a].add(b)
        yield package, siblings


def short(name: str, package: str) -> str:
    return name[len(package) + 1 :] if name.startswith(package + ".") else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-only", action="store_true", help="ignore imports under `if TYPE_CHECKING:`")
    args = parser.parse_args(argv)
    graph = grimp.build_graph(*ROOT_PACKAGES, exclude_type_checking_imports=args.runtime_only, cache_dir=None)
    modules = module_graph(graph)

    module_cycles = strongly_connected(modules)
    print(f"Module cycles: {len(module_cycles)}")
    for component in module_cycles:
        members = set(component)
        print(f"- {len(component)} modules: {', '.join(component)}")
        print(f"  e.g. {' -> '.join(shortest_cycle(modules, component[0], members))}")

    package_cycles = [
        (package, component, siblings)
        for package, siblings in sibling_graphs(graph, modules)
        for component in strongly_connected(siblings)
    ]
    print(f"Package cycles (between the children of one package): {len(package_cycles)}")
    for package, component, siblings in package_cycles:
        cycle = shortest_cycle(siblings, component[0], set(component))
        print(f"- in {package}: {' -> '.join(short(c, package) for c in cycle)}")
        if len(component) > len(cycle) - 1:
            print(f"  (the group: {', '.join(short(c, package) for c in component)})")
    return 1 if module_cycles or package_cycles else 0


if __name__ == "__main__":
    sys.exit(main())
