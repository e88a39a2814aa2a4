"""Commits Odin has recorded: their validation outcome and problems, the pipelines they changed, their runs."""

from __future__ import annotations

from datetime import datetime

from odin.api.schemas import CommitDetail, CommitPage, CommitSummary, ProblemOut
from odin.api.services.errors import InvalidRequest, NotFound
from odin.api.services.pagination import decode_cursor, encode_cursor
from odin.api.services.runs import commit_prefix, runs_of_commit
from odin.controller.store import commit_queries as store
from odin.controller.store.db import DbEngine

VALIDATIONS = ("valid", "invalid", "skipped", "absorbed", "baseline")


def _subject(message: str) -> str:
    return message.strip().split("\n", 1)[0].strip()[:500] if message else ""


def _summary(r: store.CommitRow) -> CommitSummary:
    return CommitSummary(
        sha=r.sha,
        branch=r.branch,
        subject=_subject(r.message),
        author_name=r.author_name,
        author_email=r.author_email,
        committed_at=r.committed_at,
        seen_at=r.seen_at,
        validation=r.validation,
        pipelines_changed=list(r.pipelines_changed),
        problem_count=sum(1 for p in r.problems if p.get("severity") != "warning"),  # errors; warnings are listed
        absorbed_by=r.absorbed_by,
    )


def list_commits(
    db: DbEngine,
    *,
    branch: str | None,
    validation: str | None,
    pipeline: str | None,
    limit: int,
    cursor: str | None,
) -> CommitPage:
    """Most recently seen first."""
    if validation and validation not in VALIDATIONS:
        raise InvalidRequest(f"unknown validation {validation!r}; one of: {', '.join(VALIDATIONS)}")
    after: tuple[datetime, int] | None = None
    if cursor:
        at, key = decode_cursor(cursor)
        if not key.isdigit():
            raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page unchanged")
        after = (at, int(key))
    scan = store.list_commits(db, branch=branch, validation=validation, pipeline=pipeline, limit=limit, after=after)
    resume = scan.resume
    next_cursor = encode_cursor(resume.seen_at, str(resume.id)) if resume is not None else None
    return CommitPage(items=[_summary(r) for r in scan.items], next_cursor=next_cursor)


def get_commit(db: DbEngine, sha: str) -> CommitDetail:
    """A commit by full SHA or unique prefix (>= 7), with its problems and the runs it started."""
    rows = store.find_commits(db, commit_prefix(sha), limit=50)
    distinct = sorted({r.sha for r in rows})
    if not distinct:
        raise NotFound(f"Odin has not recorded a commit {sha!r} (not pushed to the followed branch, or not synced yet)")
    if len(distinct) > 1:
        raise InvalidRequest(
            f"{sha!r} matches {len(distinct)} commits ({', '.join(s[:12] for s in distinct[:5])}); give more digits"
        )
    r = rows[0]
    s = _summary(r)
    return CommitDetail(
        **{f: getattr(s, f) for f in s.__struct_fields__},
        message=r.message,
        parents=r.parents,
        problems=[ProblemOut(**p) for p in r.problems],
        runs=runs_of_commit(db, r.sha),
    )
