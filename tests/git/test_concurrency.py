"""The poller fetches while API threads read: nothing may break or read a half-written state."""

from __future__ import annotations

import threading
from pathlib import Path

from odin.controller.git import Mirror
from tests.support.git import GitRemote


def test_reads_from_many_threads_during_fetches(git_remote: GitRemote, mirror: Mirror, cache_dir: Path) -> None:
    first = git_remote.commit({f"p{i}/main.yml": f"pipeline {i}\n" for i in range(20)})
    mirror.fetch()
    expected = {f"p{i}" for i in range(20)}
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]
    progress = threading.Condition()

    def reader(n: int) -> None:
        try:
            while not stop.is_set():
                assert mirror.read_file(first, f"p{n % 20}/main.yml", max_size=100) == f"pipeline {n % 20}\n".encode()
                assert set(mirror.list_pipelines(first)) == expected
                assert mirror.resolve(first[:10]) == first
                tip = mirror.tip()
                assert tip is not None
                mirror.commit_info(tip)  # whatever tip is visible must be fully readable
                mirror.list_pipelines(tip)
                with progress:
                    reads[0] += 1
                    progress.notify_all()
        except BaseException as e:
            errors.append(e)
            stop.set()
            with progress:
                progress.notify_all()

    def second_fetcher() -> None:
        # Another Mirror object on the same cache (as after a restart, or a second poller): serialised by flock.
        other = Mirror(git_remote.url, cache_dir)
        try:
            while not stop.is_set():
                other.fetch()
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=second_fetcher))
    for t in threads:
        t.start()
    try:
        for i in range(25):
            git_remote.commit({f"p{i % 20}/data.txt": f"{i}\n", f"new{i}/main.yml": "x"})
            result = mirror.fetch()
            assert mirror.read_file(result.tip, f"new{i}/main.yml", max_size=10) == b"x"
            if errors:
                break
    finally:
        # Make sure the readers really ran alongside (a few more rounds after the last fetch), then stop them.
        with progress:
            target = reads[0] + 50
            progress.wait_for(lambda: bool(errors) or reads[0] >= target, timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert errors == []
    assert not any(t.is_alive() for t in threads)
    assert mirror.fetch().tip == git_remote.head
