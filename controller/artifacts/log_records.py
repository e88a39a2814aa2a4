"""Where copies of task logs live in the artifact store: the records `logs/<run>/<file>`.

Two parts of Odin name them and must agree: the Kubernetes executor writes and reads them (`executors/kubernetes/
logs.py`: a replica's data directory is not shared, so the store's copy is what every replica serves), and retention
deletes them (`history_retention.py`, `ODIN_LOGS_KEEP_DAYS`). One folder per run is what lets retention find the runs
with copies by listing one level of the store, and delete a run's copies by prefix without touching anything else.
"""

from __future__ import annotations

FOLDER = "logs"
"""The records folder holding one folder per run."""


def record_key(run_id: str, file_name: str) -> str:
    """The record of the log `file_name` (`<task>.<attempt>[.<replica>].log`) of run `run_id`."""
    return f"{FOLDER}/{run_id}/{file_name}"


def run_folder(run_id: str) -> str:
    """The records folder holding every log copy of run `run_id` (what `delete_records` takes)."""
    return f"{FOLDER}/{run_id}"
