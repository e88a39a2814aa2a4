"""Imports of a command's heavy modules, with the cyclic garbage collector paused while they run.

A command line imports its stack on first use (docs/architecture.md, "Start-up"): for `odin run` and `odin serve`
that is SQLAlchemy, SQLModel, pydantic, Litestar... hundreds of thousands of new objects, nearly none of them garbage.
Each allocation threshold crossed meanwhile starts a collection that walks them all and frees nothing: about a tenth
of the import time (measured CPU time, issue 15 item 2). The collector is switched back on (if it was on) as soon
as the imports are done, so nothing the command then runs goes without it.

A one-shot command (`odin run`) also freezes what the imports made (`freeze=True`): the modules live until the
process exits, yet every full collection walks them again, and so does the interpreter on its way out (its last
collections over ~90,000 import-time objects were about 65 ms of `odin run`'s 340, after the work was done).
Frozen objects sit in CPython's permanent generation, which no collection walks; reference counting still frees
them. What it gives up is the collection of cycles among them that become garbage later: a few hundred objects the
imports left behind (measured: ~600), held until exit. Objects made after the freeze (the run itself) are collected
as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """Run the block (imports) without automatic collections; the collector's state is restored on the way out.
    With `freeze`, everything the collector tracks once the block succeeded is frozen (`gc.freeze`: see above)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()
