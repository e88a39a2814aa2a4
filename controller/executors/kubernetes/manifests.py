"""The pod template every handler shares: one task's container, volumes, scheduling and provenance.

Handlers differ in what wraps the pod (a Job, a PyTorchJob's replica specs, a TrainJob's overrides); what runs inside
is the same everywhere, so it is built here once, from the `TaskLaunch` the engine resolved (command, args and env are
already substituted).

Decisions worth knowing:

* Kubernetes' own `$(VAR)` expansion in command, args and env is disabled by escaping `$(` as `$$(`: Odin has
  already substituted `${...}`, and what remains must reach the program exactly as on the local executor.
* `terminationMessagePolicy: FallbackToLogsOnError`: a failed container's last log lines become its termination
  message, so a task's failure message says what went wrong without opening the log.
* Volumes get Odin's own names (`odin-work`, `odin-data`, `pvc-0`, `secret-0`, `config-0`), never the user's, so a
  mount called `odin-work` cannot collide with ours.
* GPU tasks tolerate the usual `nvidia.com/gpu` taint (setting `ODIN_KUBE_GPU_TOLERATIONS`) on top of their own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odin.controller.executors.kubernetes import names, transfer
from odin.controller.executors.kubernetes.api import Json
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.workdir import MOUNT_PATH as WORK_MOUNT
from odin.controller.executors.kubernetes.workdir import WorkTree
from odin.controller.vocabulary import TaskLaunch
from odin.schema.model import Resources, TaskSpec

DATA_MOUNT = "/odin/data"
RUN_MOUNT = "/odin/run"
ROOT_MOUNT = "/odin/root"
GPU_RESOURCE = "nvidia.com/gpu"

# security_context keys (Odin stores snake_case) -> (Kubernetes name, pod level?)
_POD_SECURITY = {
    "run_as_user": "runAsUser",
    "run_as_group": "runAsGroup",
    "run_as_non_root": "runAsNonRoot",
    "fs_group": "fsGroup",
    "supplemental_groups": "supplementalGroups",
    "seccomp_profile": "seccompProfile",
}
_CONTAINER_SECURITY = {
    "read_only_root_filesystem": "readOnlyRootFilesystem",
    "privileged": "privileged",
    "allow_privilege_escalation": "allowPrivilegeEscalation",
    "capabilities": "capabilities",
}


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Everything a handler needs to build one attempt's object."""

    launch: TaskLaunch
    name: str
    namespace: str
    options: KubeOptions
    work: WorkTree | None = None
    work_digest: str | None = None  # the pipeline directory as a stored tree, when over the ConfigMap limit
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> TaskSpec:
        return self.launch.spec

    @property
    def labels(self) -> dict[str, str]:
        return {**provenance_labels(self.launch, self.options.instance), **self.extra_labels}

    @property
    def annotations(self) -> dict[str, str]:
        return provenance_annotations(self.launch, self.options)

    def metadata(self, *, queue: bool = True) -> Json:
        """Metadata of the top-level object: provenance, and the Kueue queue when the task names one."""
        labels = self.labels
        if queue and self.spec.queue:
            labels[names.LABEL_QUEUE] = self.spec.queue
        return {"name": self.name, "namespace": self.namespace, "labels": labels, "annotations": self.annotations}


def run_labels(run_id: str, pipeline: str, commit_sha: str | None, instance: str) -> dict[str, str]:
    labels = {
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.LABEL_INSTANCE: names.label_value(instance),
        names.LABEL_RUN: names.label_value(run_id),
        names.LABEL_PIPELINE: names.label_value(pipeline),
    }
    if commit_sha:
        labels[names.LABEL_COMMIT] = commit_sha
    return labels


def provenance_labels(launch: TaskLaunch, instance: str) -> dict[str, str]:
    run = launch.run
    return {
        **run_labels(run.run_id, run.pipeline, run.commit_sha, instance),
        names.LABEL_TASK: names.label_value(launch.task),
        names.LABEL_ATTEMPT: str(launch.attempt),
    }


def provenance_annotations(launch: TaskLaunch, options: KubeOptions) -> dict[str, str]:
    run = launch.run
    annotations = {names.ANNOTATION_TRIGGER: run.trigger, names.ANNOTATION_PIPELINE: run.pipeline}
    repo = run.repo_url or options.repo_url
    if repo:
        annotations[names.ANNOTATION_REPO] = repo
    if run.work_tree:
        annotations[names.ANNOTATION_TREE] = run.work_tree
    return annotations


