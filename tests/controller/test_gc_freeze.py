"""`GcFreezer` (controller/gc_freeze.py): each tick collects the young objects and freezes the survivors, so later
collections do not walk them; cycles that became garbage while frozen are collected by the full collection that
comes once the frozen set has doubled; stopping gives everything back to the collector."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.gc_freeze import GcFreezer, start_gc_freezer
from odin.controller.settings import Settings
from tests.support.server import OdinServer
from tests.support.wait import wait_until


class Node:
    """A weak-referenceable object, to make a reference cycle the collector alone can free."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> Node:
    """Two nodes that reference each other: garbage only the cyclic collector frees, once the caller drops it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """This test process's collector as it was: nothing frozen before or after a test."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_tick_collects_young_cycles_then_freezes_the_survivors() -> None:
    freezer = GcFreezer(60)
    kept = [Node() for _ in range(1000)]
    garbage = weakref.ref(cycle())
    freezer.tick()
    assert garbage() is None  # collected before the freeze, not frozen with the rest
    assert gc.get_freeze_count() >= len(kept)
    assert freezer.stats.ticks == 1 and freezer.stats.full_collections == 0
    assert freezer.stats.frozen >= len(kept)


def test_frozen_objects_are_freed_by_reference_counting_but_frozen_cycles_wait() -> None:
    freezer = GcFreezer(60)
    acyclic, kept_cycle = Node(), cycle()
    acyclic_ref, cycle_ref = weakref.ref(acyclic), weakref.ref(kept_cycle)
    freezer.tick()
    del acyclic, kept_cycle
    assert acyclic_ref() is None  # a cached pod replaced by a newer event: freed at once, frozen or not
    gc.collect()
    assert cycle_ref() is not None  # alive at the freeze, garbage later: no ordinary collection walks it


def test_a_full_collection_once_the_frozen_set_doubled_frees_frozen_cycles() -> None:
    freezer = GcFreezer(60, regrow=2.0, min_full=0)
    kept_cycle = cycle()
    leaked = weakref.ref(kept_cycle)
    freezer.tick()
    del kept_cycle
    freezer.tick()
    assert leaked() is not None and freezer.stats.full_collections == 0
    growth = [[i] for i in range(freezer.stats.frozen + 1000)]  # live: the frozen set more than doubles
    freezer.tick()  # frozen now; the next tick sees the doubled set
    assert freezer.stats.full_collections == 0 and leaked() is not None
    freezer.tick()
    assert freezer.stats.full_collections == 1
    assert leaked() is None
    assert gc.get_freeze_count() >= len(growth)  # frozen again after the full collection
    assert freezer.stats.longest_full_s > 0


def test_no_full_collection_below_min_full() -> None:
    freezer = GcFreezer(60, min_full=10**9)
    freezer.tick()
    growth = [[i] for i in range(2 * freezer.stats.frozen + 1000)]
    freezer.tick()
    freezer.tick()
    assert freezer.stats.full_collections == 0 and len(growth) > 0


def test_it_ticks_on_its_own_thread_and_stop_unfreezes() -> None:
    freezer = GcFreezer(0.02)
    freezer.start()
    wait_until(lambda: freezer.stats.ticks >= 2, 10, message="the freezer ticking")
    freezer.stop()
    assert gc.get_freeze_count() == 0
    ticks = freezer.stats.ticks
    assert not freezer._worker.running and freezer.stats.ticks == ticks


def test_start_freezes_what_is_alive_at_once_so_the_first_tick_collects_only_what_is_new() -> None:
    """Without this, the first tick collected every object of the start-up (~150,000 in `odin serve`): 0.14 s with
    the API answering nothing, under load."""
    alive = cycle()
    assert gc.get_freeze_count() == 0
    freezer = GcFreezer(3600)  # no tick during the test
    freezer.start()
    try:
        assert gc.get_freeze_count() > 0
        assert all(o is not alive for o in gc.get_objects())  # frozen: none of the three generations holds it
    finally:
        freezer.stop()
    assert gc.get_freeze_count() == 0


def test_off_with_zero_and_wrong_values_refused() -> None:
    assert start_gc_freezer(0) is None
    with pytest.raises(ValueError, match="must be positive"):
        GcFreezer(0)
    with pytest.raises(ValueError, match="regrow must be above 1"):
        GcFreezer(1, regrow=1.0)


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_freeze_interval == 10.0
    monkeypatch.setenv("ODIN_GC_FREEZE_INTERVAL", "0")
    assert Settings().gc_freeze_interval == 0.0
    monkeypatch.setenv("ODIN_GC_FREEZE_INTERVAL", "-1")
    with pytest.raises(ValueError, match="gc_freeze_interval"):
        Settings()


@pytest.mark.slow  # `odin serve` up, healthy and stopped, twice: several seconds on a busy machine
@pytest.mark.parametrize(("interval", "said"), [("2.5", "gc freezing: every 2.5 s"), ("0", "gc freezing is off")])
def test_odin_serve_starts_it_as_configured(tmp_path: Path, interval: str, said: str) -> None:
    server = OdinServer(tmp_path / "data", {"ODIN_GC_FREEZE_INTERVAL": interval})
    with server:
        wait_until(lambda: said in server.log(), 30, message=f"{said!r} in the server's log")
    assert server.proc is not None and server.proc.returncode == 0, server.log()
