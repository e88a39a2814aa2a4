"""What a run produced, as the API lists it: artifacts with their download URLs, a directory's files, and results
across runs (`odinctl artifacts`, `odinctl get`, `odinctl results`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class ArtifactItem(msgspec.Struct, kw_only=True):
    """One recorded artifact of one task."""

    task: str
    name: str
    type: str  # file | directory | link
    path: str  # relative to the attempt's ${OUTPUT_PATH}
    size: int  # bytes (a directory: its files' total)
    digest: str  # sha256:<hex>; the download's ETag
    url: str  # GET it: a file's bytes (Range honoured), a directory as a tar stream
    files_url: str | None = None  # a directory: its files, each with its own URL (Range honoured)


class ArtifactList(msgspec.Struct, kw_only=True):
    run_id: str
    items: list[ArtifactItem]


class DirectoryFileOut(msgspec.Struct, kw_only=True):
    path: str  # relative to the artifact's directory
    size: int
    executable: bool
    url: str


class DirectoryListing(msgspec.Struct, kw_only=True):
    run_id: str
    task: str
    name: str
    digest: str
    files: list[DirectoryFileOut]


class ResultRow(msgspec.Struct, kw_only=True):
    """One run and the results its tasks recorded, `{task: {result: value}}`."""

    run_id: str
    commit_sha: str | None
    branch: str | None
    status: str
    created_at: datetime
    results: dict[str, dict[str, Any]]


class ResultsPage(msgspec.Struct, kw_only=True):
    """Runs of one pipeline with results, newest first; `columns` names each result once, as `task.result`;
    `next_cursor` asks for the next (older) page, None on the last."""

    pipeline: str
    since: datetime | None
    columns: list[str]
    items: list[ResultRow]
    next_cursor: str | None = None
