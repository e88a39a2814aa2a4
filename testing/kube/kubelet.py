"""A fake kubelet (plus scheduler, node and workload-controller stand-ins) that drives pods and jobs through their
lives **only through the Kubernetes API**.

Why through the API: the same test must run against the in-repo fake and, with ``ODIN_TEST_KUBECONFIG``, against a
real cluster.  So every helper here writes exactly what the real component would write, with the official client:
``pods/status`` patches (strategic merge, so ``conditions`` merge by ``type`` as on a real apiserver), ``pods/binding``,
``jobs/status``, custom-object ``/status`` merge patches, and core/v1 ``events``.  The statuses mirror what a real
kubelet reports (container ``state``/``lastState``, ``restartCount``, ``imageID``, ``containerID``, the pod conditions
``PodScheduled``/``PodReadyToStartContainers``/``Initialized``/``ContainersReady``/``Ready``/``DisruptionTarget``,
``reason``s such as ``OOMKilled``, ``ImagePullBackOff``, ``Unschedulable``, ``Evicted``).

On a real cluster, pods created by the tests must use a ``schedulerName`` no scheduler serves (``kube.scheduler_name``
from the fixture), so no real scheduler or kubelet touches them and status patches stick.  There the kubelet:

* does not bind pods to nodes (``binds_pods`` is False): binding to a real node would make its real kubelet run the
  pod, and binding to a made-up node gets the pod garbage-collected by PodGC; ``spec.nodeName`` therefore stays
  empty on a real cluster (the ``PodScheduled`` condition is still set);
* cannot set container logs (``can_set_logs`` is False, ``set_log`` returns False): there is no API for that, and an
  unbound pod's log is empty anyway.

Helpers that follow a pod's life call the earlier steps they need (``succeed`` on a Pending pod first schedules and
starts it), so watchers see the same sequence of MODIFIED events a real pod produces.  ``fail``/``oom`` honour the
pod's ``restartPolicy``: with ``Never`` the pod turns Failed, otherwise the container restarts (``restartCount`` + 1,
``CrashLoopBackOff``) and the pod stays Running, as on a real node.

The ``job_*`` helpers write Job status directly: use them with the fake's Job controller switched off
(``kube.fake.controllers.job = False``), or on a cluster whose Job controller you are standing in for; otherwise drive
the Job's *pods* and let the (real or simulated) Job controller report.  The ``kubeflow_*``/``trainjob_*`` helpers do
the same for Kubeflow training-operator and Trainer v2 objects.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from odin.testing.kube.fake_shapes import (
    KUBEFLOW_REPLICA_FIELDS,
    event_body,
    find_condition,
    kubeflow_message,
    kubeflow_reason,
    set_job_condition,
    set_kubeflow_condition,
    set_meta_condition,
)
from odin.testing.kube.fake_store import TERMINAL_POD_PHASES, now_rfc3339

if TYPE_CHECKING:
    from odin.testing.kube.fake_apiserver import FakeApiServer

T = TypeVar("T")
JsonObj = dict[str, Any]
Ref = Any  # a name (str), a dict with ``metadata``, or a client model with ``.metadata``

_PLURALS = {
    "PyTorchJob": "pytorchjobs",
    "TFJob": "tfjobs",
    "MPIJob": "mpijobs",
    "ElasticJob": "elasticjobs",
    "TrainJob": "trainjobs",
    "TrainingRuntime": "trainingruntimes",
    "ClusterTrainingRuntime": "clustertrainingruntimes",
}
DEFAULT_UNSCHEDULABLE = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
    "3 No preemption victims found for incoming pod."
)
DEFAULT_EVICTION = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. "
JOB_FAILURE_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "PodFailurePolicy": "Container main for pod failed with exit code 42 matching FailJob rule at index 0",
}


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (``TimeoutError``).  Meant for polling the API in tests; never a substitute for a watch in product code."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(text or f"condition not met within {timeout}s (last result: {result!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class CustomRef:
    """Where a custom object lives, for the ``kubeflow_*``/``trainjob_*`` helpers."""

    group: str
    version: str
    plural: str
    name: str
    namespace: str | None


class Kubelet:
    """Moves pods, Jobs and training jobs through their lives via the API (see the module docstring)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespace: str,
        *,
        fake: FakeApiServer | None = None,
        node: str = "node-1",
        emit_events: bool = True,
    ) -> None:
        # The API handles are typed Any on purpose: v37's signatures demand model objects (dicts are accepted and
        # coerced at runtime) and every model field is Optional, so strict typing here would be all noise.
        self.api_client: Any = api_client
        self.namespace = namespace
        self.fake = fake
        self.node = node
        self.emit_events = emit_events
        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.batch: Any = kubernetes.client.BatchV1Api(api_client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(api_client)
        self.binds_pods = fake is not None
        self.can_set_logs = fake is not None
        self._ips = itertools.count(2)

    # ------------------------------------------------------------------------------------------------ plumbing
    def _key(self, ref: Ref) -> tuple[str, str]:
        if isinstance(ref, str):
            return self.namespace, ref
        meta = ref.get("metadata") if isinstance(ref, Mapping) else getattr(ref, "metadata", None)
        if isinstance(meta, Mapping):
            return str(meta.get("namespace") or self.namespace), str(meta["name"])
        if meta is None:
            raise TypeError(f"cannot tell which object {ref!r} refers to")
        return str(meta.namespace or self.namespace), str(meta.name)

    def _to_dict(self, model: Any) -> JsonObj:
        data = self.api_client.sanitize_for_serialization(model)
        assert isinstance(data, dict)
        return data

    def read_pod(self, pod: Ref) -> JsonObj:
        """The pod as apiserver JSON (camelCase keys)."""
        namespace, name = self._key(pod)
        return self._to_dict(self.core.read_namespaced_pod(name, namespace))

    def _patch_pod_status(self, pod: JsonObj, status: JsonObj) -> Any:
        meta = pod["metadata"]
        return self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})

    def emit_event(
        self,
        obj: Ref,
        reason: str,
        message: str,
        type: str = "Normal",
        *,
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> Any:
        """Create a core/v1 Event about ``obj`` (a pod, job, ... as dict or client model)."""
        if isinstance(obj, str):
            data = self.read_pod(obj)
        else:
            data = dict(obj) if isinstance(obj, Mapping) else self._to_dict(obj)
        data.setdefault("apiVersion", "v1")
        data.setdefault("kind", "Pod")
        body = event_body(
            data,
            reason,
            message,
            event_type=type,
            component=component,
            host=self.node if component == "kubelet" else None,
            now=now_rfc3339(),
            field_path=field_path,
        )
        return self.core.create_namespaced_event(body["metadata"]["namespace"], body)

    def _event(self, pod: JsonObj, reason: str, message: str, warning: bool = False, **kwargs: Any) -> None:
        if self.emit_events:
            pod = {**pod, "apiVersion": pod.get("apiVersion") or "v1", "kind": pod.get("kind") or "Pod"}
            self.emit_event(pod, reason, message, "Warning" if warning else "Normal", **kwargs)

    @staticmethod
    def _containers(pod: Mapping[str, Any]) -> list[JsonObj]:
        return [dict(c) for c in (pod.get("spec") or {}).get("containers") or []]

    @staticmethod
    def _statuses(pod: Mapping[str, Any]) -> dict[str, JsonObj]:
        return {s["name"]: dict(s) for s in (pod.get("status") or {}).get("containerStatuses") or []}

    @staticmethod
    def _image_id(image: str) -> str:
        name = image.split("@", maxsplit=1)[0]
        repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        if "/" not in repo:
            repo = f"docker.io/library/{repo}"
        return f"{repo}@sha256:{secrets.token_hex(32)}"

    @staticmethod
    def _condition(
        cond_type: str, status: str, now: str, reason: str | None = None, message: str | None = None
    ) -> JsonObj:
        condition: JsonObj = {"type": cond_type, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        return condition

    def _is_scheduled(self, pod: Mapping[str, Any]) -> bool:
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        found = find_condition(conditions, "PodScheduled")
        return bool(found and found.get("status") == "True")

    def _is_started(self, pod: Mapping[str, Any]) -> bool:
        for status in self._statuses(pod).values():
            state = status.get("state") or {}
            if "running" in state or "terminated" in state or (status.get("lastState") or {}).get("terminated"):
                return True
        return False

    # -------------------------------------------------------------------------------------------------- pods
    def schedule(self, pod: Ref, node: str | None = None) -> Any:
        """What the scheduler and then the kubelet do: bind (fake only), ``PodScheduled=True``, containers
        ``ContainerCreating``."""
        node = node or self.node
        data = self.read_pod(pod)
        namespace, name = data["metadata"]["namespace"], data["metadata"]["name"]
        now = now_rfc3339()
        if self.binds_pods and not (data.get("spec") or {}).get("nodeName"):
            response = self.core.create_namespaced_pod_binding(
                name,
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": namespace},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                },
                _preload_content=False,  # the apiserver answers a Status, which V1Binding cannot hold
            )
            response.drain_conn()
            response.release_conn()
        self._event(
            data, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}", component="default-scheduler"
        )
        unready = "containers with unready status: [" + " ".join(c["name"] for c in self._containers(data)) + "]"
        status: JsonObj = {
            "phase": "Pending",
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "startTime": now,
            "conditions": [
                self._condition("PodReadyToStartContainers", "False", now),
                self._condition("Initialized", "True", now),
                self._condition("Ready", "False", now, "ContainersNotReady", unready),
                self._condition("ContainersReady", "False", now, "ContainersNotReady", unready),
                self._condition("PodScheduled", "True", now),
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {},
                }
                for c in self._containers(data)
            ],
        }
        return self._patch_pod_status(data, status)

    def start(self, pod: Ref) -> Any:
        """Containers running and ready; pod ``Running`` with an IP (schedules first if needed).

        Raises ``ValueError`` for a pod in a terminal phase: a kubelet never restarts one (the apiserver would accept
        the status write, so the rule lives here, as it does on a real node).
        """
        data = self.read_pod(pod)
        phase = (data.get("status") or {}).get("phase")
        if phase in TERMINAL_POD_PHASES:
            raise ValueError(f"pod {data['metadata']['name']} is {phase}: a kubelet never starts a terminal pod again")
        if not self._is_scheduled(data):
            self.schedule(data)
            data = self.read_pod(data)
        now = now_rfc3339()
        previous = self._statuses(data)
        ip = f"10.244.0.{next(self._ips) % 250 + 2}"
        statuses: list[JsonObj] = []
        for container in self._containers(data):
            image = container.get("image", "")
            before = previous.get(container["name"], {})
            if self.emit_events and not before.get("containerID"):
                where = f"spec.containers{{{container['name']}}}"
                self._event(data, "Pulled", f'Container image "{image}" already present on machine', field_path=where)
                self._event(data, "Created", f"Created container: {container['name']}", field_path=where)
                self._event(data, "Started", f"Started container {container['name']}", field_path=where)
            statuses.append(
                {
                    "name": container["name"],
                    "image": image,
                    "imageID": before.get("imageID") or self._image_id(image),
                    "containerID": f"containerd://{secrets.token_hex(32)}",
                    "ready": True,
                    "restartCount": int(before.get("restartCount") or 0),
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                    "lastState": before.get("lastState") or {},
                }
            )
        status: JsonObj = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                self._condition("PodReadyToStartContainers", "True", now),
                self._condition("Initialized", "True", now),
                self._condition("Ready", "True", now),
                self._condition("ContainersReady", "True", now),
            ],
            "containerStatuses": statuses,
        }
        return self._patch_pod_status(data, status)

    def _ensure_started(self, pod: Ref) -> JsonObj:
        data = self.read_pod(pod)
        if not self._is_started(data) or (data.get("status") or {}).get("phase") == "Pending":
            self.start(data)
            data = self.read_pod(data)
        return data

    def _terminate(
        self,
        data: JsonObj,
        phase: str,
        exit_codes: Mapping[str, tuple[int, str, str | None]],
        pod_reason: str | None,
        pod_message: str | None,
        extra_conditions: list[JsonObj] | None = None,
    ) -> Any:
        now = now_rfc3339()
        previous = self._statuses(data)
        statuses: list[JsonObj] = []
        for container in self._containers(data):
            before = previous.get(container["name"], {})
            code, reason, message = exit_codes[container["name"]]
            terminated: JsonObj = {
                "exitCode": code,
                "reason": reason,
                "startedAt": ((before.get("state") or {}).get("running") or {}).get("startedAt", now),
                "finishedAt": now,
                "containerID": before.get("containerID") or f"containerd://{secrets.token_hex(32)}",
            }
            if message:
                terminated["message"] = message
            statuses.append(
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": before.get("imageID") or self._image_id(str(container.get("image", ""))),
                    "containerID": terminated["containerID"],
                    "ready": False,
                    "restartCount": int(before.get("restartCount") or 0),
                    "started": False,
                    "state": {"terminated": terminated},
                    "lastState": before.get("lastState") or {},
                }
            )
        condition_reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        status: JsonObj = {
            "phase": phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", "False", now),
                self._condition("Ready", "False", now, condition_reason),
                self._condition("ContainersReady", "False", now, condition_reason),
                *(extra_conditions or []),
            ],
            "containerStatuses": statuses,
        }
        if pod_reason:
            status["reason"] = pod_reason
        if pod_message:
            status["message"] = pod_message
        return self._patch_pod_status(data, status)

    def succeed(self, pod: Ref, exit_code: int = 0) -> Any:
        """All containers exit ``exit_code`` (keep it 0), pod ``Succeeded``."""
        data = self._ensure_started(pod)
        codes = {
            c["name"]: (exit_code, "Completed" if exit_code == 0 else "Error", None) for c in self._containers(data)
        }
        return self._terminate(data, "Succeeded", codes, None, None)

    def fail(
        self,
        pod: Ref,
        exit_code: int = 1,
        reason: str = "Error",
        *,
        container: str | None = None,
        message: str | None = None,
    ) -> Any:
        """A container (``container``, default all) exits ``exit_code`` with ``reason``.  ``restartPolicy: Never``:
        the pod turns ``Failed``; otherwise the container restarts into ``CrashLoopBackOff`` and the pod stays
        ``Running`` (``restartCount`` + 1, ``lastState.terminated`` holds the exit)."""
        data = self._ensure_started(pod)
        names = [c["name"] for c in self._containers(data)]
        failing = [container] if container else names
        restart_policy = (data.get("spec") or {}).get("restartPolicy", "Always")
        if restart_policy == "Never":
            codes = {n: (exit_code, reason, message) if n in failing else (0, "Completed", None) for n in names}
            return self._terminate(data, "Failed", codes, None, None)
        now = now_rfc3339()
        previous = self._statuses(data)
        statuses: list[JsonObj] = []
        for c in self._containers(data):
            before = previous.get(c["name"], {})
            if c["name"] not in failing:
                statuses.append(before)
                continue
            terminated: JsonObj = {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": ((before.get("state") or {}).get("running") or {}).get("startedAt", now),
                "finishedAt": now,
                "containerID": before.get("containerID") or f"containerd://{secrets.token_hex(32)}",
            }
            if message:
                terminated["message"] = message
            uid = data["metadata"]["uid"]
            pod_id = f"{data['metadata']['name']}_{data['metadata']['namespace']}({uid})"
            statuses.append(
                {
                    **before,
                    "ready": False,
                    "started": False,
                    "restartCount": int(before.get("restartCount") or 0) + 1,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 10s restarting failed container={c['name']} pod={pod_id}",
                        }
                    },
                    "lastState": {"terminated": terminated},
                }
            )
            self._event(
                data,
                "BackOff",
                f"Back-off restarting failed container {c['name']} in pod {pod_id}",
                warning=True,
                field_path=f"spec.containers{{{c['name']}}}",
            )
        unready = [s["name"] for s in statuses if not s.get("ready")]
        text = f"containers with unready status: [{' '.join(unready)}]"
        status: JsonObj = {
            "phase": "Running",
            "conditions": [
                self._condition("Ready", "False", now, "ContainersNotReady", text),
                self._condition("ContainersReady", "False", now, "ContainersNotReady", text),
            ],
            "containerStatuses": statuses,
        }
        return self._patch_pod_status(data, status)

    def oom(self, pod: Ref, *, container: str | None = None) -> Any:
        """The container is OOM-killed: terminated reason ``OOMKilled``, exit code 137."""
        return self.fail(pod, 137, "OOMKilled", container=container)

    def image_pull_backoff(self, pod: Ref, reason: str = "ImagePullBackOff", *, message: str | None = None) -> Any:
        """Containers stuck ``waiting`` with ``ImagePullBackOff`` (or ``ErrImagePull``); pod stays Pending."""
        data = self.read_pod(pod)
        if not self._is_scheduled(data):
            self.schedule(data)
            data = self.read_pod(data)
        now = now_rfc3339()
        statuses: list[JsonObj] = []
        for c in self._containers(data):
            image = str(c.get("image", ""))
            text = message or (
                f'Back-off pulling image "{image}"'
                if reason == "ImagePullBackOff"
                else f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found'
            )
            where = f"spec.containers{{{c['name']}}}"
            self._event(data, "Pulling", f'Pulling image "{image}"', field_path=where)
            self._event(data, "Failed", f'Failed to pull image "{image}": {text}', warning=True, field_path=where)
            self._event(data, "Failed", f"Error: {reason}", warning=True, field_path=where)
            if reason == "ImagePullBackOff":
                self._event(data, "BackOff", f'Back-off pulling image "{image}"', field_path=where)
            statuses.append(
                {
                    "name": c["name"],
                    "image": image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": reason, "message": text}},
                    "lastState": {},
                }
            )
        names = " ".join(c["name"] for c in self._containers(data))
        status: JsonObj = {
            "phase": "Pending",
            "conditions": [
                self._condition(
                    "Ready", "False", now, "ContainersNotReady", f"containers with unready status: [{names}]"
                ),
                self._condition(
                    "ContainersReady", "False", now, "ContainersNotReady", f"containers with unready status: [{names}]"
                ),
            ],
            "containerStatuses": statuses,
        }
        return self._patch_pod_status(data, status)

    def unschedulable(self, pod: Ref, message: str = DEFAULT_UNSCHEDULABLE) -> Any:
        """What the scheduler reports for a pod no node can take: ``PodScheduled=False``, reason ``Unschedulable``."""
        data = self.read_pod(pod)
        now = now_rfc3339()
        self._event(data, "FailedScheduling", message, warning=True, component="default-scheduler")
        status = {
            "phase": "Pending",
            "conditions": [self._condition("PodScheduled", "False", now, "Unschedulable", message)],
        }
        return self._patch_pod_status(data, status)

    def evict(self, pod: Ref, message: str = DEFAULT_EVICTION) -> Any:
        """Node-pressure eviction by the kubelet: pod ``Failed``, reason ``Evicted``, ``DisruptionTarget`` condition
        (reason ``TerminationByKubelet``), containers killed (exit 137)."""
        data = self._ensure_started(pod)
        now = now_rfc3339()
        self._event(data, "Evicted", message, warning=True)
        codes = {c["name"]: (137, "Error", None) for c in self._containers(data)}
        disruption = self._condition("DisruptionTarget", "True", now, "TerminationByKubelet", message)
        return self._terminate(data, "Failed", codes, "Evicted", message, [disruption])

    def node_lost(self, pod: Ref, *, delete: bool = True, legacy: bool = False) -> Any:
        """The pod's node stops responding.

        Modern clusters (default): the node controller marks the pod not ready, the taint-eviction controller adds
        ``DisruptionTarget`` (reason ``DeletionByTaintManager``) and deletes it; with the kubelet gone, PodGC marks it
        ``Failed`` (``DisruptionTarget`` reason ``DeletionByPodGC``) and force-deletes it.  ``delete=False`` stops
        before the deletion (the pod stays, not ready, with the condition).  ``legacy=True``: the pre-1.26 shape,
        phase ``Failed`` with reason ``NodeLost``, not deleted.  Returns the last pod state seen."""
        data = self._ensure_started(pod)
        namespace, name = data["metadata"]["namespace"], data["metadata"]["name"]
        now = now_rfc3339()
        node = (data.get("spec") or {}).get("nodeName") or self.node
        if legacy:
            message = f"Node {node} which was running pod {name} is unresponsive"
            self._event(data, "NodeLost", message, warning=True, component="node-controller")
            status = {
                "phase": "Failed",
                "reason": "NodeLost",
                "message": message,
                "conditions": [self._condition("Ready", "False", now, "NodeLost", message)],
            }
            return self._patch_pod_status(data, status)
        self._event(data, "NodeNotReady", "Node is not ready", warning=True, component="node-controller")
        marked = self._patch_pod_status(
            data,
            {
                "conditions": [
                    self._condition("Ready", "False", now),
                    self._condition(
                        "DisruptionTarget",
                        "True",
                        now,
                        "DeletionByTaintManager",
                        "Taint manager: deleting due to NoExecute taint",
                    ),
                ]
            },
        )
        if not delete:
            return marked
        self._event(
            data,
            "TaintManagerEviction",
            f"Marking for deletion Pod {namespace}/{name}",
            component="taint-eviction-controller",
        )
        failed = self._patch_pod_status(
            data,
            {
                "phase": "Failed",
                "conditions": [
                    self._condition("DisruptionTarget", "True", now, "DeletionByPodGC", "PodGC: node no longer exists")
                ],
            },
        )
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
        return failed

    def set_log(self, pod: Ref, text: str, container: str | None = None, *, append: bool = False) -> bool:
        """Set (or append to) a container's log.  Fake only: returns False and does nothing on a real cluster
        (see ``can_set_logs``)."""
        if self.fake is None:
            return False
        namespace, name = self._key(pod)
        if append:
            self.fake.append_log(namespace, name, text, container)
        else:
            self.fake.set_log(namespace, name, text, container)
        return True

    # -------------------------------------------------------------------------------------------------- jobs
    def job_pods(self, job: Ref) -> list[Any]:
        """The pods the Job controller created for ``job`` (label ``job-name``), oldest first."""
        namespace, name = self._key(job)
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))

    def wait_for_job_pods(self, job: Ref, count: int = 1, timeout: float = 10.0) -> list[Any]:
        return wait_for(lambda: p if len(p := self.job_pods(job)) >= count else None, timeout)

    def _patch_job_status(self, job: Ref, status: JsonObj) -> Any:
        namespace, name = self._key(job)
        return self.batch.patch_namespaced_job_status(name, namespace, {"status": status})

    def _read_job(self, job: Ref) -> JsonObj:
        namespace, name = self._key(job)
        return self._to_dict(self.batch.read_namespaced_job(name, namespace))

    def job_active(self, job: Ref, active: int = 1, ready: int = 0) -> Any:
        """Job status while pods run (``active``, ``ready``, ``startTime``)."""
        data = self._read_job(job)
        status = data.get("status") or {}
        return self._patch_job_status(
            data,
            {
                "active": active,
                "ready": ready,
                "terminating": 0,
                "startTime": status.get("startTime") or now_rfc3339(),
                "uncountedTerminatedPods": {},
            },
        )

    def job_succeed(self, job: Ref) -> Any:
        """``SuccessCriteriaMet`` + ``Complete`` (reason ``CompletionsReached``), ``succeeded``, ``completionTime``."""
        data = self._read_job(job)
        status = data.get("status") or {}
        now = now_rfc3339()
        conditions = list(status.get("conditions") or [])
        message = "Reached expected number of succeeded pods"
        for cond_type in ("SuccessCriteriaMet", "Complete"):
            conditions = set_job_condition(conditions, cond_type, "True", "CompletionsReached", message, now)
        completions = int((data.get("spec") or {}).get("completions") or 1)
        return self._patch_job_status(
            data,
            {
                "active": None,
                "ready": 0,
                "terminating": 0,
                "succeeded": completions,
                "startTime": status.get("startTime") or now,
                "completionTime": now,
                "uncountedTerminatedPods": {},
                "conditions": conditions,
            },
        )

    def job_fail(self, job: Ref, reason: str = "BackoffLimitExceeded", message: str | None = None) -> Any:
        """``FailureTarget`` + ``Failed`` with ``reason`` (``BackoffLimitExceeded``, ``DeadlineExceeded``,
        ``PodFailurePolicy``), ``failed`` + 1."""
        data = self._read_job(job)
        status = data.get("status") or {}
        now = now_rfc3339()
        text = message or JOB_FAILURE_MESSAGES.get(reason, reason)
        conditions = list(status.get("conditions") or [])
        for cond_type in ("FailureTarget", "Failed"):
            conditions = set_job_condition(conditions, cond_type, "True", reason, text, now)
        return self._patch_job_status(
            data,
            {
                "active": None,
                "ready": 0,
                "terminating": 0,
                "failed": int(status.get("failed") or 0) + 1,
                "startTime": status.get("startTime") or now,
                "uncountedTerminatedPods": {},
                "conditions": conditions,
            },
        )

    # ---------------------------------------------------------------------------------------- custom objects
    def _custom_ref(self, obj: Any) -> CustomRef:
        if isinstance(obj, CustomRef):
            return obj
        if not isinstance(obj, Mapping):
            raise TypeError("pass the dict CustomObjectsApi returned, or a CustomRef")
        group, _, version = str(obj["apiVersion"]).partition("/")
        kind = str(obj["kind"])
        meta = obj["metadata"]
        return CustomRef(group, version, _PLURALS.get(kind, f"{kind.lower()}s"), meta["name"], meta.get("namespace"))

    def _read_custom(self, ref: CustomRef) -> JsonObj:
        if ref.namespace:
            obj = self.custom.get_namespaced_custom_object(ref.group, ref.version, ref.namespace, ref.plural, ref.name)
        else:
            obj = self.custom.get_cluster_custom_object(ref.group, ref.version, ref.plural, ref.name)
        assert isinstance(obj, dict)
        return obj

    def update_custom_status(self, obj: Any, mutate: Callable[[JsonObj], JsonObj]) -> JsonObj:
        """Read-modify-write a custom object's status with a resourceVersion precondition (retried on 409)."""
        ref = self._custom_ref(obj)
        for attempt in range(5):
            current = self._read_custom(ref)
            status = mutate(dict(current.get("status") or {}))
            body = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "status": status}
            try:
                if ref.namespace:
                    result = self.custom.patch_namespaced_custom_object_status(
                        ref.group, ref.version, ref.namespace, ref.plural, ref.name, body
                    )
                else:
                    result = self.custom.patch_cluster_custom_object_status(
                        ref.group, ref.version, ref.plural, ref.name, body
                    )
                assert isinstance(result, dict)
                return result
            except ApiException as exc:
                if exc.status != 409 or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def kubeflow_condition(
        self,
        job: Any,
        cond_type: str,
        *,
        reason: str | None = None,
        message: str | None = None,
        replica_statuses: Mapping[str, Any] | None = None,
    ) -> JsonObj:
        """Set a training-operator condition (``Created``, ``Running``, ``Restarting``, ``Succeeded``, ``Failed``)
        with its semantics (Running turns False on Succeeded/Failed; nothing changes after Failed)."""
        ref = self._custom_ref(job)
        kind = next((k for k, p in _PLURALS.items() if p == ref.plural), ref.plural)
        namespace = ref.namespace or ""

        def mutate(status: JsonObj) -> JsonObj:
            now = now_rfc3339()
            status["conditions"] = set_kubeflow_condition(
                list(status.get("conditions") or []),
                cond_type,
                reason or kubeflow_reason(kind, cond_type),
                message or kubeflow_message(kind, namespace, ref.name, cond_type),
                now,
            )
            status.setdefault("startTime", now)
            if cond_type in ("Succeeded", "Failed"):
                status["completionTime"] = now
            if replica_statuses is not None:
                status["replicaStatuses"] = dict(replica_statuses)
            else:
                status.setdefault("replicaStatuses", {})  # the operator always writes it (some CRDs require it)
            return status

        return self.update_custom_status(ref, mutate)

    def kubeflow_created(self, job: Any, **kwargs: Any) -> JsonObj:
        return self.kubeflow_condition(job, "Created", **kwargs)

    def kubeflow_running(self, job: Any, **kwargs: Any) -> JsonObj:
        return self.kubeflow_condition(job, "Running", **kwargs)

    def kubeflow_succeeded(self, job: Any, **kwargs: Any) -> JsonObj:
        return self.kubeflow_condition(job, "Succeeded", **kwargs)

    def kubeflow_failed(self, job: Any, **kwargs: Any) -> JsonObj:
        return self.kubeflow_condition(job, "Failed", **kwargs)

    def kubeflow_pods(self, job: Any) -> list[Any]:
        """The pods of a Kubeflow job (label ``training.kubeflow.org/job-name``)."""
        ref = self._custom_ref(job)
        selector = f"training.kubeflow.org/job-name={ref.name}"
        return list(self.core.list_namespaced_pod(ref.namespace or self.namespace, label_selector=selector).items)

    def set_condition(self, obj: Any, cond_type: str, status: str, reason: str, message: str = "") -> JsonObj:
        """Upsert a ``metav1.Condition`` on a custom object's status (``meta.SetStatusCondition`` semantics)."""

        def mutate(current: JsonObj) -> JsonObj:
            conditions = list(current.get("conditions") or [])
            current["conditions"] = set_meta_condition(conditions, cond_type, status, reason, message, now_rfc3339())
            return current

        return self.update_custom_status(obj, mutate)

    def trainjob_complete(
        self, job: Any, *, reason: str = "AllJobsCompleted", message: str = "jobset completed successfully"
    ) -> JsonObj:
        """Kubeflow Trainer v2: ``Complete=True`` (propagated from the JobSet)."""
        return self.set_condition(job, "Complete", "True", reason, message)

    def trainjob_failed(
        self, job: Any, *, reason: str = "FailedJobs", message: str = "jobset failed due to one or more job failures"
    ) -> JsonObj:
        """Kubeflow Trainer v2: ``Failed=True`` (propagated from the JobSet)."""
        return self.set_condition(job, "Failed", "True", reason, message)

    @staticmethod
    def replica_type_of(kind: str) -> str:
        """The ``spec`` field holding a Kubeflow kind's replica specs (``pytorchReplicaSpecs`` ...)."""
        return KUBEFLOW_REPLICA_FIELDS[kind]
