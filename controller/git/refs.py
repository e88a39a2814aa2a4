"""Which refs a user may name, checked once before anything touches git, and how often a missing one may cost a fetch.

Every ref a person or a payload gives (`POST /v1/runs`, `GET /v1/pipelines?ref=`, `odinctl run --ref`, the generic
webhook) goes through `check_ref` (via `Mirror.resolve`, or directly where a payload is parsed): git's own rules for
ref names (`git check-ref-format`, as libgit2 applies them) plus the ones `git check-ref-format --branch` adds, so
`main..v1`, `-main`, `@{-1}`, `--upload-pack=x` or `main.lock` are a 400 that says why, not a 404 after a fetch.

A valid name that the cache does not have costs one fetch (a tag pushed a second ago must work). `MissedRefs`
remembers the names that were still missing after one, so asking again within its interval answers from the cache:
whoever keeps asking for a ref that does not exist does not decide how often the remote is contacted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import pygit2

from odin.controller.git.errors import InvalidRef

__all__ = ["MAX_REF_LENGTH", "MissedRefs", "check_ref"]

MAX_REF_LENGTH = 255


def check_ref(ref: str) -> str:
    """`ref` without surrounding spaces, if it is a name git accepts for a branch, tag or commit; else `InvalidRef`
    with the rule it breaks. Accepts `main`, `v1.0`, `feature/x`, `refs/heads/main`, `refs/tags/v1`, hex ids."""
    name = ref.strip()
    if not name:
        raise InvalidRef("the ref is empty; give a branch, a tag or a commit id")
    if len(name) > MAX_REF_LENGTH:
        raise InvalidRef(f"the ref is longer than {MAX_REF_LENGTH} characters")
    if "\0" in name:
        raise InvalidRef("the ref contains a NUL character")
    if name.startswith("-"):
        raise InvalidRef(f"{name!r} starts with '-', which git refuses in ref names")
    if name in ("@", "HEAD"):
        raise InvalidRef(f"{name!r} is not a branch, tag or commit name; name the branch or tag itself")
    full = name if name.startswith("refs/") else f"refs/heads/{name}"
    if not pygit2.reference_is_valid_name(full):
        raise InvalidRef(
            f"{name!r} is not a valid git ref name (no '..', '@{{', '~', '^', ':', '?', '*', '[', '\\\\', spaces or "
            "control characters; no component starting with '.' or ending with '.lock')"
        )
    return name


class MissedRefs:
    """The refs that were still missing after a fetch, remembered for `ttl` seconds (at most `size` of them).

    Thread-safe. `clock` is injectable for tests of the expiry itself; everything else uses the monotonic clock.
    """

    def __init__(self, ttl: float = 30.0, *, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._missed: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def missed_since(self, ref: str) -> float | None:
        """Seconds since `ref` was last found missing after a fetch, if that was within `ttl`; else None."""
        now = self._clock()
        with self._lock:
            at = self._missed.get(ref)
            if at is None:
                return None
            if now - at >= self.ttl:
                del self._missed[ref]
                return None
            return now - at

    def remember(self, ref: str) -> None:
        with self._lock:
            self._missed[ref] = self._clock()
            self._missed.move_to_end(ref)
            while len(self._missed) > self.size:
                self._missed.popitem(last=False)

    def forget(self, ref: str) -> None:
        with self._lock:
            self._missed.pop(ref, None)
