"""Resource limits for loading untrusted YAML.

`main.yml` arrives with any commit pushed to a watched repository, so the controller must survive hostile files: huge
ones, "billion laughs" alias bombs, absurd nesting. The defaults are far above anything a real pipeline needs (a
typical file is 2 KB and 300 nodes) and far below what would hurt the controller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied before and while a file is parsed."""

    max_bytes: int = 1 << 20
    """Files larger than this are rejected before parsing."""
    max_nodes: int = 100_000
    """Total YAML nodes after expanding aliases (each use of `*anchor` counts its whole subtree again)."""
    max_depth: int = 64
    """Deepest nesting of mappings and sequences."""
    max_text: int = 4 << 20
    """Total characters of keys and scalar values after expanding aliases: the node budget alone would let a few
    hundred aliases of one long string make every later check read gigabytes."""
    max_problems: int = 100
    """Problems reported per file; the rest are counted in one final "and N more problems"."""
    max_matrix: int = 256
    """Combinations one task's `matrix` may expand to: a sweep is many runs of a container, and a typo in a list
    (a range written out by a script) should not start thousands of pods."""
    max_tasks: int = 100_000
    """Tasks in a pipeline after sweeps are expanded; the largest file without sweeps holds about 28,000 tasks, so
    only sweeps can reach this, and each expanded task costs the controller memory (about 4.5 kB in a run,
    benchmarks/bench_big_run.py) and a row per run."""


DEFAULT_LIMITS = Limits()


def format_size(n: int) -> str:
    """A byte count for humans. Exact multiples of 1024 read in binary units (1.0 MiB), other sizes in decimal ones
    (50.0 MB), so a configured power-of-two limit is printed as the round number it was set to."""
    binary = n >= 1024 and n % 1024 == 0
    base = 1024.0 if binary else 1000.0
    units = ("KiB", "MiB", "GiB", "TiB") if binary else ("kB", "MB", "GB", "TB")
    if n < base:
        return f"{n} bytes"
    value = float(n)
    for unit in units:
        value /= base
        if value < base or unit == units[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def size_message(size: int, limits: Limits) -> str:
    """The problem text for an oversized file. Near the limit the rounded sizes alone could read as equal (1.0 MB vs
    1.0 MiB), so the exact byte counts are added there."""
    message = f"file is {format_size(size)}; the limit is {format_size(limits.max_bytes)}"
    if size < 2 * limits.max_bytes:
        message += f" ({size} > {limits.max_bytes} bytes)"
    return message
