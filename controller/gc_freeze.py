"""Keep CPython's cyclic garbage collector off the controller's long-lived state (issue 15 item 4).

Why: a full (generation 2) collection walks every object the collector tracks. A controller following 10,000 live
pods holds a few million of them for hours -- the watches' cached pods, the attempts' records, the engine's run
states -- and under churn (every pod status event replaces a cached object) CPython starts a full collection each
time a quarter of that heap has been replaced, whether or not it grew. Each one stopped the process for up to 3.7 s
(14 s in all over `benchmarks/bench_kube_scale.py` at 10,000 pods, on a loaded 2-core machine), and a watch event
that arrived meanwhile waited that long for its dependent's create (target: 100 ms; docs/kubernetes.md, "Testing
and speed"). With freezing: longest 0.75-1.0 s, 6-8 s in all, mostly while the load itself changes.

What: every `interval` seconds, collect what is not frozen yet (only the objects that survived since the last tick,
so the pause is short) and then `gc.freeze()` the survivors: frozen objects sit in the permanent generation, which
no collection walks. Reference counting still frees them (the cached pods are trees of dicts and lists, without
cycles, and are freed the moment a newer event replaces them). What freezing gives up is the collection of *cycles*
that were alive at a freeze and became garbage later; to bound that, when the frozen set has grown to `regrow` times
its size after the last full collection, the next tick unfreezes everything and collects it all once (one long
pause, at doubling points of the live heap -- so a handful while the load grows, and none while it is steady, as
opposed to one per quarter of churn). Memory held by uncollected cycles is therefore at most the live heap again.

Where: `odin serve` starts it with the controller (`cli/server.py`), `ODIN_GC_FREEZE_INTERVAL` seconds apart
(`controller/settings.py`; 0 turns it off and leaves the collector as CPython sets it). Process-wide by nature, so
it lives here, once, and not inside the executor or the engine.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

from odin.controller.periodic import PeriodicWorker

log = logging.getLogger(__name__)

REGROW = 2.0
"""A full collection (unfreeze, collect, freeze) once the frozen set is this many times its size after the last."""
MIN_FULL = 100_000
"""Never a full collection for a frozen set below this many objects: at start-up (imports, recovery) it doubles
quickly and each full collection of it would be cheap but pointless."""


@dataclass(slots=True)
class FreezeStats:
    """What the freezer did so far (logs, the benchmark)."""

    ticks: int = 0
    full_collections: int = 0
    frozen: int = 0  # objects in the permanent generation after the last tick (an upper bound, see `tick`)
    last_tick_s: float = 0.0  # how long the last tick held the interpreter (collect + freeze)
    longest_tick_s: float = 0.0
    longest_full_s: float = 0.0


class GcFreezer:
    """Collects the young objects and freezes the survivors every `interval` seconds (see the module docstring)."""

    def __init__(self, interval: float, *, regrow: float = REGROW, min_full: int = MIN_FULL) -> None:
        if interval <= 0:
            raise ValueError(f"the freeze interval must be positive, not {interval}")
        if regrow <= 1:
            raise ValueError(f"regrow must be above 1 (the frozen set must grow before a full collection): {regrow}")
        self.interval, self.regrow, self.min_full = interval, regrow, min_full
        self.stats = FreezeStats()
        self._baseline = 0  # frozen objects after the last full collection
        self._full_due = False  # the last tick found the frozen set `regrow` times the baseline
        self._estimate = 0  # frozen objects, at most: the last exact count plus what was frozen since
        self._lock = threading.Lock()
        self._worker = PeriodicWorker("odin-gc-freeze", self.tick, interval=interval, logger=log, what="gc freezing")

    def start(self) -> None:
        """Freeze what is alive now, then tick. Freezing at once, without a collection, keeps the first tick short:
        it would otherwise collect every object of the start-up (imports, settings, the app: ~150,000 in `odin
        serve`), 0.14 s during which the process answered nothing (a p99 of 120 ms at 1,000 API requests/s in
        `benchmarks/bench_api.py`, against 5 ms without). What start-up left as garbage cycles stays frozen with
        it, a few hundred kB once, as in `odin run` (`cli/importing.py`)."""
        with self._lock:
            gc.freeze()
        self._worker.start()

    def stop(self) -> None:
        """Stop ticking and give the frozen objects back to the collector, as the process had them before."""
        self._worker.stop()
        with self._lock:
            gc.unfreeze()

    def tick(self) -> None:
        """Collect what is new since the last tick, then freeze it; a full collection when the frozen set was found
        doubled. `gc.get_freeze_count` walks the whole frozen set (tens of ms at millions of objects), so it is read
        only when the objects frozen since it was last read could have doubled it; churn (objects frozen, then freed
        by reference counting) makes that estimate high, never low."""
        with self._lock:
            started = time.perf_counter()
            full = self._full_due
            if full:
                gc.unfreeze()
            gc.collect()  # without `unfreeze`, the permanent generation is not walked: only what is new since
            survivors = len(gc.get_objects(generation=2))  # everything left is in generation 2 after a collection
            gc.freeze()
            self._estimate += survivors
            threshold = max(self.min_full, self._baseline * self.regrow)
            if full or self._baseline == 0 or self._estimate >= threshold:
                self._estimate = gc.get_freeze_count()
                if full or self._baseline == 0:
                    self._baseline = max(self._estimate, 1)
            self._full_due = not full and self._estimate >= max(self.min_full, self._baseline * self.regrow)
            elapsed = time.perf_counter() - started
            stats = self.stats
            stats.ticks += 1
            stats.frozen = self._estimate
            stats.last_tick_s = elapsed
            stats.longest_tick_s = max(stats.longest_tick_s, elapsed)
            if full:
                stats.full_collections += 1
                stats.longest_full_s = max(stats.longest_full_s, elapsed)
                log.info("gc freezing: the frozen set had doubled; collecting all %d objects took %.2f s",
                         self._estimate, elapsed)  # fmt: skip


def start_gc_freezer(interval: float) -> GcFreezer | None:
    """The freezer `odin serve` runs, started; None when `interval` is 0 (`ODIN_GC_FREEZE_INTERVAL=0`: off)."""
    if interval <= 0:
        log.info("gc freezing is off (ODIN_GC_FREEZE_INTERVAL=0): CPython's collector walks the whole heap")
        return None
    freezer = GcFreezer(interval)
    freezer.start()
    log.info("gc freezing: every %g s, long-lived objects are frozen out of the collector's way "
             "(ODIN_GC_FREEZE_INTERVAL; 0: off)", interval)  # fmt: skip
    return freezer