def escape(value: str) -> str:
    """Disable Kubernetes' `$(VAR)` expansion: the value reaches the container as written."""
    return value.replace("$(", "$$(")


def _quantities(resources: Resources | None) -> tuple[str | None, str | None]:
    if resources is None:
        return None, None
    return resources.requests, resources.limits


def container_resources(spec: TaskSpec, *, gpus: bool = True) -> Json:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource, value in (("cpu", spec.cpu), ("memory", spec.memory)):
        req, lim = _quantities(value)
        if req is not None:
            requests[resource] = str(req)
        if lim is not None:
            limits[resource] = str(lim)
    if gpus and spec.num_gpus > 0:
        limits[GPU_RESOURCE] = str(spec.num_gpus)  # extended resources: requests default to limits
    out: Json = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _security(spec: TaskSpec, table: Mapping[str, str]) -> Json:
    given = spec.security_context or {}
    out: Json = {}
    for key, k8s_key in table.items():
        if key in given and given[key] is not None:
            value = copy.deepcopy(given[key])
            if key == "seccomp_profile" and isinstance(value, dict) and "localhost_profile" in value:
                value["localhostProfile"] = value.pop("localhost_profile")
            out[k8s_key] = value
    return out


def env_list(launch: TaskLaunch) -> list[Json]:
    return [{"name": k, "value": escape(v)} for k, v in launch.env.items()]


def volumes_and_mounts(ctx: BuildContext) -> tuple[list[Json], list[Json]]:
    """Volumes of the pod and mounts of the task's container: WORK_PATH, RUN_PATH/ROOT_PATH, then the task's own."""
    spec, options = ctx.spec, ctx.options
    volumes: list[Json] = []
    mounts: list[Json] = []
    if ctx.work is not None:
        volumes.append(ctx.work.volume("odin-work"))
        mounts.append({"name": "odin-work", "mountPath": WORK_MOUNT, "readOnly": True})
    if options.data_claim:
        volumes.append({"name": "odin-data", "persistentVolumeClaim": {"claimName": options.data_claim}})
        mounts.append({"name": "odin-data", "mountPath": DATA_MOUNT})
        # A second mount of the run's own directory: the kubelet creates a missing subPath, so ${RUN_PATH} exists
        # before the first task writes to it.
        run_dir = f"runs/{ctx.launch.run.storage_id}"
        mounts.append({"name": "odin-data", "mountPath": f"{DATA_MOUNT}/{run_dir}", "subPath": run_dir})
        if spec.uses_variable("TASK_PATH"):  # the original Odin's per-task directory, made the same way
            task_dir = f"{run_dir}/{spec.name}"
            mounts.append({"name": "odin-data", "mountPath": f"{DATA_MOUNT}/{task_dir}", "subPath": task_dir})
    else:
        volumes.append({"name": "odin-run", "emptyDir": {}})
        volumes.append({"name": "odin-root", "emptyDir": {}})
        mounts.append({"name": "odin-run", "mountPath": RUN_MOUNT})
        mounts.append({"name": "odin-root", "mountPath": ROOT_MOUNT})
        if spec.uses_variable("TASK_PATH"):
            mounts.append({"name": "odin-run", "mountPath": f"{RUN_MOUNT}/{spec.name}", "subPath": spec.name})
    for i, m in enumerate(spec.mounts):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": m.claim, "readOnly": m.read_only}})
        mount: Json = {"name": f"pvc-{i}", "mountPath": m.path, "readOnly": m.read_only}
        if m.sub_path:
            mount["subPath"] = m.sub_path
        mounts.append(mount)
    for i, e in enumerate(spec.ephem_volumes):  # the original Odin's `ephem_volumes`: emptyDir, as long as the pod
        empty_dir: Json = {}
        if e.medium:
            empty_dir["medium"] = e.medium
        if e.size_limit:
            empty_dir["sizeLimit"] = e.size_limit
        volumes.append({"name": f"ephem-{i}", "emptyDir": empty_dir})
        mounts.extend({"name": f"ephem-{i}", "mountPath": path} for path in e.paths)
    # A fork's pull request never mounts a secret (controller/pulls.py refuses such a run before it starts; this is
    # the second lock).
    for i, s in enumerate(() if ctx.launch.run.secrets_withheld else spec.secrets):
        secret: Json = {"secretName": s.name}
        if s.mode is not None:
            secret["defaultMode"] = s.mode
        volumes.append({"name": f"secret-{i}", "secret": secret})
        mount = {"name": f"secret-{i}", "mountPath": s.path, "readOnly": True}
        if s.sub_path:
            mount["subPath"] = s.sub_path
        mounts.append(mount)
    for i, c in enumerate(spec.config_maps):
        volumes.append({"name": f"config-{i}", "configMap": {"name": c.name}})
        mount = {"name": f"config-{i}", "mountPath": c.path, "readOnly": True}
        if c.sub_path:
            mount["subPath"] = c.sub_path
        mounts.append(mount)
    return volumes, mounts


