"""Task caching (issue 11 item 6): a cached task's key, and whether an earlier run's outputs may stand in for it.

A task with `cache: true` is not run when an earlier task run with the same *cache key* succeeded and the outputs it
recorded still exist: its results and artifacts are reused, and the task is recorded as succeeded with reason
`Cached` ("cached from run X (commit Y)"), the way a rerun records a task it reuses. The decision is the engine's,
taken before the task is handed to any executor, so local and Kubernetes runs cache alike and no executor ever sees a
cached task.

The key is the sha256 of a canonical JSON document (sorted keys, no whitespace) of everything that determines what
the task produces, as far as Odin can know it:

- the repository and the pipeline directory's git **tree id**: every file the task can read from `${WORK_PATH}`, and
  `main.yml` itself (so any edit of the pipeline's directory, even of an unrelated task, is a miss; a commit that
  changes nothing in the directory is a hit);
- the pipeline and task names, the **image** (its digest when the reference pins one, `name@sha256:...`; else the
  reference as written: a moving tag such as `:latest` is taken at its word);
- the **command, args and env after substitution** of parameters, matrix values and references, with the values that
  differ on every run left as their `${NAME}` (`RUN_PATH`, `PIPE_ID`, `TASK_ID`, `OUTPUT_PATH`, `RESULTS_PATH`,
  `COMMIT_SHA`, `WORK_PATH`, `ROOT_PATH`): a task's output must not depend on where it writes. An artifact reference
  is hashed by the artifact's digest, not its location;
- the **inputs**: every reference's value (results by value, artifacts by digest), also those only read by `when`;
- the **outputs it declares** (names and paths), so a task declaring another artifact never reuses a run without it;
- **`num_gpus`, `num_workers`, `resource_type` and `elastic`**: they change how a job is split and thus its numerics
  (data-parallel batch sizes, reduction order). CPU and memory requests, node selectors, timeouts and retries decide
  whether and where a task runs, not what it computes, and are left out (they are still in the tree id, as part of
  `main.yml`, so editing them is a miss all the same). The hardware a task lands on is not known before it starts,
  and is not in the key.

Not in the key, and documented as the user's side of the contract (docs/artifacts.md#caching): secrets' contents,
mounted volumes, the network, the clock: a task whose output depends on them should not be cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odin.controller.artifacts.store import ArtifactStore
from odin.controller.engine.adoption import ActiveRun, resolve, task_variables
from odin.controller.store.cache_queries import CachedTask
from odin.controller.vocabulary import CACHED
from odin.schema import substitute
from odin.schema.model import TaskSpec

log = logging.getLogger(__name__)

KEY_VERSION = 1
"""Part of the key: bumped when what the key covers changes, so old keys stop matching instead of meaning less."""

PER_RUN = (
    "RUN_PATH",
    "PIPE_ID",
    "TASK_ID",
    "OUTPUT_PATH",
    "RESULTS_PATH",
    "COMMIT_SHA",
    "WORK_PATH",
    "ROOT_PATH",
    "DATA_PATH",
    "TASK_PATH",
    "TASK_IDS",
)
"""Variables whose values differ between runs of the same inputs: hashed as their own `${NAME}`."""

OutputsPresent = Callable[[Mapping[str, Mapping[str, Any]]], bool]
"""Whether every artifact record of a cached task run still exists where dependents will read it."""


def image_identity(image: str | None) -> str | None:
    """The pinned digest of `name@sha256:...`, else the reference as written."""
    if image and "@" in image:
        digest = image.rsplit("@", 1)[1]
        if digest.startswith("sha256:"):
            return digest
    return image


def key_document(run: ActiveRun, spec: TaskSpec) -> dict[str, Any]:
    """What the key hashes, as plain JSON values (tests and `odinctl` debugging read it). Raises what resolving the
    task's references raises (`Unresolved`), or `UnknownVariable` for a variable the launch would not know either."""
    inputs = resolve(run, spec, artifact_field="digest")
    variables = {**task_variables(run, spec), **{name: f"${{{name}}}" for name in PER_RUN}}
    variables.update({name: _text(value) for name, value in inputs.items()})
    return {
        "v": KEY_VERSION,
        "repository": run.ctx.repo_url,
        "pipeline": run.ctx.pipeline,
        "tree": run.ctx.work_tree,
        "task": spec.name,
        "image": image_identity(spec.image),
        "command": [substitute(c, variables) for c in spec.command],
        "args": [substitute(a, variables) for a in spec.args],
        "env": {k: substitute(v, variables) for k, v in sorted(spec.env.items())},
        "inputs": inputs,
        "outputs": {
            "artifacts": sorted([a.name, a.path] for a in spec.artifacts),
            "results": sorted(r.name for r in spec.results),
        },
        "resources": {
            "num_gpus": spec.num_gpus,
            "num_workers": spec.num_workers,
            "resource_type": spec.resource_type,
            "elastic": spec.elastic,
        },
    }


