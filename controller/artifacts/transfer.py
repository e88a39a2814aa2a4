"""The transfer step of a Kubernetes pod: bring inputs in before the task, send outputs out after it.

    python -m odin.controller.artifacts.transfer download --to DIR [--manifest FILE|-] [NAME=DIGEST | NAME/=DIGEST]...
    python -m odin.controller.artifacts.transfer upload --from DIR [--only NAME]... [--write FILE]

It runs from Odin's own image with no user code involved: an init container downloads a task's inputs (and the
pipeline's work tree when it is over the ConfigMap limit: `./=<tree digest>` unpacks a tree into DIR itself), and a
wrapper uploads what the main container left in its output directory after it exits, on any cluster, with no shared
volume. The store comes from the `ODIN_ARTIFACTS_*` variables (`ArtifactSettings.pod_env`), credentials by
reference.

`NAME=DIGEST` is a file, `NAME/=DIGEST` a directory (a tree). `upload` stores each entry directly in DIR as one
artifact (a file as a blob, a directory as a tree) and prints a JSON manifest on stdout: for each artifact its name,
kind, size and digest (and a tree's file count). `download --manifest` takes that same JSON, so one task's manifest
is the next one's input list. Progress and errors go to stderr; exit status 0 on success, 1 when the store failed or
an artifact is missing or corrupt, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from odin.controller.artifacts.digest import check_digest
from odin.controller.artifacts.errors import ArtifactError, UnsafeArtifactPath
from odin.controller.artifacts.settings import ArtifactSettings, MissingCredential, open_store
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import get_tree, put_tree, safe_relpath

MANIFEST_FORMAT = "odin.artifacts/1"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One named artifact of a task: a file (a blob) or a directory (a tree)."""

    name: str
    kind: Literal["file", "dir"]
    digest: str
    size: int
    files: int = 1

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "kind": self.kind, "digest": self.digest, "size": self.size}
        if self.kind == "dir":
            row["files"] = self.files
        return row


def parse_spec(spec: str) -> tuple[str, Literal["file", "dir"], str]:
    """`NAME=DIGEST` (a file) or `NAME/=DIGEST` (a directory) as (name, kind, digest)."""
    name, sep, digest = spec.rpartition("=")
    if not sep or not name:
        raise ValueError(f"expected NAME=DIGEST or NAME/=DIGEST, got {spec!r}")
    kind: Literal["file", "dir"] = "dir" if name.endswith("/") else "file"
    name = name.rstrip("/") or "."
    if name != "." or kind == "file":
        safe_relpath(name)
    return name, kind, check_digest(digest)


def read_manifest(source: str) -> list[tuple[str, Literal["file", "dir"], str]]:
    """The (name, kind, digest) rows of an upload manifest, from a file or `-` (stdin)."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    doc = json.loads(text)
    rows: list[tuple[str, Literal["file", "dir"], str]] = []
    for row in doc["artifacts"]:
        kind: Literal["file", "dir"] = "dir" if row["kind"] == "dir" else "file"
        name = str(row["name"])
        if name != "." or kind == "file":
            safe_relpath(name)
        rows.append((name, kind, check_digest(str(row["digest"]))))
    return rows


def upload(store: ArtifactStore, source: Path, only: Sequence[str] = (), *, workers: int = 8) -> list[Artifact]:
    """Store each entry directly under `source` (or just `only`, all of which must exist) as one artifact."""
    if only:
        names = list(dict.fromkeys(only))
        missing = [n for n in names if not (source / safe_relpath(n)).exists()]
        if missing:
            raise ArtifactError(f"not written by the task: {', '.join(missing)} (expected under {source})")
    else:
        names = sorted(entry.name for entry in source.iterdir())
    artifacts: list[Artifact] = []
    for name in names:
        path = source / safe_relpath(name)
        if path.is_symlink():
            raise ArtifactError(f"{name}: symbolic links are not stored in artifacts (copy the file instead)")
        if path.is_dir():
            tree = put_tree(store, path, workers=workers)
            artifacts.append(Artifact(name, "dir", tree.digest, tree.size, len(tree.entries)))
        elif path.is_file():
            blob = store.put_file(path)
            artifacts.append(Artifact(name, "file", blob.digest, blob.size))
        else:
            raise ArtifactError(f"{name}: not a regular file or directory")
    return artifacts


def download(
    store: ArtifactStore,
    dest: Path,
    wanted: Sequence[tuple[str, Literal["file", "dir"], str]],
    *,
    workers: int = 8,
    verify: bool = True,
) -> list[Artifact]:
    """Write each (name, kind, digest) under `dest`; `.` as a directory's name unpacks it into `dest` itself."""
    dest.mkdir(parents=True, exist_ok=True)
    done: list[Artifact] = []
    for name, kind, digest in wanted:
        target = dest if name == "." else dest.joinpath(*safe_relpath(name).parts)
        if kind == "dir":
            tree = get_tree(store, digest, target, workers=workers, verify=verify)
            done.append(Artifact(name, "dir", digest, tree.size, len(tree.entries)))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            blob = store.get_file(digest, target, verify=verify)
            done.append(Artifact(name, "file", digest, blob.size))
    return done


