"""Artifacts in and out of task pods, through the S3-compatible artifact store, with no shared volume.

With `ODIN_ARTIFACTS_BACKEND=s3`, a pod that needs it gets, besides the task's container:

* init containers from Odin's own image (`ODIN_KUBE_ODIN_IMAGE`) running `python -m odin.controller.artifacts.transfer
  download`: `odin-work` unpacks the pipeline directory (a tree uploaded once per git tree id, see `submit.py`) into
  the emptyDir at `/odin/work` when it is over the ConfigMap limit, and `odin-inputs` downloads the artifacts the task
  references (`${tasks.T.artifacts.A}`) to `/odin/inputs/<T>/<path>`, which is what the reference becomes in the pod.
  Every download is verified against its digest.
* an emptyDir at `/odin/outputs` holding `${OUTPUT_PATH}` (`artifacts/`) and `${RESULTS_PATH}` (`results/`);
* the task's command wrapped by a few lines of `sh` (`pod_outputs.WRAPPER`) that write its exit code to
  `/odin/outputs/.exit`, and a second regular container, `odin-upload`, running `python -m
  odin.controller.executors.pod_outputs`: it waits for that file, stores the declared outputs and writes the attempt's
  record to the store (`records/runs/<run>/<task>/<attempt>/outputs.json`), which the controller reads once the pod
  succeeded (`read_record`) and records on the task run exactly as the local executor does.

Why a wrapper and a regular container rather than a sidecar or a wrapper alone: the user's image has no Odin and no
boto3, so the upload cannot run in the task's container; a native sidecar (an init container with `restartPolicy:
Always`) is *terminated* when the main container ends, so a long upload would be cut off after the grace period, and
the pod could succeed before its outputs are stored. A regular container holds the pod open until the upload is done,
so "the pod succeeded" means "the outputs are in the store", on Pods, Jobs and the training operators' replicas
alike (only the first replica uploads: PyTorchJob's Master, MPIJob's Launcher, otherwise the pod named `...-worker-0`).
The wrapper only needs `/bin/sh` in the task's image.

Credentials never appear in a manifest: the containers get the store's settings without credential values
(`ArtifactSettings.pod_env`) and, with `ODIN_KUBE_ARTIFACTS_SECRET`, references `env:NAME` to variables filled from
that Secret (`secretKeyRef`); without it, boto3's own chain (IRSA, workload identity) applies in the pod.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from odin.controller.artifacts.digest import is_digest
from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.settings import ArtifactSettings, MissingCredential, open_store
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import put_tree, work_tree_record
from odin.controller.executors import pod_outputs
from odin.controller.executors.kubernetes.api import Json
from odin.controller.executors.outputs import AttemptDirs
from odin.controller.vocabulary import TaskLaunch

INPUTS_MOUNT = "/odin/inputs"
OUTPUTS_MOUNT = "/odin/outputs"
WORK_FETCH = "odin-work"
INPUTS_FETCH = "odin-inputs"
UPLOAD = "odin-upload"
_SECRET_KEYS = {"ACCESS_KEY_ID": "access_key_id", "SECRET_ACCESS_KEY": "secret_access_key"}
_SMALL = {"requests": {"cpu": "100m", "memory": "128Mi"}}


class OutputsLost(Exception):
    """The pod succeeded but its outputs record is not in the store (or not readable)."""


def output_dirs() -> AttemptDirs:
    """`${OUTPUT_PATH}` and `${RESULTS_PATH}` inside a pod: the shared emptyDir the upload step reads."""
    return AttemptDirs(f"{OUTPUTS_MOUNT}/{pod_outputs.ARTIFACTS_DIR}", f"{OUTPUTS_MOUNT}/{pod_outputs.RESULTS_DIR}")


def input_path(task: str, record: Mapping[str, Any]) -> str:
    """Where the `odin-inputs` init container puts artifact `record` of `task`."""
    return f"{INPUTS_MOUNT}/{task}/{record.get('path') or record.get('name')}"


def declares_outputs(launch: TaskLaunch) -> bool:
    return bool(launch.spec.artifacts or launch.spec.results)


def store_env(settings: ArtifactSettings, secret: str | None) -> list[Json]:
    """The env of Odin's containers: the store's settings, and credentials only as references to a Secret."""
    env = {k: v for k, v in settings.pod_env().items() if not k.endswith(tuple(_SECRET_KEYS))}
    out: list[Json] = [{"name": k, "value": v} for k, v in env.items()]
    if secret:
        for suffix, key in _SECRET_KEYS.items():
            variable = f"ODIN_S3_{suffix}"
            out.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
            out.append({"name": f"ODIN_ARTIFACTS_{suffix}", "value": f"env:{variable}"})
    return out


def _odin_container(name: str, image: str, args: list[str], env: list[Json], mounts: list[Json]) -> Json:
    return {
        "name": name,
        "image": image,
        "command": ["python", "-m", *args],
        "env": env,
        "volumeMounts": mounts,
        "resources": _SMALL,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def apply(
    pod: Json,
    launch: TaskLaunch,
    settings: ArtifactSettings,
    *,
    image: str,
    secret: str | None,
    work_digest: str | None,
    work_mount: str,
    upload: str | None,
    wrap: bool,
) -> None:
    """Add the transfer steps to `pod` (a PodSpec whose first container is the task's). `upload`: None for no upload
    container, "" to upload from this pod, a suffix to upload only from the pod whose name ends with it. `wrap`: the
    task's command can be wrapped (False for replicas that keep the image's entrypoint)."""
    env = store_env(settings, secret)
    volumes: list[Json] = pod.setdefault("volumes", [])
    main: Json = pod["containers"][0]
    mounts: list[Json] = main.setdefault("volumeMounts", [])
    init: list[Json] = pod.setdefault("initContainers", [])
    if work_digest is not None:
        volumes.append({"name": "odin-work", "emptyDir": {}})
        mounts.append({"name": "odin-work", "mountPath": work_mount, "readOnly": True})
        fetch = ["odin.controller.artifacts.transfer", "download", "--to", work_mount, f"./={work_digest}"]
        init.append(_odin_container(WORK_FETCH, image, fetch, env, [{"name": "odin-work", "mountPath": work_mount}]))
    if launch.inputs:
        volumes.append({"name": "odin-inputs", "emptyDir": {}})
        mounts.append({"name": "odin-inputs", "mountPath": INPUTS_MOUNT, "readOnly": True})
        specs = [f"{i.task}/{i.path}{'/' if i.tree else ''}={i.digest}" for i in launch.inputs]
        fetch = ["odin.controller.artifacts.transfer", "download", "--to", INPUTS_MOUNT, *specs]
        init.append(
            _odin_container(INPUTS_FETCH, image, fetch, env, [{"name": "odin-inputs", "mountPath": INPUTS_MOUNT}])
        )
    if not declares_outputs(launch):
        return
    volumes.append({"name": "odin-outputs", "emptyDir": {}})
    mounts.append({"name": "odin-outputs", "mountPath": OUTPUTS_MOUNT})
    # The directories exist before the task starts (an emptyDir is empty): the first step of the wrapper.
    exit_file = f"{OUTPUTS_MOUNT}/{pod_outputs.EXIT_FILE}"
    if wrap:
        dirs = output_dirs()
        prepare = f'mkdir -p "{dirs.output_path}" "{dirs.results_path}" || exit 1; '
        main["command"] = ["/bin/sh", "-c", prepare + pod_outputs.WRAPPER, "odin-task", *main.get("command", [])]
        main["command"] += main.pop("args", [])
        main.setdefault("env", []).append({"name": "ODIN_EXIT_FILE", "value": exit_file})
    if upload is None:
        return
    spec = launch.spec
    args = [
        "odin.controller.executors.pod_outputs",
        "--record", pod_outputs.record_key(launch.run.run_id, launch.task, launch.attempt),
        "--dir", OUTPUTS_MOUNT,
        *[f"--artifact={a.name}={a.path}" for a in spec.artifacts],
        *[f"--result={r.name}" for r in spec.results],
    ]  # fmt: skip
    if upload:
        args.append(f"--pod-suffix={upload}")
    pod["containers"].append(
        _odin_container(UPLOAD, image, args, env, [{"name": "odin-outputs", "mountPath": OUTPUTS_MOUNT}])
    )


def read_record(store: ArtifactStore, run_id: str, task: str, attempt: int) -> dict[str, Any]:
    """The outputs record the pod's upload step wrote; `OutputsLost` when it is missing or unreadable."""
    key = pod_outputs.record_key(run_id, task, attempt)
    try:
        data = store.get_record(key, pod_outputs.RECORD_LIMIT)
    except (ArtifactError, MissingCredential) as e:
        raise OutputsLost(f"cannot read the outputs record {key}: {getattr(e, 'message', None) or e}") from e
    if data is None:
        raise OutputsLost(f"the pod succeeded but wrote no outputs record ({key} is not in the artifact store)")
    try:
        record = json.loads(data)
    except ValueError as e:
        raise OutputsLost(f"the outputs record {key} is not JSON: {e}") from e
    if not isinstance(record, dict) or record.get("format") != pod_outputs.RECORD_FORMAT:
        raise OutputsLost(f"the outputs record {key} is not an {pod_outputs.RECORD_FORMAT} record")
    return record


