"""Commits Odin has recorded: their validation outcome and problems, the pipelines they changed, their runs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar.exceptions import NotFoundException, ValidationException
from sqlalchemy.engine import Engine as DbEngine

from odin.api.schemas import CommitDetail, CommitPage, CommitSummary, ProblemOut
from odin.api.services.pagination import decode_cursor, encode_cursor
from odin.api.services.runs import commit_filter, runs_of_commit
from odin.controller.store.models import COMMITS

VALIDATIONS = ("valid", "invalid", "skipped", "absorbed", "baseline")


def _subject(message: str) -> str:
    return message.strip().split("\n", 1)[0].strip()[:500] if message else ""


def _summary(r: Any) -> CommitSummary:
    return CommitSummary(
        sha=r.sha,
        branch=r.branch,
        subject=_subject(r.message),
        author_name=r.author_name,
        author_email=r.author_email,
        committed_at=r.committed_at,
        seen_at=r.seen_at,
        validation=r.validation,
        pipelines_changed=list(r.pipelines_changed or []),
        problem_count=len(r.problems or []),
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
    q = sa.select(COMMITS)
    if branch:
        q = q.where(COMMITS.c.branch == branch)
    if validation:
        if validation not in VALIDATIONS:
            raise ValidationException(f"unknown validation {validation!r}; one of: {', '.join(VALIDATIONS)}")
        q = q.where(COMMITS.c.validation == validation)
    if cursor:
        at, key = decode_cursor(cursor)
        if not key.isdigit():
            raise ValidationException("invalid cursor: pass back the next_cursor of a previous page unchanged")
        q = q.where(sa.or_(COMMITS.c.seen_at < at, sa.and_(COMMITS.c.seen_at == at, COMMITS.c.id < int(key))))
    q = q.order_by(COMMITS.c.seen_at.desc(), COMMITS.c.id.desc())
    # The pipeline filter looks inside a JSON list, which SQL cannot index portably: it is applied here, reading
    # pages of rows until `limit` match. The scan is bounded; when it stops early, `next_cursor` continues it.
    fetch = limit + 1 if not pipeline else max(200, limit * 4)
    found: list[Any] = []
    resume: Any = None
    last: Any = None
    with db.connect() as conn:
        page = q
        for _ in range(25 if pipeline else 1):
            rows = conn.execute(page.limit(fetch)).all()
            for r in rows:
                if pipeline and pipeline not in (r.pipelines_changed or []):
                    continue
                if len(found) == limit:
                    resume = found[-1]
                    break
                found.append(r)
            if resume is not None or len(rows) < fetch:
                break
            last = rows[-1]
            page = q.where(
                sa.or_(
                    COMMITS.c.seen_at < last.seen_at, sa.and_(COMMITS.c.seen_at == last.seen_at, COMMITS.c.id < last.id)
                )
            )
        else:
            resume = last  # the scan budget ran out: the next page continues after the last row read
    next_cursor = encode_cursor(resume.seen_at, str(resume.id)) if resume is not None else None
    return CommitPage(items=[_summary(r) for r in found], next_cursor=next_cursor)


def get_commit(db: DbEngine, sha: str) -> CommitDetail:
    """A commit by full SHA or unique prefix (>= 7), with its problems and the runs it started."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(COMMITS).where(commit_filter(COMMITS.c.sha, sha)).order_by(COMMITS.c.seen_at.desc()).limit(50)
        ).all()
    distinct = sorted({r.sha for r in rows})
    if not distinct:
        raise NotFoundException(
            f"Odin has not recorded a commit {sha!r} (not pushed to the followed branch, or not synced yet)"
        )
    if len(distinct) > 1:
        raise ValidationException(
            f"{sha!r} matches {len(distinct)} commits ({', '.join(s[:12] for s in distinct[:5])}); give more digits"
        )
    r = rows[0]
    s = _summary(r)
    return CommitDetail(
        **{f: getattr(s, f) for f in s.__struct_fields__},
        message=r.message,
        parents=list(r.parents or []),
        problems=[ProblemOut(**p) for p in (r.problems or [])],
        runs=runs_of_commit(db, r.sha),
    )
