"""The upload step of a Kubernetes pod: after the task's container exits, store its outputs and write its record.

    python -m odin.controller.executors.pod_outputs --record runs/<run>/<task>/<attempt> --dir /odin/outputs \
        [--artifact NAME=PATH]... [--result NAME]... [--pod-suffix -worker-0] [--exit-file FILE]

It runs in the pod's `odin-upload` container (Odin's own image, next to the task's container, sharing the emptyDir at
`--dir`). The task's container runs the user's command under a tiny `sh` wrapper that writes the command's exit code
to `<dir>/.exit` when it ends (`WRAPPER` below); this step waits for that file, and:

* exit code not 0: does nothing and exits 0 (the task's own failure is the pod's failure; nothing to record);
* exit code 0: reads the declared results and measures the declared artifacts exactly as the local executor does
  (`outputs.collect_declared`, same limits, same problems), stores each artifact in the artifact store (a file as a
  blob, a directory as a tree: content-addressed, so an unchanged model is not uploaded twice), and writes one JSON
  record under `records/<record>` in the store: `{"results", "artifacts", "problem"}`. The controller reads it back
  when the pod has succeeded and records it on the task run as the local executor would (`pod_record` below).

A declared output that is missing or invalid is written as the record's `problem` (the controller reports it as the
same PERMANENT failure as locally) and this step still exits 0; it exits 1 only when the store failed, which makes
the pod fail and the attempt be retried. `--pod-suffix` makes the step a no-op in every pod but the one whose name
ends so (`-worker-0` for a training operator's first replica: rank 0 alone uploads).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.settings import ArtifactSettings, MissingCredential, open_store
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import put_tree
from odin.controller.executors.outputs import AttemptDirs, OutputProblem, collect_declared

RECORD_FORMAT = "odin.outputs/1"
RECORD_LIMIT = 4 * 1024 * 1024
EXIT_FILE = ".exit"
ARTIFACTS_DIR = "artifacts"
RESULTS_DIR = "results"

# The task container's command: run the user's command as a child (signals forwarded, so a kill still reaches it),
# then leave its exit code where the upload step waits for it, and exit with it. While it runs, a heartbeat file is
# touched every 10 s (when the image has `sleep`): if the whole container is killed (an OOM kill of the container's
# cgroup takes the wrapper too), the heartbeat stops, and the upload step gives up instead of holding the pod forever.
WRAPPER = (
    'hb="$ODIN_EXIT_FILE.alive"; '
    'if command -v sleep >/dev/null 2>&1; then (while :; do : > "$hb"; sleep 10; done) >/dev/null 2>&1 & beat=$!; fi; '
    '"$@" & pid=$!; '
    "trap 'kill -TERM $pid 2>/dev/null' TERM INT; "
    "while :; do wait $pid; code=$?; kill -0 $pid 2>/dev/null || break; done; "
    '[ -n "$beat" ] && kill $beat 2>/dev/null; '
    'printf "%s\\n" "$code" > "$ODIN_EXIT_FILE"; exit $code'
)
HEARTBEAT_STALE = 60.0


class TaskVanished(Exception):
    """The task's container stopped beating without leaving an exit code: it was killed whole."""


def record_key(run_id: str, task: str, attempt: int) -> str:
    """Where an attempt's outputs record lives in the store (under `records/`)."""
    return f"runs/{run_id}/{task}/{attempt}/outputs.json"


def wait_for_exit(path: Path, poll: float = 0.5, stale_after: float = HEARTBEAT_STALE) -> int:
    """The task container's exit code, once its wrapper wrote it. `TaskVanished` when its heartbeat (written beside
    it) is older than `stale_after` seconds with no exit code; without a heartbeat (no `sleep` in the image), the pod's
    own lifetime bounds the wait."""
    heartbeat = path.with_name(path.name + ".alive")
    while True:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            try:
                return int(text)
            except ValueError:
                return 1
        try:
            age = time.time() - heartbeat.stat().st_mtime
        except FileNotFoundError:
            age = 0.0
        if age > stale_after:
            raise TaskVanished(
                f"the task's container stopped without an exit code (no heartbeat for {age:.0f} s): it was killed "
                "whole, e.g. out of memory"
            )
        time.sleep(poll)


