"""Imports of a command's heavy modules, with the cyclic garbage collector paused while they run.

A command line imports its stack on first use (docs/architecture.md, "Start-up"): for `odin run` and `odin serve`
that is SQLAlchemy, SQLModel, pydantic, Litestar... hundreds of thousands of new objects, nearly none of them garbage.
Each allocation threshold crossed meanwhile starts a collection that walks them all and frees nothing: about a tenth
of the import time (measured CPU time, issue 15 item 2). The collector is switched back on (if it was on) as soon
as the imports are done, so nothing the command then runs goes without it.

A one-shot command (`odin run`) also freezes what the imports made (`freeze=True`): the modules live until the
process exits, yet the first collections after the imports walked all ~90,000 of their objects again, and so did the
interpreter's last ones at exit: about 60 ms of `odin run`'s 340 (docs/architecture.md, "Start-up"). Frozen objects
sit in CPython's permanent generation, which no collection walks; reference counting still frees them. What it gives
up is collecting the cycles among them that are or become garbage: the imports leave ~600 objects in such cycles,
held until exit. Objects made after the freeze (the run itself) are collected as before.
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
