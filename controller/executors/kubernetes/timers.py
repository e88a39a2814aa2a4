"""One thread for everything that must happen later: deadline re-checks and TTL clean-ups.

Why not a `threading.Timer` each: a 10,000-task run with image-pull grace periods would mean thousands of threads. A
heap and one condition variable cost nothing while idle and wake exactly when the next item is due. Callbacks run on
the timer thread and must be quick (they hand real work to the executor's pool).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class Timers:
    """`call_at(when, key, fn)`: run `fn` at epoch time `when`. A key holds at most one pending call: scheduling
    it again keeps the earlier of the two times."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="odin-kube-timers", daemon=True)
        self._thread.start()

    def call_at(self, when: float, key: Hashable, fn: Callable[[], object]) -> None:
        with self._cond:
            current = self._due.get(key)
            if current is not None and current[0] <= when:
                return
            self._due[key] = (when, fn)
            heapq.heappush(self._heap, (when, next(self._counter), key))
            self._cond.notify()

    def cancel(self, key: Hashable) -> None:
        with self._cond:
            self._due.pop(key, None)

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = self.clock()
                    while self._heap:
                        when, _, key = self._heap[0]
                        current = self._due.get(key)
                        if current is None or current[0] != when:
                            heapq.heappop(self._heap)  # cancelled or rescheduled earlier
                            continue
                        break
                    if self._heap and self._heap[0][0] <= now:
                        _, _, key = heapq.heappop(self._heap)
                        fn = self._due.pop(key)[1]
                        break
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout)
                else:
                    return
            try:
                fn()
            except Exception:
                log.exception("timer %r failed", key)