def store_outputs(
    store: ArtifactStore, root: Path, artifacts: Sequence[tuple[str, str]], results: Sequence[str], *, workers: int
) -> dict[str, Any]:
    """The record of a successful attempt: what `collect_declared` finds, each artifact stored and located by URI."""
    dirs = AttemptDirs(str(root / ARTIFACTS_DIR), str(root / RESULTS_DIR))
    try:
        found = collect_declared(artifacts, results, dirs, digests=False)
    except OutputProblem as e:
        return {"format": RECORD_FORMAT, "problem": {"reason": e.reason, "message": e.message}}
    for name, record in found["artifacts"].items():
        path = Path(dirs.output_path) / record["path"]
        if record["type"] == "directory":
            tree = put_tree(store, path, workers=workers)
            record.update(digest=tree.digest, size=tree.size, files=len(tree.entries), tree=True)
        elif record["type"] == "file":
            blob = store.put_file(path)
            record.update(digest=blob.digest, size=blob.size)
        else:
            problem = (
                f"artifact `{name}` at ${{OUTPUT_PATH}}/{record['path']} is a {record['type']}, not a file or directory"
            )
            return {"format": RECORD_FORMAT, "problem": {"reason": "InvalidArtifact", "message": problem}}
        record["location"] = store.uri(record["digest"])
    return {"format": RECORD_FORMAT, "results": found["results"], "artifacts": found["artifacts"], "problem": None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m odin.controller.executors.pod_outputs", description=__doc__)
    parser.add_argument("--record", required=True, help="the record's key: runs/<run>/<task>/<attempt>/outputs.json")
    parser.add_argument("--dir", required=True, type=Path, help="the shared directory (artifacts/, results/, .exit)")
    parser.add_argument("--artifact", action="append", default=[], metavar="NAME=PATH", help="a declared artifact")
    parser.add_argument("--result", action="append", default=[], metavar="NAME", help="a declared result")
    parser.add_argument("--pod-suffix", default="", help="upload only in the pod whose name ends with this")
    parser.add_argument("--stale-after", type=float, default=HEARTBEAT_STALE, help="seconds without a heartbeat")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pod = os.environ.get("HOSTNAME") or socket.gethostname()
    if args.pod_suffix and not pod.endswith(args.pod_suffix):
        print(f"odin upload: pod {pod} is not the replica that uploads ({args.pod_suffix})", file=sys.stderr)
        return 0
    try:
        code = wait_for_exit(args.dir / EXIT_FILE, stale_after=args.stale_after)
    except TaskVanished as e:
        print(f"odin upload: {e}; nothing to upload", file=sys.stderr)
        return 1
    if code != 0:
        print(f"odin upload: the task exited {code}; nothing to upload", file=sys.stderr)
        return 0
    artifacts = [tuple(a.split("=", 1)) for a in args.artifact]
    if any(len(a) != 2 for a in artifacts):
        print("odin upload: --artifact takes NAME=PATH", file=sys.stderr)
        return 2
    try:
        settings = ArtifactSettings()
        store = open_store(settings)
        started = time.monotonic()
        record = store_outputs(
            store, args.dir, [(a[0], a[1]) for a in artifacts], args.result, workers=settings.max_concurrency
        )
        store.put_record(args.record, json.dumps(record).encode())
    except ValidationError as e:
        print(f"odin upload: the ODIN_ARTIFACTS_* settings are invalid: {e}", file=sys.stderr)
        return 1
    except (ArtifactError, MissingCredential, OSError, ValueError) as e:
        print(f"odin upload: failed: {getattr(e, 'message', None) or e}", file=sys.stderr)
        return 1
    stored = record.get("artifacts") or {}
    print(
        f"odin upload: {len(stored)} artifact(s), {sum(a['size'] for a in stored.values())} bytes in "
        f"{time.monotonic() - started:.2f}s"
        + (f"; problem: {record['problem']['message']}" if record["problem"] else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
