"""Creates in flight, written down before they are sent: what makes a restart re-submit exactly what was lost.

The engine records an attempt as STARTING before the executor creates its object; a controller killed in between
leaves an attempt the store believes in and the cluster may not have. Before each create the executor writes the
complete manifest to `<data>/kube/pending/<run>/<task>.<attempt>.json` and removes it once the apiserver answered
(201, or 409 and adopted). On restart, an attempt with no object but a journal entry is created again from it -- with
the same deterministic name, so even a create that did reach the apiserver only meets 409 -- and one with neither was
never submitted, and is reported lost (INFRA) for the engine to retry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from odin.controller.executors.kubernetes.api import Kind


class Journal:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "kube" / "pending"

    def _path(self, run_id: str, task: str, attempt: int) -> Path:
        return self.root / run_id / f"{task}.{attempt}.json"

    def write(self, run_id: str, task: str, attempt: int, namespace: str, kind: Kind, manifest: dict[str, Any]) -> None:
        path = self._path(run_id, task, attempt)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "namespace": namespace,
            "kind": [kind.group, kind.version, kind.plural, kind.kind],
            "manifest": manifest,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, separators=(",", ":")))
        tmp.replace(path)  # atomic: a reader never sees half a manifest

    def read(self, run_id: str, task: str, attempt: int) -> tuple[str, Kind, dict[str, Any]] | None:
        try:
            record = json.loads(self._path(run_id, task, attempt).read_text())
        except (OSError, ValueError):
            return None
        group, version, plural, kind = record["kind"]
        return str(record["namespace"]), Kind(group, version, plural, kind), dict(record["manifest"])

    def remove(self, run_id: str, task: str, attempt: int) -> None:
        self._path(run_id, task, attempt).unlink(missing_ok=True)