def container(
    ctx: BuildContext,
    name: str,
    *,
    command: bool = True,
    gpus: bool = True,
    mounts: list[Json] | None = None,
) -> Json:
    """The task's container. `command=False` leaves the image's entrypoint (MPI workers); `gpus=False` asks for no
    GPU (an MPI launcher)."""
    launch, spec = ctx.launch, ctx.spec
    out: Json = {"name": name, "image": spec.image or ""}
    if command:
        if launch.command:
            out["command"] = [escape(c) for c in launch.command]
        if launch.args:
            out["args"] = [escape(a) for a in launch.args]
    env = env_list(launch)
    if env:
        out["env"] = env
    resources = container_resources(spec, gpus=gpus)
    if resources:
        out["resources"] = resources
    if mounts:
        out["volumeMounts"] = mounts
    if spec.pull_policy:
        out["imagePullPolicy"] = spec.pull_policy
    security = _security(spec, _CONTAINER_SECURITY)
    if security:
        out["securityContext"] = security
    if ctx.work is not None or ctx.work_digest is not None:
        out["workingDir"] = WORK_MOUNT
    out["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return out


def tolerations(spec: TaskSpec, options: KubeOptions, *, gpus: bool = True) -> list[Json]:
    out = [dict(t) for t in spec.tolerations]
    if gpus and spec.num_gpus > 0:
        for t in options.gpu_tolerations:
            if dict(t) not in out:
                out.append(dict(t))
    return out


def pod_spec(
    ctx: BuildContext,
    container_name: str = "main",
    *,
    restart_policy: str = "Never",
    command: bool = True,
    gpus: bool = True,
    upload: str | None = "",
) -> Json:
    """A complete PodSpec running the task. With an artifact store, `upload` says which pod stores the outputs
    (`transfer.apply`): "" this one, None none, a suffix the replica whose pod name ends with it."""
    spec, options = ctx.spec, ctx.options
    volumes, mounts = volumes_and_mounts(ctx)
    out: Json = {
        "restartPolicy": restart_policy,
        "containers": [container(ctx, container_name, command=command, gpus=gpus, mounts=mounts)],
        "volumes": volumes,
    }
    if options.scheduler_name:
        out["schedulerName"] = options.scheduler_name
    withheld = ctx.launch.run.secrets_withheld  # a fork's pull request: nothing the server holds or names
    account = (None if withheld else spec.service_account) or options.service_account
    if account:
        out["serviceAccountName"] = account
    if withheld:
        out["automountServiceAccountToken"] = False
    pull_secrets = [] if withheld else list(dict.fromkeys([*spec.image_pull_secrets, *options.image_pull_secrets]))
    if pull_secrets:
        out["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    tol = tolerations(spec, options, gpus=gpus)
    if tol:
        out["tolerations"] = tol
    security = _security(spec, _POD_SECURITY)
    if security:
        out["securityContext"] = security
    if options.artifacts is not None:
        transfer.apply(
            out, ctx.launch, options.artifacts, image=options.odin_image,
            secret=None if withheld else options.artifacts_secret,
            work_digest=ctx.work_digest, work_mount=WORK_MOUNT, upload=upload if command else None, wrap=command,
        )  # fmt: skip
    return out


def pod_template(ctx: BuildContext, container_name: str = "main", **kwargs: Any) -> Json:
    """A pod template carrying the attempt's provenance labels (so the executor's pod watch sees its pods)."""
    return {
        "metadata": {"labels": ctx.labels, "annotations": ctx.annotations},
        "spec": pod_spec(ctx, container_name, **kwargs),
    }
