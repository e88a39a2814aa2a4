"""Imports of a command's heavy modules, with the cyclic garbage collector paused while they run.

A command line imports its stack on first use (docs/architecture.md, "Start-up"): for `odin run` and `odin serve`
that is SQLAlchemy, SQLModel, pydantic, Litestar... hundreds of thousands of new objects, nearly none of them garbage.
Each allocation threshold crossed meanwhile starts a collection that walks them all and frees nothing: about a tenth
of the import time (measured CPU time, issue 15 item 2). The collector is switched back on (if it was on) as soon
as the imports are done, so nothing the command then runs goes without it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block (imports) without automatic collections; the collector's state is restored on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
