"""A kubelet that runs every pod Odin creates to success after a while, for tests of many runs.

The fake has no kubelet of its own and the per-test `kube.kubelet` is driven by hand; a test of twenty runs needs
one that finishes each pod by itself. `hold` keeps a pod running for that long after it was first seen, so that a
fault can land while tasks run. Errors from the API (a fault the test injected) are retried on the next pass.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Self

from odin.testing.kube.environment import KubeEnv


class AutoKubelet:
    def __init__(self, kube: KubeEnv, *, hold: float = 0.5, interval: float = 0.1) -> None:
        self.kube = kube
        self.hold = hold
        self.interval = interval
        self.finished: set[str] = set()
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="auto-kubelet", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                pods = self.kube.core.list_namespaced_pod(
                    self.kube.namespace, label_selector="app.kubernetes.io/managed-by=odin"
                ).items
            except Exception:  # the API is failing on purpose: try again on the next pass
                continue
            for pod in pods:
                self._advance(pod)

    def _advance(self, pod: Any) -> None:
        name = pod.metadata.name
        if name in self.finished or pod.metadata.deletion_timestamp is not None:
            return
        if (pod.status.phase if pod.status else None) in ("Succeeded", "Failed"):
            self.finished.add(name)
            return
        first_seen = self._seen.setdefault(name, time.monotonic())
        try:
            if time.monotonic() - first_seen < self.hold:
                if (pod.status.phase if pod.status else None) == "Pending":
                    self.kube.kubelet.start(pod)
                return
            self.kube.kubelet.succeed(pod)
            self.finished.add(name)
        except Exception:  # a fault, or the pod was deleted meanwhile: the next pass sees the truth
            return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(10)