def manifest_json(store: ArtifactStore, artifacts: Sequence[Artifact]) -> str:
    return json.dumps(
        {"format": MANIFEST_FORMAT, "store": store.kind, "artifacts": [a.to_json() for a in artifacts]}, indent=2
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m odin.controller.artifacts.transfer",
        description="Move a task's artifacts between a directory and Odin's artifact store (ODIN_ARTIFACTS_*).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="write artifacts from the store into a directory")
    down.add_argument("--to", required=True, type=Path, help="directory to write into (created)")
    down.add_argument("--manifest", help="an upload manifest (JSON file, or - for stdin) listing what to fetch")
    down.add_argument("specs", nargs="*", metavar="NAME=DIGEST", help="a file; NAME/=DIGEST for a directory")
    up = sub.add_parser("upload", help="store the entries of a directory and print a JSON manifest")
    up.add_argument("--from", dest="source", required=True, type=Path, help="the directory whose entries to store")
    up.add_argument("--only", action="append", default=[], metavar="NAME", help="store only these entries (repeat)")
    up.add_argument("--write", type=Path, help="also write the manifest to this file (e.g. /dev/termination-log)")
    for p in (down, up):
        p.add_argument("--workers", type=int, default=None, help="parallel transfers (default: settings)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = ArtifactSettings()
        data_dir = os.environ.get("ODIN_DATA_DIR")
        store = open_store(settings, Path(data_dir) if data_dir else None)
        workers = args.workers or settings.max_concurrency
        started = time.monotonic()
        if args.command == "upload":
            if not args.source.is_dir():
                parser.error(f"--from {args.source}: not a directory")
            artifacts = upload(store, args.source, args.only, workers=workers)
            text = manifest_json(store, artifacts)
            if args.write:
                args.write.write_text(text + "\n")
            print(text)
        else:
            try:
                wanted = [parse_spec(s) for s in args.specs]
                if args.manifest:
                    wanted += read_manifest(args.manifest)
            except (ValueError, KeyError, TypeError, UnsafeArtifactPath) as e:
                parser.error(str(e))
            artifacts = download(store, args.to, wanted, workers=workers, verify=settings.verify)
        total = sum(a.size for a in artifacts)
        print(
            f"odin transfer: {args.command}ed {len(artifacts)} artifact(s), {total} bytes "
            f"in {time.monotonic() - started:.2f}s ({store.kind} store)",
            file=sys.stderr,
        )
        return 0
    except ValidationError as e:
        print(f"odin transfer: the ODIN_ARTIFACTS_* settings are invalid: {e}", file=sys.stderr)
        return 2
    except (ArtifactError, MissingCredential, OSError) as e:
        message = e.message if isinstance(e, ArtifactError) else str(e)
        print(f"odin transfer: {args.command} failed: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
