"""The tags a repository's tag patterns match (issue 13 item 2): a new or moved tag runs the pipelines at its commit.

After each sync of its own branch a repository with tag patterns (`v*`) lists the remote's tags (one round trip,
nothing downloaded) and compares them with those it saw at the last listing (`repositories.tags_seen`). A matching tag
that is new, or that now names another commit (force-pushed), starts every pipeline at that commit, once per
(repository, tag, commit, pipeline): the run's `dedupe_key` says so, so restarts and replicas never start it twice. The
first listing (and the first after the patterns or the URL change) is the baseline: the tags there run nothing, as a
newly followed branch's commits do not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from odin.controller.git.errors import GitError
from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher, RunRejected
from odin.controller.repo_specs import matches
from odin.controller.store.db import DbEngine
from odin.controller.store.repo_records import record_tags_seen, tags_seen
from odin.controller.store.runs import Created
from odin.controller.sync import SyncOutcome

log = logging.getLogger(__name__)


class TagFollower:
    """Starts the runs of one repository's new and moved tags; `check` runs on its own branch's poller thread."""

    def __init__(
        self, db: DbEngine, repo_id: int, *, patterns: Sequence[str], mirror: Mirror, launcher: RunLauncher
    ) -> None:
        self.db = db
        self.repo_id = repo_id
        self.patterns = tuple(patterns)
        self.mirror = mirror
        self.launcher = launcher

    def check(self, outcome: SyncOutcome | None = None) -> list[Created]:
        """List the remote's tags and start the runs of the matching ones that are new or moved since the last
        listing. A tag whose runs could not start (the remote is down) is not recorded as seen: the next check
        tries again, and the dedupe key keeps what did start from starting twice."""
        if outcome is not None and outcome.error is not None:
            return []  # the remote is not reachable: try at the next sync
        try:
            remote = self.mirror.remote_tags()
        except GitError as e:
            log.warning("repo %s: cannot list the remote's tags: %s", self.repo_id, e.message)
            return []
        seen = tags_seen(self.db, self.repo_id)
        if seen is None:
            record_tags_seen(self.db, self.repo_id, remote)
            log.info("repo %s: %d tag(s) on the remote: the baseline, nothing runs", self.repo_id, len(remote))
            return []
        created: list[Created] = []
        recorded = dict(remote)
        for tag, sha in sorted(remote.items()):
            if seen.get(tag) == sha or not matches(self.patterns, tag):
                continue
            try:
                created += self.launcher.start_tagged(tag, sha)
            except RunRejected as e:
                log.warning("repo %s: tag %s at %s not started (tried again at the next sync): %s",
                            self.repo_id, tag, sha[:12], e)  # fmt: skip
                if tag in seen:
                    recorded[tag] = seen[tag]
                else:
                    del recorded[tag]
        if recorded != seen:
            record_tags_seen(self.db, self.repo_id, recorded)
        return created
