"""Status and event shapes shared by the fake's controllers and the fake kubelet.

Why one module: the Job and Kubeflow "controllers" inside the fake and the ``Kubelet`` test helper (which writes
through the API, so it also works against a real cluster) must produce *identical* condition and event objects, or a
test would pass with one and fail with the other.  Every builder here returns plain JSON with the field names and
reason strings the real components use (kube-controller-manager's job controller, Kubeflow training-operator v1,
Kubeflow Trainer v2 / JobSet), so the official client's models deserialise them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

JsonObj = dict[str, Any]

# Kubeflow training-operator v1: the field holding the replica specs, per kind.
KUBEFLOW_REPLICA_FIELDS: dict[str, str] = {
    "PyTorchJob": "pytorchReplicaSpecs",
    "TFJob": "tfReplicaSpecs",
    "MPIJob": "mpiReplicaSpecs",
    "XGBoostJob": "xgbReplicaSpecs",
    "PaddleJob": "paddleReplicaSpecs",
    "JAXJob": "jaxReplicaSpecs",
}
# Replica types whose success is the job's success; without one of them, all workers must succeed.
KUBEFLOW_PRIMARY_REPLICAS = ("Master", "Chief", "Launcher")


def find_condition(conditions: list[JsonObj], cond_type: str) -> JsonObj | None:
    return next((c for c in conditions if c.get("type") == cond_type), None)


def condition_true(obj: Mapping[str, Any], cond_type: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    found = find_condition(list(conditions), cond_type)
    return bool(found and found.get("status") == "True")


def set_job_condition(
    conditions: list[JsonObj], cond_type: str, status: str, reason: str, message: str, now: str
) -> list[JsonObj]:
    """batch/v1 JobCondition upsert, as the job controller does it (transition time kept if status unchanged)."""
    out = [dict(c) for c in conditions]
    existing = find_condition(out, cond_type)
    condition = {
        "type": cond_type,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    if existing is None:
        out.append(condition)
        return out
    if existing.get("status") == status:
        condition["lastTransitionTime"] = existing.get("lastTransitionTime", now)
    existing.clear()
    existing.update(condition)
    return out


def set_meta_condition(
    conditions: list[JsonObj], cond_type: str, status: str, reason: str, message: str, now: str
) -> list[JsonObj]:
    """``meta.SetStatusCondition`` semantics for ``metav1.Condition`` lists (TrainJob and most CRDs)."""
    out = [dict(c) for c in conditions]
    existing = find_condition(out, cond_type)
    if existing is None:
        out.append(
            {"type": cond_type, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
        )
        return out
    if existing.get("status") != status:
        existing["lastTransitionTime"] = now
    existing.update({"status": status, "reason": reason, "message": message})
    return out


def kubeflow_reason(kind: str, cond_type: str) -> str:
    return f"{kind}{cond_type}"


def kubeflow_message(kind: str, namespace: str, name: str, cond_type: str) -> str:
    return {
        "Created": f"{kind} {namespace}/{name} is created.",
        "Running": f"{kind} {namespace}/{name} is running.",
        "Restarting": f"{kind} {namespace}/{name} is restarting because 1 replica(s) failed.",
        "Succeeded": f"{kind} {namespace}/{name} successfully completed.",
        "Failed": f"{kind} {namespace}/{name} has failed.",
    }.get(cond_type, f"{kind} {namespace}/{name} is {cond_type.lower()}.")


def set_kubeflow_condition(
    conditions: list[JsonObj], cond_type: str, reason: str, message: str, now: str
) -> list[JsonObj]:
    """training-operator v1 ``setCondition``: no change once Failed; Running turns False on Succeeded/Failed;
    Running and Restarting replace each other."""
    if any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions):
        return [dict(c) for c in conditions]
    current = find_condition(conditions, cond_type)
    if current and current.get("status") == "True" and current.get("reason") == reason:
        return [dict(c) for c in conditions]
    new = {
        "type": cond_type,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": current.get("lastTransitionTime", now)
        if current and current.get("status") == "True"
        else now,
    }
    out: list[JsonObj] = []
    for condition in conditions:
        c = dict(condition)
        if {cond_type, c.get("type")} == {"Running", "Restarting"} or c.get("type") == cond_type:
            continue
        if cond_type in ("Succeeded", "Failed") and c.get("type") == "Running":
            c["status"] = "False"
        out.append(c)
    out.append(new)
    return out


def involved_object(obj: Mapping[str, Any]) -> JsonObj:
    meta = obj.get("metadata") or {}
    ref: JsonObj = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return {k: v for k, v in ref.items() if v is not None}


def event_body(
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    event_type: str = "Normal",
    component: str = "kubelet",
    host: str | None = None,
    now: str,
    field_path: str | None = None,
) -> JsonObj:
    """A core/v1 Event about ``obj``, as ``record.EventRecorder`` writes it."""
    involved = involved_object(obj)
    if field_path:
        involved["fieldPath"] = field_path
    source: JsonObj = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved.get('name')}.{secrets.token_hex(8)}", "namespace": involved.get("namespace")},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }
