"""A run's DAG laid out for an SVG drawing: layers by longest path from a root, tasks in pipeline order within a layer.

Computed here rather than by a JavaScript library: the page arrives drawn (nothing to load, nothing to vendor), and
a 1,000-task run costs one linear pass. Edges are drawn as straight cubic curves between neighbouring columns; the
layout is stable (the same spec always gives the same picture), so live updates only recolour nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_W = 168
NODE_H = 34
GAP_X = 56
GAP_Y = 14
PAD = 8


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def dependencies(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each task's upstream tasks, in pipeline order, from a frozen spec (`depends`: a name or a list of names)."""
    found: dict[str, list[str]] = {}
    for task in spec.get("tasks") or []:
        if not isinstance(task, Mapping) or not isinstance(task.get("name"), str):
            continue
        depends = task.get("depends") or []
        found[task["name"]] = [depends] if isinstance(depends, str) else [d for d in depends if isinstance(d, str)]
    return found


def layout(order: Sequence[str], depends: Mapping[str, Sequence[str]]) -> Layout:
    """Positions for `order`'s tasks; unknown dependencies are ignored (a frozen spec is already validated)."""
    known = set(order)
    layer: dict[str, int] = {}

    def depth(name: str) -> int:  # iterative longest path: a deep chain must not exhaust Python's recursion limit
        stack = [name]
        while stack:
            top = stack[-1]
            pending = [d for d in depends.get(top, ()) if d in known and d not in layer]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            layer[top] = 1 + max((layer[d] for d in depends.get(top, ()) if d in known), default=-1)
        return layer[name]

    rows: list[int] = []
    nodes: dict[str, Node] = {}
    for name in order:
        col = depth(name)
        while len(rows) <= col:
            rows.append(0)
        nodes[name] = Node(name, PAD + col * (NODE_W + GAP_X), PAD + rows[col] * (NODE_H + GAP_Y))
        rows[col] += 1
    edges = []
    for name in order:
        t = nodes[name]
        for dep in depends.get(name, ()):
            s = nodes.get(dep)
            if s is None:
                continue
            x1, y1, x2, y2 = s.x + NODE_W, s.y + NODE_H // 2, t.x, t.y + NODE_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(dep, name, f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
    width = PAD * 2 + max(len(rows), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows, default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Layout(list(nodes.values()), edges, width, height)
