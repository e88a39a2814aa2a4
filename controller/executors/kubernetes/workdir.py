"""`${WORK_PATH}` inside pods: the pipeline directory of the run's commit, carried by immutable ConfigMaps.

The mechanism, and why: the controller already materialises the pipeline directory of the run's commit (the git tree,
never a branch tip) at `run.work_path`. `prepare_run` packs those files into ConfigMaps named after the run
(`<run>-work`, `<run>-work-1`, ...: at most ~1 MB each, the apiserver's limit), `immutable: true`, labelled with the
run and annotated with the git tree id. Every pod mounts them read-only at `/odin/work` through one `projected`
volume whose `items` restore the directory structure (ConfigMap keys cannot contain `/`) and the executable bit.

* Exactly the commit's files: the content comes from the tree Odin validated, and an immutable ConfigMap cannot be
  edited afterwards (the kubelet also stops watching it).
* Nothing to run in the pod: no git, no credentials, no network to the git server from training nodes.
* One ConfigMap set per run, not per task: a 1,000-task fan-out costs one create, and the set is deleted with the
  run's objects after the TTL. (Sharing one set per tree oid across runs would save little -- a run only starts when
  its directory changed -- and would need reference counting across runs and restarts to delete safely.)

Limits: files travel through etcd, so the total is capped (`ODIN_KUBE_WORK_MAX_BYTES`, default 8 MiB, no single file
above ~1 MB). A bigger directory fails the run's tasks with `WorkTreeTooLarge` and says so: keep datasets and weights
on a volume (`mounts`, `${ROOT_PATH}`), not in git. Symlinks are copied as the file they point to when it is inside
the directory, and skipped otherwise.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MOUNT_PATH = "/odin/work"
CHUNK_BYTES = 1_000_000  # a ConfigMap holds at most 1 MiB of data; keep room for keys and base64 overhead
_KEY_BAD = re.compile(r"[^-._a-zA-Z0-9]+")


class WorkTreeError(ValueError):
    """The pipeline directory cannot be carried into pods: `reason` is `WorkTreeTooLarge` or `WorkTreeUnreadable`."""

    def __init__(self, message: str, reason: str = "WorkTreeUnreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WorkFile:
    key: str
    path: str  # relative to the mount
    mode: int
    data: bytes


@dataclass(frozen=True, slots=True)
class WorkChunk:
    name: str
    files: tuple[WorkFile, ...]


@dataclass(frozen=True, slots=True)
class WorkTree:
    """The ConfigMaps carrying one run's pipeline directory, and the volume that mounts them."""

    chunks: tuple[WorkChunk, ...]
    tree: str | None
    total_bytes: int
    skipped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.chunks)

    def volume(self, volume_name: str) -> dict[str, Any]:
        """A projected volume putting every file back at its path (read-only; mode 0755 for executables)."""
        sources = [
            {
                "configMap": {
                    "name": chunk.name,
                    "items": [{"key": f.key, "path": f.path, "mode": f.mode} for f in chunk.files],
                }
            }
            for chunk in self.chunks
        ]
        return {"name": volume_name, "projected": {"defaultMode": 0o444, "sources": sources}}

    def config_maps(self, labels: Mapping[str, str], annotations: Mapping[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in self.chunks:
            data: dict[str, str] = {}
            binary: dict[str, str] = {}
            for f in chunk.files:
                try:
                    data[f.key] = f.data.decode("utf-8")
                except UnicodeDecodeError:
                    binary[f.key] = base64.b64encode(f.data).decode("ascii")
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": chunk.name, "labels": dict(labels), "annotations": dict(annotations)},
                "immutable": True,
            }
            if data:
                body["data"] = data
            if binary:
                body["binaryData"] = binary
            out.append(body)
        return out


def _key(index: int, relative: str) -> str:
    """A ConfigMap key for a file: unique by its index, readable by its name."""
    base = _KEY_BAD.sub("_", relative.replace("/", "__"))
    return f"{index:04d}.{base}"[:253]


def collect(root: Path, *, name: str, tree: str | None, max_bytes: int) -> WorkTree:
    """Read the directory at `root` into ConfigMap-sized chunks named `name`, `name-1`, ..."""
    if not root.is_dir():
        raise WorkTreeError(f"the run's files are missing on the controller ({root} is not a directory)")
    resolved_root = root.resolve()
    files: list[tuple[str, int, bytes]] = []
    skipped: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for entry in sorted(filenames):
            path = Path(dirpath) / entry
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_file() or not target.is_relative_to(resolved_root):
                    skipped.append(relative)
                    continue
            try:
                data = path.read_bytes()
                executable = os.access(path, os.X_OK)
            except OSError as e:
                raise WorkTreeError(f"cannot read {relative} of the pipeline directory: {e}") from e
            if len(data) > CHUNK_BYTES:
                raise WorkTreeError(
                    f"{relative} is {len(data):,} bytes: larger than a ConfigMap can carry ({CHUNK_BYTES:,}); keep "
                    "large files on a volume (`mounts`, ${ROOT_PATH}), not in the pipeline directory",
                    "WorkTreeTooLarge",
                )
            total += len(data)
            if total > max_bytes:
                raise WorkTreeError(
                    f"the pipeline directory exceeds {max_bytes:,} bytes (ODIN_KUBE_WORK_MAX_BYTES): files reach pods "
                    "through ConfigMaps; keep datasets and weights on a volume (`mounts`, ${ROOT_PATH})",
                    "WorkTreeTooLarge",
                )
            files.append((relative, 0o555 if executable else 0o444, data))
    if skipped:
        log.warning("pipeline directory %s: symlinks leaving it were not copied: %s", root, ", ".join(skipped))
    chunks: list[WorkChunk] = []
    current: list[WorkFile] = []
    size = 0
    for index, (relative, mode, data) in enumerate(files):
        if current and size + len(data) > CHUNK_BYTES:
            chunks.append(WorkChunk(_chunk_name(name, len(chunks)), tuple(current)))
            current, size = [], 0
        current.append(WorkFile(_key(index, relative), relative, mode, data))
        size += len(data)
    if current or not chunks:
        chunks.append(WorkChunk(_chunk_name(name, len(chunks)), tuple(current)))
    return WorkTree(tuple(chunks), tree, total, tuple(skipped))


def _chunk_name(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index}"
