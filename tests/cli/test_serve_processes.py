"""The parts of `cli/serve_processes.py` that need no server: the listening sockets, and no fork beside a thread.
The workers themselves are tested as real processes in tests/e2e/test_serve_processes.py."""

from __future__ import annotations

import socket
import threading

import pytest

from odin.cli.serve_processes import Supervisor, WorkerStartFailed, bind_listening_sockets


def test_one_socket_per_worker_on_one_port_even_when_the_kernel_picks_it() -> None:
    sockets = bind_listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == 3 and len(ports) == 1 and ports != {0}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
    finally:
        for s in sockets:
            s.close()


def test_a_port_taken_by_another_program_is_refused_before_any_fork() -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(OSError):
            bind_listening_sockets("127.0.0.1", other.getsockname()[1], 2)
    finally:
        other.close()


def test_workers_are_never_forked_beside_a_thread() -> None:
    """A fork copies every lock as it is at that moment, held ones included, into a child with a single thread."""
    forked: list[int] = []
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, name="busy-thread")
    busy.start()
    try:
        with pytest.raises(WorkerStartFailed, match=r"threads already run in this process .*busy-thread"):
            Supervisor(2, lambda index: forked.append(index) or 0).run()
    finally:
        stop.set()
        busy.join()
    assert forked == []
