"""Results across runs of one pipeline, per commit: the "did this commit improve accuracy?" question.

`since` reads like a person types it (`30d`, `12h`, `2w`, `90m`) or as an RFC 3339 time. The store answers the runs
with their results (`run_queries.results_by_run`), a page at a time with a keyset cursor; this module names the
columns: one per `task.result` that any of the runs recorded, in the order they first appear (newest run first), so a
table lines values up by name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from odin.api.schemas import ResultRow, ResultsPage
from odin.api.services.errors import InvalidRequest
from odin.api.services.pagination import decode_cursor, encode_cursor
from odin.api.services.runs import timestamp
from odin.controller.store import run_queries as store
from odin.controller.store.db import DbEngine

_AGO = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """`30d`, `12h`, `2w`, `90m` before `now`, or an RFC 3339 time; None for no bound."""
    if value is None or value == "":
        return None
    found = _AGO.match(value.strip().lower())
    if found:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        return timestamp("since", value)
    except InvalidRequest as e:
        raise InvalidRequest(
            f"since must be a duration like 30d, 12h, 2w, 90m or a time like 2024-05-01T12:00:00Z, not {value[:40]!r}"
        ) from e


def results(
    db: DbEngine,
    pipeline: str,
    *,
    since: str | None,
    limit: int,
    cursor: str | None = None,
    all_columns: bool = False,
) -> ResultsPage:
    """The newest `limit` runs of `pipeline` since `since` (after `cursor`, the `next_cursor` of the previous page),
    each with its results. `columns` names the results of this page's runs; with `all_columns`, of every run in the
    range, so that a client streaming every page (`odinctl results --all -o csv`) writes its header first."""
    if not pipeline.strip():
        raise InvalidRequest("pipeline is required: the pipeline directory, e.g. train")
    after = since_time(since)
    before = decode_cursor(cursor) if cursor else None
    name = pipeline.strip("/")
    rows = store.results_by_run(db, name, since=after, limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    columns: dict[str, None] = {}
    if all_columns:
        columns = dict.fromkeys(store.result_columns(db, name, since=after))
    for r in rows:
        for task, values in r.results.items():
            for result in values:
                columns.setdefault(f"{task}.{result}", None)
    return ResultsPage(
        pipeline=pipeline,
        since=after,
        columns=list(columns),
        items=[
            ResultRow(
                run_id=r.run_id,
                commit_sha=r.commit_sha,
                branch=r.branch,
                status=r.status,
                created_at=r.created_at,
                results=r.results,
            )
            for r in rows
        ],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].run_id) if more and rows else None,
    )
