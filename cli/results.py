"""`odinctl results`: a pipeline's results per commit as a table or CSV, one column per result.

Columns are named by the result alone (`accuracy`) when only one task records it, and `task.result` when several do,
so the common case reads short and nothing is ever merged by mistake. Pure functions over the API's `ResultsPage`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from odin.api.schemas import ResultRow, ResultsPage
from odin.cli.render import styled, when


def headings(columns: Sequence[str]) -> list[str]:
    """The header of each `task.result` column: the result's name when unique among the columns."""
    names = [c.split(".", 1)[1] for c in columns]
    return [name if names.count(name) == 1 else column for column, name in zip(columns, names, strict=True)]


def value(row: ResultRow, column: str) -> Any:
    task, _, name = column.partition(".")
    return row.results.get(task, {}).get(name)


def cell(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def results_table(page: ResultsPage) -> Table:
    table = Table(box=None, pad_edge=False, highlight=False)
    for heading in ("COMMIT", "RUN", "DATE", "STATUS", *(h.upper() for h in headings(page.columns))):
        table.add_column(heading, overflow="fold")
    for r in page.items:
        table.add_row(
            (r.commit_sha or "-")[:7],
            r.run_id,
            when(r.created_at),
            styled(r.status),
            *(Text(cell(value(r, c))) for c in page.columns),
        )
    return table


def results_csv(page: ResultsPage) -> str:
    """RFC 4180 CSV: commit (full SHA), run_id, created_at (ISO 8601), status, then one column per result."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["commit", "run_id", "created_at", "status", *headings(page.columns)])
    for r in page.items:
        fixed = [r.commit_sha or "", r.run_id, r.created_at.isoformat(), r.status]
        writer.writerow([*fixed, *(cell(value(r, c)) for c in page.columns)])
    return buf.getvalue()
