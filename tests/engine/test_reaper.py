"""The reaper (controller/executors/reaper.py) on real processes: an exit is reported once, and a stopped reaper holds
nothing (no thread, no descriptor), even while a process it watched still runs; a stopped executor relies on it."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from odin.controller.executors.reaper import Reaper, pidfd_supported
from tests.support.threads import executor_threads
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not pidfd_supported(), reason="needs pidfd_open (Linux >= 5.3)")


def descriptors() -> set[str]:
    """This process's pipes, epoll instances and pidfds, by what they point at."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed already
        if target.startswith(("pipe:", "anon_inode:")):
            found.add(f"{fd} {target}")
    return found


def test_an_exit_is_reported_and_a_stopped_reaper_holds_nothing(tmp_path: Path) -> None:
    before = descriptors()
    reaper = Reaper()
    ended = threading.Event()
    quick = subprocess.Popen(["true"])
    reaper.watch(quick.pid, ended.set)
    assert ended.wait(30), "the exit of a watched process is reported"
    quick.wait()

    still = subprocess.Popen(["sleep", "60"])
    try:
        reaper.watch(still.pid, lambda: None)
        wait_until(lambda: any("pidfd" in d for d in descriptors() - before), 10, message="its pidfd is watched")
        reaper.stop()
        assert not executor_threads(), "the thread has ended"
        assert descriptors() - before == set(), "the pipe, the selector and the running process's pidfd are closed"
        reaper.watch(still.pid, lambda: None)  # after stop: ignored (a restarted controller adopts it), no error
        reaper.stop()  # twice: nothing written to a descriptor number reused since
        assert not executor_threads() and descriptors() - before == set()
    finally:
        still.kill()
        still.wait()
