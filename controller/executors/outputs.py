"""Reading what a task attempt produced from its local `${OUTPUT_PATH}` and `${RESULTS_PATH}` (issue 11).

An executor that runs tasks where Odin can read their files (the local executor) calls `collect` once an attempt
exited 0: each declared result is read and parsed (`odin.schema.outputs.results_from`), each declared artifact is
measured and digested. What comes back is plain JSON, recorded on the task run with its status. A declared output that
is missing or too large is an `OutputProblem`, which the executor reports as a PERMANENT failure naming the output:
the same code would write the same files again, so retrying cannot help.

The task may run as another, less trusted user (`ODIN_LOCAL_TASK_USER`) while Odin reads its files, so nothing here
follows a symbolic link out of the attempt's directories (a link is recorded as a link, by its target's text) and
nothing but a regular file is opened (a FIFO would block the reader).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odin.schema.model import TaskSpec
from odin.schema.outputs import MAX_RESULT_BYTES, RESULTS_FILE, results_from


@dataclass(frozen=True, slots=True)
class AttemptDirs:
    """The two directories of one task attempt, as the task sees them: `${OUTPUT_PATH}` and `${RESULTS_PATH}`."""

    output_path: str
    results_path: str


class OutputProblem(Exception):
    """A declared output the attempt did not produce as declared. `reason` is the task run's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def prepare(dirs: AttemptDirs, owner: tuple[int, int] | None = None) -> None:
    """Create both directories empty (a re-start of the same attempt number finds the last one's files), owned by
    `owner` (uid, gid) when tasks run as another user. Their parents stay Odin's, so a task cannot swap them."""
    for directory in (dirs.output_path, dirs.results_path):
        path = Path(directory)
        try:  # the common case, a first start: one mkdir, no stat of what is not there (issue 15: per-task cost)
            path.mkdir(parents=True)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)
            path.mkdir()
        if owner is not None:
            os.chown(path, *owner, follow_symlinks=False)


def declares_outputs(spec: TaskSpec) -> bool:
    return bool(spec.artifacts or spec.results)


def collect(spec: TaskSpec, dirs: AttemptDirs) -> dict[str, Any]:
    """`{"results": {name: value}, "artifacts": {name: record}}` for the declared outputs, or `OutputProblem`."""
    return collect_declared([(a.name, a.path) for a in spec.artifacts], [r.name for r in spec.results], dirs)


def collect_declared(
    artifacts: Sequence[tuple[str, str]], results: Sequence[str], dirs: AttemptDirs, *, digests: bool = True
) -> dict[str, Any]:
    """`collect` from the declared (name, path) artifacts and result names alone: what a pod's upload step knows.
    `digests=False` checks and classifies the artifacts without hashing them (the upload step's store hashes each
    byte once as it stores it; hashing here too would read a checkpoint twice)."""
    return {
        "results": _results(results, Path(dirs.results_path)),
        "artifacts": _artifacts(artifacts, Path(dirs.output_path), digests),
    }


def _results(declared: Sequence[str], root: Path) -> dict[str, Any]:
    if not declared:
        return {}
    files: dict[str, str] = {}
    for name in declared:
        text = _read_small(root / name, MAX_RESULT_BYTES, f"result `{name}`")
        if text is not None:
            files[name] = text
    combined = None
    if len(files) < len(declared):
        combined = _read_small(root / RESULTS_FILE, MAX_RESULT_BYTES * len(declared), RESULTS_FILE)
    try:
        found = results_from(files, combined)
    except ValueError as e:
        raise OutputProblem("InvalidResults", f"${{RESULTS_PATH}}/{RESULTS_FILE}: {e}") from e
    values: dict[str, Any] = {}
    for name in declared:
        if name not in found:
            raise OutputProblem(
                "MissingResult",
                f"the task succeeded but did not write its declared result `{name}`: write it to "
                f"${{RESULTS_PATH}}/{name} or as a key of ${{RESULTS_PATH}}/{RESULTS_FILE}",
            )
        value = found[name]
        if name not in files and len(json.dumps(value)) > MAX_RESULT_BYTES:
            raise _too_large(f"result `{name}`")
        values[name] = value
    return values