class LazyStore:
    """The controller's handle on the store the pods write to, opened on first use (boto3 loads only then) and
    opened again after a failure (a credential file rotated, a reference that was not set yet)."""

    def __init__(self, settings: ArtifactSettings) -> None:
        self.settings = settings
        self._store: ArtifactStore | None = None
        self._lock = threading.Lock()

    def get(self) -> ArtifactStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store


class WorkTreeUploadFailed(Exception):
    """The pipeline directory could not be stored (the store is down or refuses): an INFRA problem, retried."""


class WorkTrees:
    """Pipeline directories too large for ConfigMaps, stored as trees once per git tree id.

    The tree's digest is remembered in memory and in the store (`records/trees/<oid>`), so neither a second run of
    the same directory nor a restarted controller hashes and uploads it again; content addressing makes a repeated
    upload harmless anyway (files already stored are only looked up)."""

    def __init__(self, store: LazyStore) -> None:
        self.store = store
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def digest(self, root: Path, tree_oid: str | None) -> str:
        with self._lock:
            if tree_oid is not None and tree_oid in self._known:
                return self._known[tree_oid]
            try:
                store = self.store.get()
                digest = self._remembered(store, tree_oid)
                if digest is None:
                    digest = put_tree(store, root, workers=self.store.settings.max_concurrency).digest
                    if tree_oid is not None:
                        store.put_record(work_tree_record(tree_oid), digest.encode())
            except (ArtifactError, MissingCredential, OSError) as e:
                raise WorkTreeUploadFailed(
                    f"cannot store the pipeline directory in the artifact store: {getattr(e, 'message', None) or e}"
                ) from e
            if tree_oid is not None:
                self._known[tree_oid] = digest
            return digest

    @staticmethod
    def _remembered(store: ArtifactStore, tree_oid: str | None) -> str | None:
        if tree_oid is None:
            return None
        data = store.get_record(work_tree_record(tree_oid), 200)
        if data is None:
            # Before retention learned to keep pipeline directories, the record was `trees/<oid>` (a file, which
            # retention cannot list): such a directory is stored again, under the listed key, and so kept.
            return None
        digest = data.decode(errors="replace").strip()
        return digest if is_digest(digest) and store.exists(digest) else None
