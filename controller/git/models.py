"""Plain values the git adapter hands to the rest of the controller.

They carry no pygit2 objects (those must not cross threads, and callers must not depend on libgit2), only strings,
tuples and datetimes, so they can be stored, compared, logged and sent over the API as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["SKIP_MARKERS", "ChangeSet", "CommitInfo", "FetchResult", "WorkLimits"]

# A bot that commits back to the repository (a version bump, a generated lock file) must not trigger itself forever.
# The common CI spellings are honoured so that one marker serves every system watching the repository.
SKIP_MARKERS = ("[skip ci]", "[ci skip]", "[skip odin]", "[odin skip]")
_SKIP_RE = re.compile("|".join(re.escape(m) for m in SKIP_MARKERS), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit, as Odin records it. `committed_at` is the committer date in UTC (what git log orders by)."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    message: str
    subject: str
    committed_at: datetime

    @property
    def skip_requested(self) -> bool:
        """True when the message asks CI to skip this commit (`[skip ci]`, `[ci skip]`, `[skip odin]`,
        `[odin skip]`, any case, anywhere in the message)."""
        return _SKIP_RE.search(self.message) is not None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one `Mirror.fetch()`.

    `changed`: the branch tip differs from what the cache had before. `forced`: the previous tip is not an
    ancestor of the new one (history was rewritten; the old commits stay readable in the cache).
    `tags_changed`: tags were added, moved or deleted. `fetched`: objects were transferred (False when the cheap
    ref comparison showed nothing to do).
    """

    tip: str
    previous_tip: str | None
    changed: bool
    forced: bool
    tags_changed: bool = False
    fetched: bool = False


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file a commit changed against its base: `status` is added, modified, deleted, renamed or typechange
    (git's words); `old_path` is set for a rename. Paths are posix and repository-relative."""

    status: str
    path: str
    old_path: str | None = None


@dataclass(frozen=True, slots=True)
class FileChanges:
    """Files changed between two commits, sorted by path; at most `limit` of them, `truncated` when there were more.
    `base` is the commit compared with (None: a root commit, compared with an empty tree)."""

    base: str | None
    files: list[FileChange] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What a range of commits did to the pipelines of a repository. All lists are sorted, paths posix and
    repository-relative.

    `changed`: pipelines (that exist at the new commit) with anything added, modified, deleted or renamed under
    their directory, including the `main.yml` that made a directory a pipeline. `deleted`: pipelines that existed
    at the base and do not at the new commit. `files`: every changed path (both sides of a rename).
    """

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """No pipeline changed or was deleted (files outside every pipeline may still have changed)."""
        return not (self.changed or self.deleted)


@dataclass(frozen=True, slots=True)
class WorkLimits:
    """The largest pipeline directory `Mirror.materialize` copies: at most `max_files` files (symbolic links
    included, directories not) and `max_bytes` bytes of file content. `setting` names what configures them, for the
    message."""

    max_files: int
    max_bytes: int
    setting: str = "ODIN_LOCAL_WORK_MAX_FILES / ODIN_LOCAL_WORK_MAX_BYTES"
