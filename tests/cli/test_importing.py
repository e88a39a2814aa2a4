"""`gc_paused`: no automatic collection while a command imports its stack, the collector as it was afterwards, and
`freeze=True` leaving what the block made to the permanent generation."""

from __future__ import annotations

import gc

import pytest

from odin.cli.importing import gc_paused


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_back_on_after_an_import_that_fails() -> None:
    with pytest.raises(ModuleNotFoundError), gc_paused():
        import odin.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_freeze_moves_what_the_block_made_to_the_permanent_generation() -> None:
    """`odin run`'s imports are frozen: no later collection (nor the interpreter's last ones, at exit) walks them."""
    gc.unfreeze()
    try:
        with gc_paused(freeze=True):
            made = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= len(made)
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_nothing_is_frozen_by_default_nor_after_a_block_that_fails() -> None:
    gc.unfreeze()
    try:
        with gc_paused():
            pass
        assert gc.get_freeze_count() == 0
        with pytest.raises(ModuleNotFoundError), gc_paused(freeze=True):
            import odin.no_such_module  # type: ignore[import-not-found]  # noqa: F401
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
