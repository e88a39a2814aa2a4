"""Commits Odin has seen: their validation, the pipelines they changed, the runs they started."""

from __future__ import annotations

from datetime import datetime

import msgspec

from odin.api.schemas.common import ProblemOut
from odin.api.schemas.runs import RunSummary


class CommitSummary(msgspec.Struct, kw_only=True):
    sha: str
    branch: str | None
    subject: str
    author_name: str
    author_email: str
    committed_at: datetime | None
    seen_at: datetime
    validation: str
    pipelines_changed: list[str]
    problem_count: int
    absorbed_by: str | None


class CommitDetail(CommitSummary, kw_only=True):
    message: str
    parents: list[str]
    problems: list[ProblemOut]
    runs: list[RunSummary]


class CommitPage(msgspec.Struct, kw_only=True):
    items: list[CommitSummary]
    next_cursor: str | None
