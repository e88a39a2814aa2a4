"""`gc_paused`: no automatic collection while a command imports its stack, and the collector as it was afterwards."""

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