def cache_key(run: ActiveRun, spec: TaskSpec) -> str:
    """The sha256 (hex) of `key_document`'s canonical JSON."""
    canonical = json.dumps(key_document(run, spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _text(value: Any) -> str:
    """A resolved input as substituted into the key's command: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def store_outputs_present(store: Callable[[], ArtifactStore]) -> OutputsPresent:
    """The check for a controller with an artifact store: records at a local path are checked on disk
    (`local_outputs_present`), records at a store URI (`s3://...`, what Kubernetes pods upload) by asking the store
    for the blob (a tree by its manifest). A record retention marked `gone`, or a store that cannot answer, is a
    miss: the task runs again rather than hand its dependents something that may not be there."""

    def present(artifacts: Mapping[str, Mapping[str, Any]]) -> bool:
        local = {name: r for name, r in artifacts.items() if _at_local_path(r)}
        if not local_outputs_present(local):
            return False
        for record in artifacts.values():
            if record.get("gone"):
                return False
            if _at_local_path(record):
                continue
            try:
                if not store().exists(str(record["digest"])):
                    return False
            except Exception as e:  # a store outage or a malformed record: a miss, never an engine failure
                log.warning("cache: cannot check artifact %s in the store (%s); treating the cache entry as a miss",
                            record.get("digest"), e)  # fmt: skip
                return False
        return True

    return present


def _at_local_path(record: Mapping[str, Any]) -> bool:
    location = record.get("location")
    return isinstance(location, str) and Path(location).is_absolute()


def local_outputs_present(artifacts: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every artifact is still at its recorded local `location`, of its recorded type (and size, for a file).

    A cheap check (one `lstat` each, no hashing): what retention or a cleanup deletes is a whole file or directory,
    and a file rewritten in place under an unchanged name and size is outside what Odin promises to notice. A record
    without a local location (a store URI) counts as missing until a store-backed check is plugged in."""
    for record in artifacts.values():
        location = record.get("location")
        if record.get("gone") or not isinstance(location, str) or not Path(location).is_absolute():
            return False
        try:
            info = os.lstat(location)
        except OSError:
            return False
        kind = record.get("type")
        if kind == "file" and (not stat.S_ISREG(info.st_mode) or info.st_size != record.get("size")):
            return False
        if kind == "directory" and not stat.S_ISDIR(info.st_mode):
            return False
        if kind == "link" and not stat.S_ISLNK(info.st_mode):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Hit:
    """The task run whose outputs a cached task reuses, and the message its own row records."""

    source: CachedTask
    message: str


def choose(candidates: Iterable[CachedTask], present: OutputsPresent) -> Hit | None:
    """The newest candidate whose artifacts all still exist; None (a miss) when every one lost some.

    A hit on a task that was itself cached repeats its message, so "cached from" always names the run that actually
    ran the task, however long the chain."""
    for candidate in candidates:
        if not present(candidate.artifacts or {}):
            log.info("cache: run %s recorded the key, but its artifacts are gone; not reused", candidate.run_id)
            continue
        if candidate.reason == CACHED and candidate.message:
            return Hit(candidate, candidate.message)
        commit = (candidate.commit_sha or "")[:12] or "no commit"
        return Hit(candidate, f"cached from run {candidate.run_id} (commit {commit})")
    return None
