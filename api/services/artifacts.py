"""A run's artifacts: listing them with download URLs, and answering one download (a range of a file, a directory's
listing or its tar stream) without reading anything whole.

The artifact bytes are reached only through the controller's facade (`ArtifactReader`): the attempt's files on this
machine, else the artifact store by digest. What this module adds is the HTTP meaning: which task and artifact a
path names (404s that say what exists), which bytes a `Range` asks for (`ranges`), and the headers that go with them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from odin.api.schemas import ArtifactItem, ArtifactList, DirectoryFileOut, DirectoryListing
from odin.api.services import ranges
from odin.api.services.errors import InvalidRequest, NotFound
from odin.controller.facade import ArtifactNotFound, ArtifactReader, FileSource, UnsafeArtifactPath, tar_stream
from odin.controller.store import run_queries as store
from odin.controller.store.db import DbEngine


def _seg(value: str) -> str:
    return quote(value, safe="")


def artifact_url(run_id: str, task: str, name: str) -> str:
    return f"/v1/runs/{_seg(run_id)}/artifacts/{_seg(task)}/{_seg(name)}"


def list_artifacts(db: DbEngine, run_id: str) -> ArtifactList:
    """Every task's recorded artifacts, in task order then name order."""
    tasks = store.task_outputs(db, run_id)
    if tasks is None:
        raise NotFound(f"no run {run_id!r}")
    items: list[ArtifactItem] = []
    for t in tasks:
        for name, a in sorted(t.artifacts.items()):
            url = artifact_url(run_id, t.name, name)
            items.append(
                ArtifactItem(
                    task=t.name,
                    name=name,
                    type=str(a.get("type", "file")),
                    path=str(a.get("path", name)),
                    size=int(a.get("size", 0)),
                    digest=str(a.get("digest", "")),
                    url=url,
                    files_url=f"{url}/files" if a.get("type") == "directory" else None,
                )
            )
    return ArtifactList(run_id=run_id, items=items)


def record(db: DbEngine, run_id: str, task: str, name: str) -> dict[str, Any]:
    """The artifact's record as the task run holds it; `NotFound` saying what exists instead."""
    tasks = store.task_outputs(db, run_id)
    if tasks is None:
        raise NotFound(f"no run {run_id!r}")
    found = next((t for t in tasks if t.name == task), None)
    if found is None:
        raise NotFound(f"run {run_id!r} has no task {task!r} (tasks: {', '.join(t.name for t in tasks) or 'none'})")
    if name not in found.artifacts:
        if found.artifacts:
            have = f"it recorded: {', '.join(sorted(found.artifacts))}"
        elif found.status != "succeeded":
            have = f"it is {found.status}; artifacts are recorded when a task succeeds"
        else:
            have = "it recorded none (declare them under `outputs: artifacts:`)"
        raise NotFound(f"task {task!r} of run {run_id!r} has no artifact {name!r}; {have}")
    return dict(found.artifacts[name])


@dataclass(frozen=True, slots=True)
class Download:
    """An answer to stream: status (200 or 206), headers, media type and the body's chunks."""

    status: int
    headers: dict[str, str]
    media_type: str
    body: Iterator[bytes]


def _where(run_id: str, task: str, name: str) -> str:
    return f"artifact {name!r} of task {task!r} in run {run_id!r}"


def download(
    reader: ArtifactReader,
    db: DbEngine,
    run_id: str,
    task: str,
    name: str,
    *,
    range_header: str | None,
    if_range: str | None,
) -> Download:
    """A file artifact's bytes (the part `Range` asks for), or a directory artifact as a tar stream."""
    rec = record(db, run_id, task, name)
    kind = rec.get("type")
    try:
        if kind == "directory":
            return _tar(reader, rec, name)
        if kind != "file":
            raise NotFound(f"{_where(run_id, task, name)} is a {kind}, not a file or directory: nothing to send")
        source = reader.file(rec)
    except ArtifactNotFound as e:
        raise NotFound(f"{_where(run_id, task, name)} is not available: {e.message}") from e
    return _ranged(source, range_header, if_range, f"{name}")


def listing(reader: ArtifactReader, db: DbEngine, run_id: str, task: str, name: str) -> DirectoryListing:
    """The files of a directory artifact, each with its own download URL."""
    rec = _directory(db, run_id, task, name)
    try:
        files = reader.listing(rec)
    except ArtifactNotFound as e:
        raise NotFound(f"{_where(run_id, task, name)} is not available: {e.message}") from e
    base = f"{artifact_url(run_id, task, name)}/files"
    return DirectoryListing(
        run_id=run_id,
        task=task,
        name=name,
        digest=str(rec.get("digest", "")),
        files=[
            DirectoryFileOut(path=f.path, size=f.size, executable=f.executable, url=f"{base}/{quote(f.path)}")
            for f in files
        ],
    )


def member(
    reader: ArtifactReader,
    db: DbEngine,
    run_id: str,
    task: str,
    name: str,
    path: str,
    *,
    range_header: str | None,
    if_range: str | None,
) -> Download:
    """One file of a directory artifact (the part `Range` asks for)."""
    rec = _directory(db, run_id, task, name)
    path = path.lstrip("/")
    try:
        source = reader.member(rec, path)
    except UnsafeArtifactPath as e:
        raise InvalidRequest(f"file path {path[:200]!r}: {e.message}") from e
    except ArtifactNotFound as e:
        raise NotFound(f"{_where(run_id, task, name)}: {e.message}") from e
    return _ranged(source, range_header, if_range, path.rsplit("/", 1)[-1])


def _directory(db: DbEngine, run_id: str, task: str, name: str) -> dict[str, Any]:
    rec = record(db, run_id, task, name)
    if rec.get("type") != "directory":
        raise NotFound(
            f"{_where(run_id, task, name)} is a {rec.get('type')}, not a directory: download it at "
            f"{artifact_url(run_id, task, name)}"
        )
    return rec


def _disposition(filename: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


def _ranged(source: FileSource, range_header: str | None, if_range: str | None, filename: str) -> Download:
    tag = ranges.etag(source.etag)
    span = ranges.choose(source.size, range_header, if_range, tag)
    headers = {**ranges.headers(span, source.size, tag), "Content-Disposition": _disposition(filename)}

    def body() -> Iterator[bytes]:
        if span.length == 0:
            return
        with source.open_range(span.start, span.length) as chunks:
            yield from chunks

    return Download(206 if span.partial else 200, headers, "application/octet-stream", body())


def _tar(reader: ArtifactReader, rec: Mapping[str, Any], name: str) -> Download:
    files = reader.listing(rec)
    digest = str(rec.get("digest", ""))

    def members() -> Iterator[tuple[Any, FileSource]]:
        for f in files:
            yield f, reader.member(rec, f.path)

    headers = {
        "ETag": ranges.etag(f"{digest}.tar"),
        "Accept-Ranges": "none",  # built as it is sent: no offsets to seek to
        "Content-Disposition": _disposition(f"{name}.tar"),
    }
    return Download(200, headers, "application/x-tar", tar_stream(members(), prefix=name))
