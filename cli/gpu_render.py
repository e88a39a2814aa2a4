"""`odinctl nodes` and `odinctl gpus`: nvidia-smi's view, for the whole cluster at once.

One row per GPU (or node): free or used, a memory bar, utilisation, temperature, and which run/task/commit holds it.
A node that did not answer is shown from its last reading, marked `unreachable` with that reading's age, so the
table never lies by omission. Scripts use `-o json|yaml`, which prints the API's objects instead.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from odin.api.schemas.gpus import GpuList, GpuOut, Holder, NodeList

BAR_WIDTH = 10
GIB = 1024**3


def size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= GIB:
        return f"{n / GIB:.1f}G"
    return f"{n / 1024**2:.0f}M"


def bar(used: int | None, total: int | None, width: int = BAR_WIDTH) -> Text:
    """`[████░░░░░░]` for used/total; a bar of `?` when either is unknown."""
    if used is None or not total:
        return Text("[" + "?" * width + "]", style="dim")
    filled = min(width, round(width * used / total))
    style = "red" if used / total >= 0.9 else "yellow" if used / total >= 0.5 else "green"
    return Text.assemble("[", ("█" * filled, style), ("░" * (width - filled), "dim"), "]")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def holder_text(h: Holder) -> str:
    if h.run:
        where = f"{h.run}/{h.task or '?'}"
        return f"{where}@{h.commit[:7]}" if h.commit else where
    if h.pod:
        return f"pod {h.pod}"
    return "pid " + ",".join(map(str, h.pids)) if h.pids else "?"


def _state(g: GpuOut) -> Text:
    if g.gpu.lost or g.gpu.error:
        return Text("lost" if g.gpu.lost else "error", style="red")
    return Text("free", style="green") if g.free else Text("used", style="cyan")


def gpus_table(listing: GpuList) -> RenderableType:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "GPU", "MODEL", "STATE", "MEMORY", "", "UTIL", "TEMP", "POWER", "HELD BY"):
        table.add_column(column, no_wrap=column != "HELD BY")
    for g in listing.items:
        gpu = g.gpu
        node = Text(g.node)
        if not g.reachable:
            node.append(f" (unreachable, {age(g.age_seconds)} old)", style="red")
        watts = f"{gpu.power_draw_watts:.0f}W" if gpu.power_draw_watts is not None else "-"
        table.add_row(
            node,
            str(g.index),
            (g.model or "-").removeprefix("NVIDIA "),
            _state(g),
            bar(gpu.memory_used_bytes, gpu.memory_total_bytes),
            f"{size(gpu.memory_used_bytes)}/{size(gpu.memory_total_bytes)}",
            percent(gpu.utilization_gpu_percent),
            f"{gpu.temperature_c}C" if gpu.temperature_c is not None else "-",
            watts,
            ", ".join(holder_text(h) for h in g.holders) or ("-" if g.free else "?"),
        )
    lines: list[RenderableType] = [table] if listing.items else [Text("no GPUs match", style="dim")]
    summary = f"{listing.free} of {listing.total} GPUs free"
    if listing.unreachable_nodes:
        summary += f"; unreachable: {', '.join(listing.unreachable_nodes)}"
    lines.append(Text(summary, style="dim"))
    for name, reason in sorted(listing.gpu_unavailable.items()):
        lines.append(Text(f"{name}: no GPUs ({reason})", style="dim"))
    return Group(*lines)


def nodes_table(listing: NodeList) -> RenderableType:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "STATE", "AGE", "GPUS", "FREE", "CPU", "LOAD", "MEMORY", "", "NOTE"):
        table.add_column(column, no_wrap=column != "NOTE")
    for n in listing.items:
        system = n.report.system if n.report else None
        state = Text("ok", style="green") if n.reachable else Text("unreachable", style="red")
        mem_used = system.memory_used_bytes if system else None
        mem_total = system.memory_total_bytes if system else None
        note = n.error if not n.reachable else n.gpu_unavailable_reason
        table.add_row(
            n.node,
            state,
            age(n.age_seconds),
            str(n.gpu_count),
            str(n.gpus_free),
            f"{percent(system.cpu_percent)} of {system.cpu_count}" if system and system.cpu_count else "-",
            f"{system.load_1m:.2f}" if system and system.load_1m is not None else "-",
            bar(mem_used, mem_total),
            f"{size(mem_used)}/{size(mem_total)}",
            note or "",
        )
    lines: list[RenderableType] = [table] if listing.items else [Text("no nodes", style="dim")]
    lines.append(Text(f"{len(listing.items)} nodes ({listing.source}), {listing.unreachable} unreachable", style="dim"))
    return Group(*lines)