def _too_large(what: str) -> OutputProblem:
    return OutputProblem(
        "ResultTooLarge",
        f"{what} is over {MAX_RESULT_BYTES // 1024} KiB: a result is a small value; write large data as an artifact",
    )


def _read_small(path: Path, limit: int, what: str) -> str | None:
    """The text of a regular file (None when there is none), refusing links, FIFOs and files over `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:  # a symbolic link (ELOOP), a directory...
        raise OutputProblem("InvalidResults", f"{what}: cannot read ${{RESULTS_PATH}}/{path.name}: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OutputProblem("InvalidResults", f"{what}: ${{RESULTS_PATH}}/{path.name} is not a regular file")
        if info.st_size > limit:
            raise _too_large(what)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _too_large(what)
    return data.decode("utf-8", errors="replace")


def _artifacts(declared: Sequence[tuple[str, str]], root: Path, digests: bool = True) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for name, relative in declared:
        path = _inside(root, relative)
        try:
            info = os.lstat(path) if path is not None else None
        except FileNotFoundError:
            info = None
        if info is None or path is None:
            raise OutputProblem(
                "MissingArtifact",
                f"the task succeeded but did not write its declared artifact `{name}` at ${{OUTPUT_PATH}}/{relative}",
            )
        kind, size, digest = _measure(path, info) if digests else _kind(path, info)
        records[name] = {
            "path": relative,
            "location": str(path),
            "type": kind,
            "size": size,
            "digest": f"sha256:{digest}",
        }
    return records


def _inside(root: Path, relative: str) -> Path | None:
    """`root/relative` when no directory on the way is a symbolic link (it could lead out of `root`); else None."""
    path = root
    parts = relative.split("/")
    for part in parts[:-1]:
        path = path / part
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None
        except FileNotFoundError:
            return None
    return path / parts[-1]


def _kind(path: Path, info: os.stat_result) -> tuple[str, int, str]:
    """(type, size of a file, no digest): `_measure` without reading the bytes."""
    if stat.S_ISLNK(info.st_mode):
        return "link", 0, ""
    if stat.S_ISREG(info.st_mode):
        return "file", info.st_size, ""
    return ("directory" if stat.S_ISDIR(info.st_mode) else "other"), 0, ""


def _measure(path: Path, info: os.stat_result) -> tuple[str, int, str]:
    """(type, size in bytes, sha256 hex) of a file, a link or a directory (a digest of its sorted manifest)."""
    if stat.S_ISLNK(info.st_mode):
        return "link", 0, hashlib.sha256(str(path.readlink()).encode()).hexdigest()
    if stat.S_ISREG(info.st_mode):
        return "file", info.st_size, _file_digest(path)
    if not stat.S_ISDIR(info.st_mode):
        return "other", 0, hashlib.sha256(b"").hexdigest()
    manifest = hashlib.sha256()
    total = 0
    for rel, kind, size, digest in sorted(_walk(path, "")):
        total += size
        manifest.update(f"{kind} {size} {digest} {rel}\n".encode())
    return "directory", total, manifest.hexdigest()


def _walk(directory: Path, prefix: str) -> list[tuple[str, str, int, str]]:
    entries: list[tuple[str, str, int, str]] = []
    with os.scandir(directory) as it:
        for entry in it:
            rel = f"{prefix}{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                entries.append((rel + "/", "directory", 0, ""))
                entries.extend(_walk(Path(entry.path), rel + "/"))
            else:
                entries.append((rel, *_measure(Path(entry.path), info)))
    return entries


def _file_digest(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return hashlib.sha256(b"").hexdigest()
        return hashlib.file_digest(f, "sha256").hexdigest()
