"""The further branches a repository's patterns match (issue 13 item 2), each followed like the repository's own.

A repository follows its own branch through its `RepoPoller`, and besides it every branch of the remote that one
of its fnmatch patterns (`release/*`) matches. After each sync of its own branch the repository lists the remote's
branches (one round trip, nothing downloaded) and starts a sync and poller for each new match, and stops those whose
branch is gone. Each further branch keeps where its sync left off in `repo_branches`; the first sight of a branch is
its baseline (nothing runs then, as for a newly followed repository), and the commits pushed to it afterwards run,
recording the branch they came from. Its `.odin.yml` filters are read with that branch's name, and its schedules fire
at its tip (`on_follow`/`on_unfollow` tell the repository's scheduler which branches there are).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from odin.controller.git.errors import GitError
from odin.controller.git.mirror import Mirror
from odin.controller.poller import RepoPoller
from odin.controller.repo_specs import matches
from odin.controller.sync import SyncOutcome

log = logging.getLogger(__name__)


class BranchFollowers:
    """The pollers of one repository's further branches, started and stopped as its remote's branches change."""

    def __init__(
        self,
        *,
        repo_id: int,
        primary: str,
        patterns: Sequence[str],
        mirror: Mirror,
        make: Callable[[str], RepoPoller],
        on_follow: Callable[[str, RepoPoller], None] = lambda _branch, _poller: None,
        on_unfollow: Callable[[str], None] = lambda _branch: None,
        mirror_of: Callable[[str], Mirror] | None = None,
    ) -> None:
        """`mirror`: the repository's own (lists the remote's branches); `make(branch)`: a new, stopped poller for
        a further branch; `on_follow(branch, poller)` / `on_unfollow(branch)`: called once a branch's poller is
        started / stopped (the scheduler follows the same branches); `mirror_of(branch)`: a new mirror of a further
        branch no poller follows here (see `mirror_for`)."""
        self.repo_id = repo_id
        self.primary = primary
        self.patterns = tuple(patterns)
        self.mirror = mirror
        self._make = make
        self._on_follow = on_follow
        self._on_unfollow = on_unfollow
        self._mirror_of = mirror_of
        self._lock = threading.Lock()
        self._pollers: dict[str, RepoPoller] = {}
        self._stopped = False

    @property
    def branches(self) -> list[str]:
        with self._lock:
            return sorted(self._pollers)

    def pollers(self) -> list[RepoPoller]:
        """The further branches' pollers now (a wake-up that names no branch wakes them all)."""
        with self._lock:
            return list(self._pollers.values())

    def poller(self, branch: str) -> RepoPoller | None:
        with self._lock:
            return self._pollers.get(branch)

    def mirror_for(self, branch: str) -> Mirror | None:
        """The mirror a run started on request at further branch `branch` reads: its poller's; where no poller
        follows it (this replica does not lead, or the own branch's sync has not found the branch yet), a new one,
        when the remote has that branch. None for the own branch, a name the patterns do not match, and one that is
        no branch of the remote (a tag or a commit id a broad pattern matches): the own branch's launcher resolves
        those."""
        if branch == self.primary or not matches(self.patterns, branch):
            return None
        poller = self.poller(branch)
        if poller is not None:
            return poller.sync.mirror
        if self._mirror_of is None:
            return None
        try:
            if branch not in self.mirror.remote_branches():
                return None
            return self._mirror_of(branch)
        except GitError as e:
            log.info("repo %s: cannot tell whether %r is a branch of the remote: %s", self.repo_id, branch, e.message)
            return None
        except ValueError:  # a name the mirror refuses as a branch
            return None

    def wanted(self, branch: str) -> bool:
        """Is `branch` one of the repository's (its own or a pattern's match)?"""
        return branch == self.primary or matches(self.patterns, branch)

    def discover(self, outcome: SyncOutcome | None = None) -> None:
        """Follow the remote's branches the patterns match now (the own branch's poller calls this after a sync)."""
        if outcome is not None and outcome.error is not None:
            return  # the remote is not reachable: keep following what was followed
        try:
            names = self.mirror.remote_branches()
        except GitError as e:
            log.warning("repo %s: cannot list the remote's branches: %s", self.repo_id, e.message)
            return
        self.follow({b for b in names if b != self.primary and matches(self.patterns, b)})

    def follow(self, branches: set[str]) -> None:
        """Start pollers for `branches` not followed yet, stop those not in it."""
        started: list[tuple[str, RepoPoller]] = []
        gone: list[tuple[str, RepoPoller]] = []
        with self._lock:
            if self._stopped:
                return
            for branch in sorted(branches - self._pollers.keys()):
                try:
                    poller = self._make(branch)
                except ValueError as e:  # a branch name the mirror refuses
                    log.warning("repo %s: cannot follow branch %r: %s", self.repo_id, branch, e)
                    continue
                self._pollers[branch] = poller
                started.append((branch, poller))
                log.info("repo %s: following branch %s (pattern match)", self.repo_id, branch)
            for branch in sorted(self._pollers.keys() - branches):
                gone.append((branch, self._pollers.pop(branch)))
                log.info("repo %s: branch %s is gone from the remote; no longer followed", self.repo_id, branch)
        for branch, poller in started:
            poller.start()
            self._on_follow(branch, poller)
        for branch, poller in gone:
            self._on_unfollow(branch)
            poller.stop()

    def stop(self) -> None:
        """Stop every further branch's poller (the repository stops being followed, or this replica leading)."""
        with self._lock:
            pollers, self._pollers = list(self._pollers.items()), {}
            self._stopped = True
        for branch, poller in pollers:
            self._on_unfollow(branch)
            poller.stop()

    def resume(self) -> None:
        """Allow `discover` again after `stop` (this replica leads again)."""
        with self._lock:
            self._stopped = False
