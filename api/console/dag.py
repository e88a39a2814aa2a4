"""A run's DAG laid out for an SVG drawing: layers by longest path from a root, tasks in pipeline order within a layer.

Computed here rather than by a JavaScript library: the page arrives drawn (nothing to load, nothing to vendor), and
a 1,000-task run costs one linear pass. Edges are drawn as straight cubic curves between neighbouring columns; the
layout is stable (the same spec always gives the same picture), so live updates only recolour nodes.
"""

from __future__ import annotations

import re
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


def layers(order: Sequence[str], depends: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's column: the longest path to it from a root (unknown dependencies ignored)."""
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

    for name in order:
        depth(name)
    return layer


def layout(order: Sequence[str], depends: Mapping[str, Sequence[str]]) -> Layout:
    """Positions for `order`'s tasks; unknown dependencies are ignored (a frozen spec is already validated)."""
    layer = layers(order, depends)
    rows: list[int] = []
    nodes: dict[str, Node] = {}
    for name in order:
        col = layer[name]
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


# -- big runs: fan-outs drawn as one node each ----------------------------------------------------------------------

DRAWN_TASKS = 150  # above this many tasks, fan-outs are collapsed into group nodes
DRAWN_NODES = 300  # and above this many nodes even then, no drawing (the table and its filters still work)
_SERIAL = re.compile(r"^(.*?)(\d+)$")
# The status a group shows, most urgent first: one failed shard makes the whole fan-out look failed.
_URGENCY = ("failed", "error", "running", "starting", "retrying", "pending", "cancelled", "skipped", "succeeded")


@dataclass(frozen=True, slots=True)
class Group:
    """Tasks of one column whose names differ only by a trailing number (`shard-00000`...`shard-00999`)."""

    name: str  # `shard-[00000..00999]`, or the task's own name for a group of one
    prefix: str  # what the task table filters by to list its members
    members: int
    counts: dict[str, int]  # by status

    @property
    def status(self) -> str:
        return next((s for s in _URGENCY if self.counts.get(s)), next(iter(self.counts), "pending"))

    @property
    def headline(self) -> str:
        """What fits in the node: `2 failed` when some did, else the one status all share, else the count."""
        if self.status != "succeeded" and len(self.counts) > 1:
            return f"{self.counts[self.status]:,} {self.status}"
        return self.status if len(self.counts) == 1 else f"{self.members:,}"

    @property
    def summary(self) -> str:
        """`998 succeeded, 2 failed`: the counts, most urgent first."""
        ordered = [s for s in _URGENCY if s in self.counts] + [s for s in self.counts if s not in _URGENCY]
        return ", ".join(f"{self.counts[s]} {s}" for s in ordered)


@dataclass(frozen=True, slots=True)
class Collapsed:
    groups: dict[str, Group]  # by group name, in the order they first appear
    order: list[str]  # group names
    depends: dict[str, list[str]]  # between groups


def collapse(order: Sequence[str], depends: Mapping[str, Sequence[str]], statuses: Mapping[str, str]) -> Collapsed:
    """The DAG with each column's numbered siblings merged into one node: a 100,000-task fan-out and fan-in becomes
    three nodes. Grouping within a column keeps the graph acyclic (every edge still goes to a later column)."""
    layer = layers(order, depends)
    key_of: dict[str, tuple[int, str]] = {}
    members: dict[tuple[int, str], list[str]] = {}
    for name in order:
        m = _SERIAL.match(name)
        key = (layer[name], m.group(1) if m else name)
        key_of[name] = key
        members.setdefault(key, []).append(name)
    names: dict[tuple[int, str], str] = {}
    groups: dict[str, Group] = {}
    for key, tasks in members.items():
        if len(tasks) == 1:
            label, prefix = tasks[0], tasks[0]
        else:
            label, prefix = f"{key[1]}[{tasks[0][len(key[1]) :]}..{tasks[-1][len(key[1]) :]}]", key[1]
        counts: dict[str, int] = {}
        for t in tasks:
            status = statuses.get(t, "pending")
            counts[status] = counts.get(status, 0) + 1
        names[key] = label
        groups[label] = Group(label, prefix, len(tasks), counts)
    edges: dict[str, dict[str, None]] = {g: {} for g in groups}
    for name in order:
        target = names[key_of[name]]
        for dep in depends.get(name, ()):
            if dep in key_of:
                edges[target][names[key_of[dep]]] = None
    return Collapsed(groups, list(groups), {g: list(deps) for g, deps in edges.items()})
