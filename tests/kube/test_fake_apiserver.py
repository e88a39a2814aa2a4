"""Tests of the fake Kubernetes API server, driven only through the official ``kubernetes`` client.

Why through the client: these tests double as fidelity checks -- the client builds the real URLs, query strings and
patch content types, and v37 validates every response against its pydantic models, so a response shape the real
apiserver would never send fails here.  Tests that only need the API run unchanged against a real cluster when
``ODIN_TEST_KUBECONFIG`` is set; tests that need fault injection or fake-only hooks call ``kube.require_fake()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from odin.testing.kube.environment import KUBECONFIG_ENV, UNSERVED_SCHEDULER, KubeEnv, kube_environment
from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.fake_resources import NAMESPACES, custom_kind
from odin.testing.kube.kubelet import CustomRef, wait_for
from tests.kube.harness import require_crd

pytestmark = pytest.mark.kube


def new_watch() -> Any:
    """``kubernetes.watch.Watch`` is untyped; tests use it through ``Any``."""
    return watch.Watch()  # type: ignore[no-untyped-call]


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body or "{}")
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["code"] == exc.status
    return dict(body)


def names(items: Any) -> list[str]:
    return sorted(i.metadata.name if hasattr(i, "metadata") else i["metadata"]["name"] for i in items)


def label_pods(kube: KubeEnv) -> None:
    for name, labels in {
        "a": {"app": "odin", "tier": "web", "env": "prod"},
        "b": {"app": "odin", "tier": "worker"},
        "c": {"app": "other", "env": "dev"},
        "d": {},
    }.items():
        kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest(name, labels=labels))


# ------------------------------------------------------------------------------------------------------- discovery
def test_discovery_endpoints(kube: KubeEnv) -> None:
    version = client.VersionApi(kube.api_client).get_code()
    assert version.major and version.git_version
    core_versions = client.CoreApi(kube.api_client).get_api_versions()
    assert "v1" in core_versions.versions
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert {"batch", "coordination.k8s.io"} <= groups
    resources = {r.name for r in kube.core.get_api_resources().resources}
    assert {"pods", "pods/status", "pods/log", "events", "secrets", "namespaces"} <= resources
    if kube.is_fake:
        assert {"kubeflow.org", "trainer.kubeflow.org", "elastic.pytorch.org"} <= groups
        custom = kube.custom.get_api_resources("kubeflow.org", "v1")
        assert {"pytorchjobs", "tfjobs", "mpijobs"} <= {r.name for r in custom.resources}


# ------------------------------------------------------------------------------------------------------------ CRUD
def test_pod_crud_metadata_and_resource_versions(kube: KubeEnv) -> None:
    ns = kube.namespace
    created = kube.core.create_namespaced_pod(ns, kube.pod_manifest("p1", labels={"app": "odin"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp is not None and meta.namespace == ns
    rv1 = int(meta.resource_version)
    assert created.status.phase == "Pending"
    assert created.spec.service_account_name == "default"  # defaulted as on a real cluster

    got = kube.core.read_namespaced_pod("p1", ns)
    assert got.metadata.resource_version == meta.resource_version

    patched = kube.core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"tier": "web"}}})
    assert patched.metadata.labels == {"app": "odin", "tier": "web"}
    rv2 = int(patched.metadata.resource_version)
    assert rv2 > rv1

    listing = kube.core.list_namespaced_pod(ns)
    assert names(listing.items) == ["p1"]
    assert int(listing.metadata.resource_version) >= rv2

    patched.metadata.annotations = {"odin.io/step": "train"}
    replaced = kube.core.replace_namespaced_pod("p1", ns, patched)
    assert replaced.metadata.annotations == {"odin.io/step": "train"}
    assert int(replaced.metadata.resource_version) > rv2

    # A no-op patch keeps the resourceVersion, as a real apiserver does.
    again = kube.core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"tier": "web"}}})
    assert again.metadata.resource_version == replaced.metadata.resource_version

    deleted = kube.core.delete_namespaced_pod("p1", ns, grace_period_seconds=0)
    assert deleted.metadata.name == "p1"
    with pytest.raises(ApiException) as err:
        kube.core.read_namespaced_pod("p1", ns)
    assert err.value.status == 404
    body = status_of(err.value)
    assert body["reason"] == "NotFound"
    assert body["details"] == {"name": "p1", "kind": "pods"}
    assert body["message"] == 'pods "p1" not found'


def test_duplicate_create_is_409_already_exists(kube: KubeEnv) -> None:
    kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "cfg"}, "data": {"a": "2"}})
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "cfg" already exists'


def test_stale_replace_is_409_conflict(kube: KubeEnv) -> None:
    stale = kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    kube.core.patch_namespaced_config_map("cfg", kube.namespace, {"data": {"a": "2"}})
    stale.data = {"a": "3"}
    with pytest.raises(ApiException) as err:
        kube.core.replace_namespaced_config_map("cfg", kube.namespace, stale)
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    # A merge patch carrying a stale resourceVersion is refused the same way.
    with pytest.raises(ApiException) as err:
        kube.core.patch_namespaced_config_map(
            "cfg",
            kube.namespace,
            {"metadata": {"resourceVersion": stale.metadata.resource_version}, "data": {"a": "4"}},
        )
    assert err.value.status == 409
    assert kube.core.read_namespaced_config_map("cfg", kube.namespace).data == {"a": "2"}


def test_generate_name_and_name_validation(kube: KubeEnv) -> None:
    pod = kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest(generate_name="step-"))
    assert pod.metadata.name.startswith("step-")
    assert len(pod.metadata.name) == len("step-") + 5

    for bad in ("Bad_Name", "-leading", "x" * 254):
        with pytest.raises(ApiException) as err:
            kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest(bad))
        assert err.value.status == 422
        body = status_of(err.value)
        assert body["reason"] == "Invalid"
        assert body["details"]["causes"][0]["field"] == "metadata.name"

    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest())
    assert err.value.status == 422
    assert "name or generateName is required" in status_of(err.value)["message"]

    with pytest.raises(ApiException) as err:  # label values are limited to 63 characters
        kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("ok", labels={"run": "r" * 64}))
    assert err.value.status == 422
    assert status_of(err.value)["details"]["causes"][0]["field"] == "metadata.labels"


def test_create_in_missing_namespace_is_404(kube: KubeEnv) -> None:
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_config_map("no-such-ns-odin", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert status_of(err.value)["details"]["kind"] == "namespaces"


def test_pod_validation_and_immutability(kube: KubeEnv) -> None:
    ns = kube.namespace
    manifest = kube.pod_manifest("p")
    manifest["spec"]["containers"][0].pop("image")
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_pod(ns, manifest)
    assert err.value.status == 422
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.containers[0].image"

    kube.core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    kube.core.patch_namespaced_pod("p", ns, {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}})
    with pytest.raises(ApiException) as err:
        kube.core.patch_namespaced_pod("p", ns, {"spec": {"restartPolicy": "Always"}})
    assert err.value.status == 422
    assert "pod updates may not change fields" in status_of(err.value)["message"]


def test_secrets_configmaps_services_pvcs_serviceaccounts(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}})
    assert secret.data == {"token": "czNjcjN0"} and secret.type == "Opaque"
    assert secret.string_data is None
    core.patch_namespaced_secret("creds", ns, {"data": {"extra": "eA=="}})
    assert set(core.read_namespaced_secret("creds", ns).data) == {"token", "extra"}

    service = core.create_namespaced_service(
        ns, {"metadata": {"name": "master"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 29500}]}}
    )
    assert service.spec.cluster_ip and service.spec.type == "ClusterIP"

    pvc = core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    assert pvc.status.phase == "Pending"

    core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})
    assert {"default", "runner"} <= set(names(core.list_namespaced_service_account(ns).items))

    deletions: list[Callable[[], Any]] = [
        lambda: core.delete_namespaced_secret("creds", ns),
        lambda: core.delete_namespaced_service("master", ns),
        lambda: core.delete_namespaced_persistent_volume_claim("data", ns),
        lambda: core.delete_namespaced_service_account("runner", ns),
    ]
    for delete in deletions:
        delete()
    assert core.list_namespaced_secret(ns).items == []


def test_leases_optimistic_concurrency(kube: KubeEnv) -> None:
    coordination = kube.coordination
    lease = coordination.create_namespaced_lease(
        kube.namespace,
        {"metadata": {"name": "odin-leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    )
    first = coordination.read_namespaced_lease("odin-leader", kube.namespace)
    first.spec.holder_identity = "b"
    coordination.replace_namespaced_lease("odin-leader", kube.namespace, first)
    lease.spec.holder_identity = "c"  # a contender with a stale copy loses
    with pytest.raises(ApiException) as err:
        coordination.replace_namespaced_lease("odin-leader", kube.namespace, lease)
    assert err.value.status == 409
    assert coordination.read_namespaced_lease("odin-leader", kube.namespace).spec.holder_identity == "b"
    coordination.delete_namespaced_lease("odin-leader", kube.namespace)


def test_namespaces_are_cluster_scoped_and_delete_their_contents(kube: KubeEnv) -> None:
    core = kube.core
    scratch = f"{kube.namespace}-scratch"  # unique on a shared cluster
    ns = core.create_namespace({"metadata": {"name": scratch, "labels": {"odin.io/test-namespace": "true"}}})
    assert ns.status.phase == "Active" and ns.metadata.labels["kubernetes.io/metadata.name"] == scratch
    core.create_namespaced_config_map(scratch, {"metadata": {"name": "x"}})
    assert scratch in names(core.list_namespace().items)
    result = core.delete_namespace(scratch)
    assert result["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as err:
        wait_for(lambda: not core.read_namespace(scratch), 120)  # a real cluster empties it first, asynchronously
    assert err.value.status == 404
    assert core.list_namespaced_config_map(scratch).items == []


# ------------------------------------------------------------------------------------------------- custom objects
CUSTOM_KINDS = [
    ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", True, True),
    ("kubeflow.org", "v1", "tfjobs", "TFJob", True, True),
    ("kubeflow.org", "v1", "mpijobs", "MPIJob", True, True),
    ("elastic.pytorch.org", "v1alpha1", "elasticjobs", "ElasticJob", True, True),
    ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", True, True),
    ("trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime", True, False),
    ("trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", "ClusterTrainingRuntime", False, False),
]


_REPLICA = {
    "replicas": 1,
    "restartPolicy": "Never",
    "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
}
# kind -> (a spec its CRD accepts, a field to merge into it): CRUD runs on valid objects, so on a real cluster too.
CUSTOM_SPECS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "PyTorchJob": ({"pytorchReplicaSpecs": {"Master": _REPLICA}}, {"runPolicy": {"backoffLimit": 2}}),
    "TFJob": ({"tfReplicaSpecs": {"Chief": _REPLICA}}, {"runPolicy": {"backoffLimit": 2}}),
    "MPIJob": ({"mpiReplicaSpecs": {"Launcher": _REPLICA}}, {"slotsPerWorker": 2}),
    "ElasticJob": ({"rdzvEndpoint": "etcd-service:2379", "replicaSpecs": {"Worker": _REPLICA}}, {"maxReplicas": 2}),
    "TrainJob": ({"runtimeRef": {"name": "torch-distributed"}}, {"suspend": True}),
    "TrainingRuntime": ({"template": {"spec": {}}}, {"mlPolicy": {"numNodes": 2}}),
    "ClusterTrainingRuntime": ({"template": {"spec": {}}}, {"mlPolicy": {"numNodes": 2}}),
}
# A condition in both shapes: the training operator's JobCondition and Trainer's metav1.Condition.
_CONDITION = {"type": "Created", "status": "True", "reason": "Created", "message": "created",
              "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(("group", "version", "plural", "kind", "namespaced", "has_status"), CUSTOM_KINDS)
def test_custom_object_crud(
    kube: KubeEnv, group: str, version: str, plural: str, kind: str, namespaced: bool, has_status: bool
) -> None:
    require_crd(kube, group, version, plural)
    if kube.fake is not None:
        kube.fake.controllers.kubeflow = False  # plain CRUD here; the operator simulation has its own tests
    custom, ns = kube.custom, kube.namespace
    spec, extra = CUSTOM_SPECS[kind]
    name = f"obj-{kube.namespace}" if not namespaced else "obj"  # cluster-scoped: unique per test on a shared cluster
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": name, "labels": {"odin.io/run": kube.namespace}},
        "spec": spec,
        "status": {"conditions": [_CONDITION]},
    }
    status_body = {"conditions": [_CONDITION]}
    if group != "trainer.kubeflow.org":
        status_body["replicaStatuses"] = {}  # the training operator's JobStatus requires it
    selector = f"odin.io/run={kube.namespace}"
    if namespaced:
        created = custom.create_namespaced_custom_object(group, version, ns, plural, body)
        get: Callable[[], Any] = lambda: custom.get_namespaced_custom_object(group, version, ns, plural, name)  # noqa: E731
        listed = custom.list_namespaced_custom_object(group, version, ns, plural, label_selector=selector)
        patched = custom.patch_namespaced_custom_object(group, version, ns, plural, name, {"spec": extra})
    else:
        created = custom.create_cluster_custom_object(group, version, plural, body)
        get = lambda: custom.get_cluster_custom_object(group, version, plural, name)  # noqa: E731
        listed = custom.list_cluster_custom_object(group, version, plural, label_selector=selector)
        patched = custom.patch_cluster_custom_object(group, version, plural, name, {"spec": extra})
    assert created["metadata"]["generation"] == 1 and created["kind"] == kind
    if has_status:
        assert "status" not in created  # a status subresource drops status on create
    assert names(listed["items"]) == [name] and listed["items"][0]["kind"] == kind
    assert patched["spec"].items() >= extra.items() and patched["metadata"]["generation"] == 2
    assert get()["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]

    if has_status:
        status = custom.patch_namespaced_custom_object_status(
            group, version, ns, plural, name, {"status": status_body, "spec": spec}
        )
        assert status["status"]["conditions"][0]["type"] == "Created"
        assert status["spec"] == patched["spec"]  # /status only writes status
        assert status["metadata"]["generation"] == 2
        gone = {"status": {"conditions": None}}
        kept = custom.patch_namespaced_custom_object(group, version, ns, plural, name, gone)
        assert kept["status"]["conditions"][0]["type"] == "Created"  # the main resource cannot write status

    # Custom resources refuse strategic merge patch, exactly like a real apiserver.
    path = f"/apis/{group}/{version}/" + (f"namespaces/{ns}/" if namespaced else "") + f"{plural}/{name}"
    api_client: Any = kube.api_client
    response = api_client.call_api(
        "PATCH",
        api_client.configuration.host + path,
        {"Content-Type": "application/strategic-merge-patch+json"},
        {"spec": extra},
    )
    response.read()
    assert response.status == 415

    result = (
        custom.delete_namespaced_custom_object(group, version, ns, plural, name)
        if namespaced
        else custom.delete_cluster_custom_object(group, version, plural, name)
    )
    assert result["status"] == "Success" and result["details"]["name"] == name
    with pytest.raises(ApiException) as err:
        wait_for(lambda: not get(), 30)  # a real cluster may hold it a moment for its finalizers
    assert err.value.status == 404
    assert status_of(err.value)["message"] == f'{plural}.{group} "{name}" not found'


def test_registering_a_new_custom_kind(kube: KubeEnv) -> None:
    fake = kube.require_fake("registers a kind in the fake; a cluster needs its CRD installed")
    fake.register_kind(custom_kind("ray.io", "v1", "rayjobs", "RayJob"))
    created = kube.custom.create_namespaced_custom_object(
        "ray.io",
        "v1",
        kube.namespace,
        "rayjobs",
        {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "r"}},
    )
    assert created["metadata"]["uid"]
    assert "ray.io" in {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}


# ------------------------------------------------------------------------------------------------------ selectors
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=odin", ["a", "b"]),
        ("app==odin", ["a", "b"]),
        ("app!=odin", ["c", "d"]),
        ("tier in (web, worker)", ["a", "b"]),
        ("tier notin (web)", ["b", "c", "d"]),
        ("env", ["a", "c"]),
        ("!env", ["b", "d"]),
        ("app=odin,!env", ["b"]),
        ("app in (odin,other),env notin (prod)", ["b", "c"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors(kube: KubeEnv, selector: str, expected: list[str]) -> None:
    label_pods(kube)
    assert names(kube.core.list_namespaced_pod(kube.namespace, label_selector=selector).items) == expected


def test_field_selectors(kube: KubeEnv) -> None:
    ns = kube.namespace
    label_pods(kube)
    kube.kubelet.start("a")
    kube.kubelet.succeed("b")
    assert names(kube.core.list_namespaced_pod(ns, field_selector="metadata.name=c").items) == ["c"]
    assert names(kube.core.list_namespaced_pod(ns, field_selector="status.phase=Running").items) == ["a"]
    assert names(kube.core.list_namespaced_pod(ns, field_selector="status.phase!=Pending").items) == ["a", "b"]
    assert names(
        kube.core.list_namespaced_pod(ns, field_selector=f"metadata.namespace={ns},metadata.name!=a").items
    ) == [
        "b",
        "c",
        "d",
    ]
    kube.kubelet.emit_event(kube.core.read_namespaced_pod("c", ns), "Custom", "about c", "Warning")
    events = kube.core.list_namespaced_event(
        ns, field_selector="involvedObject.name=c,involvedObject.kind=Pod,type=Warning"
    ).items
    assert [(e.reason, e.involved_object.name) for e in events] == [("Custom", "c")]
    with pytest.raises(ApiException) as err:
        kube.core.list_namespaced_pod(ns, field_selector="spec.nonsense=x")
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        kube.core.list_namespaced_pod(ns, label_selector="tier in (web")
    assert err.value.status == 400


def test_pagination_is_a_consistent_snapshot(kube: KubeEnv) -> None:
    ns = kube.namespace
    for i in range(5):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}", "labels": {"set": "x"}}})
    first = kube.core.list_namespaced_config_map(ns, label_selector="set=x", limit=2)
    assert names(first.items) == ["cm-0", "cm-1"] and first.metadata._continue
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "cm-5", "labels": {"set": "x"}}})
    seen = names(first.items)
    token = first.metadata._continue
    while token:
        page = kube.core.list_namespaced_config_map(ns, label_selector="set=x", limit=2, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += names(page.items)
        token = page.metadata._continue
    assert seen == [f"cm-{i}" for i in range(5)]  # cm-5 came after the snapshot


# ---------------------------------------------------------------------------------------------------------- watch
def collect(stream: Iterator[dict[str, Any]], w: Any, count: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for event in stream:
        obj = event["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        out.append((event["type"], name))
        if len(out) == count:
            w.stop()
    return out


def test_list_then_watch_replays_changes_in_order(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    core.create_namespaced_pod(ns, kube.pod_manifest("before"))
    listing = core.list_namespaced_pod(ns)
    core.create_namespaced_pod(ns, kube.pod_manifest("p1"))
    core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"x": "1"}}})
    core.create_namespaced_pod(ns, kube.pod_manifest("p2"))
    core.delete_namespaced_pod("p1", ns)
    w = new_watch()
    stream = w.stream(
        core.list_namespaced_pod, ns, resource_version=listing.metadata.resource_version, timeout_seconds=5
    )
    events = collect(stream, w, 5)
    # Deleting a pod marks it first (deletionTimestamp, grace 0), then removes it: MODIFIED, then DELETED.
    assert events == [("ADDED", "p1"), ("MODIFIED", "p1"), ("ADDED", "p2"), ("MODIFIED", "p1"), ("DELETED", "p1")]


def test_deleting_a_pod_sends_modified_with_a_deletion_timestamp_then_deleted(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    created = core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    w = new_watch()
    stream = w.stream(
        core.list_namespaced_pod, ns, resource_version=created.metadata.resource_version, timeout_seconds=5
    )
    deleted = core.delete_namespaced_pod("p", ns)
    assert deleted.metadata.deletion_timestamp is not None
    seen = []
    for event in stream:
        seen.append((event["type"], event["object"]))
        if event["type"] == "DELETED":
            w.stop()
    assert [t for t, _ in seen] == ["MODIFIED", "DELETED"]
    marked = seen[0][1].metadata
    assert marked.deletion_timestamp is not None and marked.deletion_grace_period_seconds == 0


def test_watch_receives_live_events_from_other_threads(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    rv = core.list_namespaced_pod(ns).metadata.resource_version

    def writer() -> None:
        if kube.fake is not None:  # live, not replayed; on a real cluster a write before the watch opens is replayed
            kube.fake.wait_for_watches(1)
        core.create_namespaced_pod(ns, kube.pod_manifest("live"))
        kube.kubelet.start("live")

    thread = threading.Thread(target=writer)
    thread.start()
    w = new_watch()
    seen: list[tuple[str, str | None]] = []
    for event in w.stream(core.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=10):
        seen.append((event["type"], event["object"].status.phase))
        if event["object"].status.phase == "Running":
            w.stop()
    thread.join()
    assert seen[0] == ("ADDED", "Pending") and seen[-1] == ("MODIFIED", "Running")


def test_watch_without_resource_version_starts_with_current_state(kube: KubeEnv) -> None:
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("existing"))
    w = new_watch()
    events = collect(w.stream(kube.core.list_namespaced_pod, kube.namespace, timeout_seconds=5), w, 1)
    assert events == [("ADDED", "existing")]


def test_watch_all_namespaces_and_selector_transitions(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    core.create_namespaced_pod(ns, kube.pod_manifest("s", labels={"watched": "yes"}))
    core.patch_namespaced_pod("s", ns, {"metadata": {"labels": {"watched": "no"}}})  # stops matching -> DELETED
    core.patch_namespaced_pod("s", ns, {"metadata": {"labels": {"watched": "yes"}}})  # matches again -> ADDED
    w = new_watch()
    stream = w.stream(
        core.list_pod_for_all_namespaces, label_selector="watched=yes", resource_version=rv, timeout_seconds=5
    )
    assert collect(stream, w, 3) == [("ADDED", "s"), ("DELETED", "s"), ("ADDED", "s")]


def test_watch_custom_objects(kube: KubeEnv) -> None:
    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    if kube.fake is not None:
        kube.fake.controllers.kubeflow = False  # a cluster with the CRDs but no operator, as issue 14's was
    args = ("kubeflow.org", "v1", kube.namespace, "pytorchjobs")
    rv = kube.custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    kube.custom.create_namespaced_custom_object(*args, pytorchjob("t", 1, kube.scheduler_name))
    kube.custom.delete_namespaced_custom_object(*args, "t")
    w = new_watch()
    stream = w.stream(kube.custom.list_namespaced_custom_object, *args, resource_version=rv, timeout_seconds=5)
    events = []
    for event in stream:
        events.append(event["type"])
        if event["type"] == "DELETED":
            w.stop()
    # (an operator, where one runs, may add MODIFIED events in between)
    assert events[0] == "ADDED" and events[-1] == "DELETED" and set(events) <= {"ADDED", "MODIFIED", "DELETED"}


def test_watch_from_expired_resource_version_raises_410(kube: KubeEnv) -> None:
    fake = kube.require_fake("needs simulated etcd compaction")
    ns, core = kube.namespace, kube.core
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    fake.expire_history()
    fake.requests.reset()

    # Without timeout_seconds the official Watch retries once from the same resourceVersion, then raises.
    with pytest.raises(ApiException) as err:
        for _ in new_watch().stream(core.list_namespaced_pod, ns, resource_version=rv):
            pass
    assert err.value.status == 410
    assert "Expired" in str(err.value.reason)
    watches = fake.requests.filter(verb="watch")
    assert len(watches) == 2 and all(r.status == 200 and r.query["resourceVersion"] == rv for r in watches)

    # With timeout_seconds it raises on the first ERROR event.
    fake.requests.reset()
    with pytest.raises(ApiException) as err:
        for _ in new_watch().stream(core.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=5):
            pass
    assert err.value.status == 410
    assert fake.requests.count(verb="watch") == 1

    # Relisting gives a resourceVersion that can be watched from again.
    fresh = core.list_namespaced_pod(ns).metadata.resource_version
    core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"after": "relist"}}})
    w = new_watch()
    stream = w.stream(core.list_namespaced_pod, ns, resource_version=fresh, timeout_seconds=5)
    assert collect(stream, w, 1) == [("MODIFIED", "p")]


def test_history_window_compaction(kube: KubeEnv) -> None:
    fake = kube.require_fake("needs simulated etcd compaction")
    ns, core = kube.namespace, kube.core
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}"}})
    fake.compact(keep_last=1)
    with pytest.raises(ApiException) as err:
        for _ in new_watch().stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
            pass
    assert err.value.status == 410


def test_watch_bookmarks_and_initial_events(kube: KubeEnv) -> None:
    fake = kube.require_fake("bookmarks are sent at the server's discretion on a real cluster")
    ns, core = kube.namespace, kube.core
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    w = new_watch()
    stream = w.stream(
        core.list_namespaced_pod,
        ns,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=10,
    )
    first = next(stream)
    assert first["type"] == "ADDED" and first["object"].metadata.name == "p"
    marker = next(stream)
    assert marker["type"] == "BOOKMARK"
    assert marker["raw_object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    fake.send_bookmarks()
    bookmark = next(stream)
    assert bookmark["type"] == "BOOKMARK"
    assert int(bookmark["raw_object"]["metadata"]["resourceVersion"]) == fake.resource_version
    assert w.resource_version == bookmark["raw_object"]["metadata"]["resourceVersion"]
    w.stop()
    for _ in stream:  # drain: the generator closes the response
        pass


def test_watch_timeout_seconds_ends_stream(kube: KubeEnv) -> None:
    rv = kube.core.list_namespaced_pod(kube.namespace).metadata.resource_version  # "1" is long compacted on a cluster
    started = time.monotonic()
    events = list(
        new_watch().stream(kube.core.list_namespaced_pod, kube.namespace, resource_version=rv, timeout_seconds=1)
    )
    assert events == [] and 0.9 <= time.monotonic() - started < 5
    if kube.fake is not None:
        assert kube.fake.requests.count(verb="watch") == 1


def test_idle_watch_does_not_spin(kube: KubeEnv) -> None:
    fake = kube.require_fake("measures the fake's CPU use")
    rv = kube.core.list_namespaced_pod(kube.namespace).metadata.resource_version
    cpu, wall = time.process_time(), time.monotonic()
    assert (
        list(new_watch().stream(kube.core.list_namespaced_pod, kube.namespace, resource_version=rv, timeout_seconds=1))
        == []
    )
    elapsed_cpu, elapsed_wall = time.process_time() - cpu, time.monotonic() - wall
    assert elapsed_wall >= 0.9
    assert elapsed_cpu < 0.25 * elapsed_wall, f"watch burned {elapsed_cpu:.3f}s CPU in {elapsed_wall:.3f}s"
    assert fake.requests.count() == 2  # the list and the one watch request


def test_dropped_watch_reconnects_from_last_resource_version(kube: KubeEnv) -> None:
    fake = kube.require_fake("needs to drop server-side watch connections")
    ns, core = kube.namespace, kube.core
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    first = core.create_namespaced_pod(ns, kube.pod_manifest("first"))
    fake.requests.reset()
    w = new_watch()
    seen: list[str] = []
    for event in w.stream(core.list_namespaced_pod, ns, resource_version=rv):  # no timeout: Watch reconnects
        seen.append(event["object"].metadata.name)
        if len(seen) == 1:
            assert fake.drop_watches() == 1
            wait_for(lambda: fake.active_watches == 0)
            core.create_namespaced_pod(ns, kube.pod_manifest("second"))
        else:
            w.stop()
    assert seen == ["first", "second"]
    watches = fake.requests.filter(verb="watch")
    assert [r.query["resourceVersion"] for r in watches] == [rv, first.metadata.resource_version]


def test_abruptly_dropped_watch_surfaces_a_protocol_error(kube: KubeEnv) -> None:
    fake = kube.require_fake("needs to cut watch connections")
    ns, core = kube.namespace, kube.core
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for _ in new_watch().stream(core.list_namespaced_pod, ns, resource_version=rv):
            fake.drop_watches(abrupt=True)


# -------------------------------------------------------------------------------------------------------- faults
def test_429_with_retry_after_is_returned_as_injected(kube: KubeEnv) -> None:
    fake = kube.require_fake("injects 429s")
    fault = fake.faults.throttle(times=1, retry_after=3, verb="create", resource="pods")
    with pytest.raises(ApiException) as err:
        kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))
    assert err.value.status == 429
    assert dict(err.value.headers or {})["Retry-After"] == "3"
    body = status_of(err.value)
    assert body["reason"] == "TooManyRequests" and body["details"] == {"retryAfterSeconds": 3}
    assert fault.hits == 1 and fault.exhausted
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))  # the fault is used up
    assert [r.status for r in fake.requests.filter(verb="create")] == [429, 201]


def test_urllib3_retries_idempotent_requests_on_429_with_retry_after(kube: KubeEnv) -> None:
    """Pin the client behaviour executor authors must know: GET/PUT/DELETE answered 429 (or 503) *with* a
    Retry-After header are retried inside urllib3 (3 retries, sleeping Retry-After each time) before the caller
    sees anything; POST/PATCH are not."""
    fake = kube.require_fake("injects 429s")
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))
    fake.requests.reset()
    fake.faults.throttle(times=2, retry_after=0, verb="get", resource="pods")
    assert kube.core.read_namespaced_pod("p", kube.namespace).metadata.name == "p"
    assert [r.status for r in fake.requests] == [429, 429, 200]

    fake.requests.reset()
    fake.faults.throttle(times=10, retry_after=0, verb="get", resource="pods")
    with pytest.raises(ApiException) as err:
        kube.core.read_namespaced_pod("p", kube.namespace)
    assert err.value.status == 429
    assert [r.status for r in fake.requests] == [429] * 4
    fake.faults.clear()

    fake.requests.reset()
    fake.faults.throttle(times=1, retry_after=0, verb="patch")
    with pytest.raises(ApiException):
        kube.core.patch_namespaced_pod("p", kube.namespace, {"metadata": {"labels": {"a": "b"}}})
    assert [r.status for r in fake.requests] == [429]


def test_500s_for_a_duration_and_403_for_a_namespace(kube: KubeEnv) -> None:
    fake = kube.require_fake("injects 500s and 403s")
    ns = kube.namespace
    outage = fake.faults.server_errors(duration=60, resource="configmaps")
    with pytest.raises(ApiException) as err:
        kube.core.list_namespaced_config_map(ns)
    assert err.value.status == 500 and status_of(err.value)["reason"] == "InternalError"
    with pytest.raises(ApiException):
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert outage.hits == 2
    kube.core.list_namespaced_secret(ns)  # other resources are unaffected
    fake.faults.remove(outage)
    kube.core.list_namespaced_config_map(ns)
    assert fake.faults.server_errors(duration=0).exhausted  # a zero-length outage never applies

    fake.faults.forbid_namespace(ns)
    with pytest.raises(ApiException) as err:
        kube.core.list_namespaced_pod(ns)
    assert err.value.status == 403
    body = status_of(err.value)
    assert body["reason"] == "Forbidden"
    assert body["message"].startswith('pods is forbidden: User "') and f'in the namespace "{ns}"' in body["message"]
    kube.core.list_namespaced_pod("default")
    fake.faults.clear()
    kube.core.list_namespaced_pod(ns)


def test_latency_and_dropped_connections(kube: KubeEnv) -> None:
    fake = kube.require_fake("injects latency and dropped connections")
    fake.faults.latency(0.2, verb="list", resource="pods", times=1)
    started = time.monotonic()
    kube.core.list_namespaced_pod(kube.namespace)
    assert time.monotonic() - started >= 0.2
    assert fake.requests.filter(verb="list")[-1].duration >= 0.2

    fake.faults.add(verb="create", drop_connection=True, times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # not an ApiException: no HTTP response at all
        kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "x"}})
    assert fake.requests.filter(verb="create")[-1].status == 0


def test_request_recording(kube: KubeEnv) -> None:
    fake = kube.require_fake("reads the fake's request log")
    ns = kube.namespace
    fake.requests.reset()
    kube.core.create_namespaced_pod(ns, kube.pod_manifest("p", labels={"a": "b"}))
    kube.core.list_namespaced_pod(ns, label_selector="a=b")
    kube.core.read_namespaced_pod_status("p", ns)
    kube.core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"c": "d"}}})
    with pytest.raises(ApiException):
        kube.core.read_namespaced_pod("missing", ns)
    assert len(fake.requests) == 5
    assert [r.verb for r in fake.requests] == ["create", "list", "get", "patch", "get"]
    listing = fake.requests.filter(verb="list")[0]
    assert listing.method == "GET" and listing.path == f"/api/v1/namespaces/{ns}/pods"
    assert listing.query == {"labelSelector": "a=b"} and listing.resource == "pods" and listing.namespace == ns
    assert fake.requests.filter(subresource="status")[0].name == "p"
    assert fake.requests.filter(verb="patch")[0].content_type == "application/strategic-merge-patch+json"
    assert fake.requests.count(status=404) == 1 and fake.requests.count(resource="pods", namespace=ns) == 5
    assert all(r.time > 0 and r.duration >= 0 for r in fake.requests)
    fake.requests.reset()
    assert len(fake.requests) == 0


# ------------------------------------------------------------------------------------------------------- patching
def test_three_patch_content_types(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    core.create_namespaced_pod(ns, kube.pod_manifest("p", labels={"keep": "1", "drop": "1"}))
    merged = core.patch_namespaced_pod(
        "p", ns, {"metadata": {"labels": {"drop": None, "new": "1"}}}, _content_type="application/merge-patch+json"
    )
    assert merged.metadata.labels == {"keep": "1", "new": "1"}
    patched = core.patch_namespaced_pod(
        "p",
        ns,
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"odin.io/a": "1"}},
            {"op": "replace", "path": "/metadata/labels/keep", "value": "2"},
            {"op": "test", "path": "/metadata/labels/new", "value": "1"},
            {"op": "remove", "path": "/metadata/labels/new"},
        ],
        _content_type="application/json-patch+json",
    )
    assert patched.metadata.labels == {"keep": "2"} and patched.metadata.annotations == {"odin.io/a": "1"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(
            "p",
            ns,
            [{"op": "test", "path": "/metadata/labels/keep", "value": "9"}],
            _content_type="application/json-patch+json",
        )
    assert err.value.status == 422

    # Strategic merge merges conditions by type (the default content type of the typed client for built-ins).
    kube.kubelet.schedule("p")
    core.patch_namespaced_pod_status(
        "p", ns, {"status": {"conditions": [{"type": "odin.io/Checked", "status": "True"}]}}
    )
    conditions = {c.type for c in core.read_namespaced_pod_status("p", ns).status.conditions}
    assert {"PodScheduled", "Ready", "odin.io/Checked"} <= conditions


def test_server_side_apply_creates_and_merges(kube: KubeEnv) -> None:
    kube.require_fake("field ownership is not modelled; a real server may answer apply conflicts differently")
    path = f"/api/v1/namespaces/{kube.namespace}/configmaps/applied"
    api_client: Any = kube.api_client
    for data in ({"a": "1"}, {"b": "2"}):
        response = api_client.call_api(
            "PATCH",
            f"{kube.api_client.configuration.host}{path}?fieldManager=odin",
            {"Content-Type": "application/apply-patch+yaml"},
            json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data}),
        )
        response.read()
        assert response.status in (200, 201)
    assert kube.core.read_namespaced_config_map("applied", kube.namespace).data == {"a": "1", "b": "2"}


# -------------------------------------------------------------------------------------------- deletion and GC
def test_deleting_a_job_propagates_to_its_pods(kube: KubeEnv) -> None:
    ns, batch, core = kube.namespace, kube.batch, kube.core
    pods = lambda job: core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items  # noqa: E731
    for name in ("bg", "fg", "orphan"):
        batch.create_namespaced_job(ns, kube.job_manifest(name))
    wait_for(lambda: len(core.list_namespaced_pod(ns, label_selector="job-name").items) == 3, 30)

    result = batch.delete_namespaced_job("bg", ns, propagation_policy="Background")
    assert result["status"] == "Success" and result["details"] == {
        "name": "bg",
        "group": "batch",
        "kind": "jobs",
        "uid": result["details"]["uid"],
    }
    # Garbage collection: synchronous in the fake, a moment later on a real cluster.
    wait_for(lambda: pods("bg") == [], 60)

    result = batch.delete_namespaced_job("fg", ns, body=client.V1DeleteOptions(propagation_policy="Foreground"))
    assert "foregroundDeletion" in result["metadata"]["finalizers"] and result["metadata"]["deletionTimestamp"]
    wait_for(lambda: pods("fg") == [], 60)
    with pytest.raises(ApiException):
        wait_for(lambda: not batch.read_namespaced_job("fg", ns), 60)

    # batch/v1 Jobs default to orphaning their pods (and the apiserver says so in a Warning header).
    _, status, headers = batch.delete_namespaced_job_with_http_info("orphan", ns)
    assert status == 200 and "child pods are preserved" in headers["Warning"]
    orphans = wait_for(lambda: [p for p in pods("orphan") if not p.metadata.owner_references], 60)
    assert len(orphans) == 1 and len(pods("orphan")) == 1
    if kube.fake is not None:
        assert kube.fake.requests.count(verb="delete") == 3


def test_owner_reference_gc_for_custom_objects_and_finalizers(kube: KubeEnv) -> None:
    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    if kube.fake is not None:
        kube.fake.controllers.kubeflow = False
    ns, core = kube.namespace, kube.core
    owner = kube.custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", ns, "pytorchjobs", pytorchjob("o", 0, kube.scheduler_name)
    )
    ref = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "name": "o",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    for name in ("w0", "w1"):
        manifest = kube.pod_manifest(name)
        manifest["metadata"]["ownerReferences"] = [ref]
        core.create_namespaced_pod(ns, manifest)
    blocked = kube.pod_manifest("blocked")
    blocked["metadata"].update(ownerReferences=[ref], finalizers=["odin.io/cleanup"])
    core.create_namespaced_pod(ns, blocked)

    kube.custom.delete_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", "o")
    # Garbage collection: synchronous in the fake, a moment later on a real cluster.
    wait_for(lambda: names(core.list_namespaced_pod(ns).items) == ["blocked"], 60)
    pod = wait_for(
        lambda: p if (p := core.read_namespaced_pod("blocked", ns)).metadata.deletion_timestamp else None, 60
    )
    assert pod.metadata.finalizers == ["odin.io/cleanup"]  # held by its finalizer
    core.patch_namespaced_pod("blocked", ns, {"metadata": {"finalizers": None}})
    wait_for(lambda: core.list_namespaced_pod(ns).items == [], 60)


def test_selectors_and_garbage_collection_follow_labels_and_owners_changed_by_updates(kube: KubeEnv) -> None:
    """Labels and ownerReferences written after the create (a relabel, an adoption, an orphaning) are what lists and
    the garbage collector see, not those the object was created with (the fake indexes both)."""
    ns, core = kube.namespace, kube.core
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for name in ("adopted", "orphaned", "relabelled"):
        core.create_namespaced_pod(ns, kube.pod_manifest(name, labels={"stage": "old"}))
    core.patch_namespaced_pod("orphaned", ns, {"metadata": {"ownerReferences": [ref]}})
    core.patch_namespaced_pod("orphaned", ns, {"metadata": {"ownerReferences": None}})
    core.patch_namespaced_pod("adopted", ns, {"metadata": {"ownerReferences": [ref]}})
    core.patch_namespaced_pod("relabelled", ns, {"metadata": {"labels": {"stage": "new"}}})
    assert names(core.list_namespaced_pod(ns, label_selector="stage=old").items) == ["adopted", "orphaned"]
    assert names(core.list_namespaced_pod(ns, label_selector="stage in (new)").items) == ["relabelled"]

    core.delete_namespaced_config_map("owner", ns, propagation_policy="Background")
    wait_for(lambda: names(core.list_namespaced_pod(ns).items) == ["orphaned", "relabelled"], 60)
    core.delete_collection_namespaced_pod(ns, label_selector="stage=new")
    assert names(core.list_namespaced_pod(ns, label_selector="stage").items) == ["orphaned"]


def test_delete_collection(kube: KubeEnv) -> None:
    label_pods(kube)
    kube.core.delete_collection_namespaced_pod(kube.namespace, label_selector="app=odin")
    assert names(kube.core.list_namespaced_pod(kube.namespace).items) == ["c", "d"]


def test_delete_collection_answers_the_deleted_list_and_watchers_see_each_pod_go(kube: KubeEnv) -> None:
    """What Odin's clean-up relies on (one deletecollection per run): set-based selectors, the answer a PodList of
    what was deleted, and for each pod MODIFIED (deletionTimestamp) then DELETED, as a DELETE each would send."""
    ns, core = kube.namespace, kube.core
    for name, labels in {"r1-a": {"run": "r1", "task": "a"}, "r1-b": {"run": "r1", "task": "b"},
                         "r2-a": {"run": "r2", "task": "a"}, "r3-a": {"run": "r3", "task": "a"}}.items():  # fmt: skip
        created = core.create_namespaced_pod(ns, kube.pod_manifest(name, labels=labels))
    w = new_watch()
    stream = w.stream(
        core.list_namespaced_pod, ns, resource_version=created.metadata.resource_version, timeout_seconds=5
    )
    response = core.delete_collection_namespaced_pod(
        ns, label_selector="run in (r1,r2),task in (a,b)", propagation_policy="Background", _preload_content=False
    )
    answer = json.loads(response.data)
    assert answer["kind"] == "PodList" and sorted(i["metadata"]["name"] for i in answer["items"]) == [
        "r1-a", "r1-b", "r2-a"
    ]  # fmt: skip
    seen: dict[str, list[str]] = {}
    for event in stream:
        seen.setdefault(event["object"].metadata.name, []).append(event["type"])
        if sum(t == "DELETED" for types in seen.values() for t in types) == 3:
            w.stop()
    assert seen == {"r1-a": ["MODIFIED", "DELETED"], "r1-b": ["MODIFIED", "DELETED"], "r2-a": ["MODIFIED", "DELETED"]}
    assert names(core.list_namespaced_pod(ns).items) == ["r3-a"]


def test_delete_collection_of_jobs_takes_their_pods_along(kube: KubeEnv) -> None:
    fake = kube.require_fake("runs the Job controller")
    ns = kube.namespace
    for name in ("j1", "j2"):
        kube.batch.create_namespaced_job(ns, kube.job_manifest(name, labels={"run": "r1"}))
    wait_for(lambda: len(kube.core.list_namespaced_pod(ns).items) == 2, 10)
    kube.batch.delete_collection_namespaced_job(ns, label_selector="run=r1", propagation_policy="Foreground")
    wait_for(lambda: not kube.batch.list_namespaced_job(ns).items and not kube.core.list_namespaced_pod(ns).items, 10)
    assert fake.requests.count(verb="deletecollection", resource="jobs") == 1


# ---------------------------------------------------------------------------------------------------------- logs
def test_pod_logs_tail_timestamps_and_container_rules(kube: KubeEnv) -> None:
    kube.require_fake("logs can only be set on the fake")
    ns, core, kubelet = kube.namespace, kube.core, kube.kubelet
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    assert core.read_namespaced_pod_log("p", ns) == ""  # not bound to a node yet: empty, as on a cluster
    kubelet.schedule("p")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", ns)
    assert err.value.status == 400 and "is waiting to start: ContainerCreating" in status_of(err.value)["message"]
    kubelet.start("p")
    assert kubelet.set_log("p", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", ns) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", ns, tail_lines=2) == "two\nthree\n"
    stamped = core.read_namespaced_pod_log("p", ns, tail_lines=1, timestamps=True)
    stamp, _, text = stamped.partition(" ")
    assert text == "three\n" and stamp.endswith("Z") and "T" in stamp
    assert core.read_namespaced_pod_log("p", ns, limit_bytes=5) == "one\nt"

    core.create_namespaced_pod(ns, kube.pod_manifest("multi", containers=("trainer", "sidecar")))
    kubelet.start("multi")
    kubelet.set_log("multi", "train\n", container="trainer")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("multi", ns)
    assert err.value.status == 400
    assert "a container name must be specified for pod multi, choose one of: [trainer sidecar]" in str(err.value.body)
    assert core.read_namespaced_pod_log("multi", ns, container="trainer") == "train\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("multi", ns, container="nope")
    assert err.value.status == 400


def test_pod_log_follow_streams_until_the_pod_terminates(kube: KubeEnv) -> None:
    fake = kube.require_fake("logs can only be set on the fake")
    ns, core, kubelet = kube.namespace, kube.core, kube.kubelet
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    kubelet.start("p")
    kubelet.set_log("p", "old-1\nold-2\n")
    lines: list[str] = []
    for line in new_watch().stream(core.read_namespaced_pod_log, "p", ns, tail_lines=1):
        lines.append(line)
        if line == "old-2":
            kubelet.set_log("p", "new-1\n", append=True)
        elif line == "new-1":
            fake.append_log(ns, "p", "last\n")
            kubelet.succeed("p")
    assert lines == ["old-2", "new-1", "last"]
    assert fake.requests.filter(subresource="log")[0].query == {"follow": "true", "tailLines": "1"}


# -------------------------------------------------------------------------------------------------------- kubelet
def test_kubelet_lifecycle_shapes(kube: KubeEnv) -> None:
    ns, core, kubelet = kube.namespace, kube.core, kube.kubelet
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    scheduled = kubelet.schedule("p")
    assert scheduled.status.phase == "Pending"
    assert scheduled.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    if kube.is_fake:
        assert scheduled.spec.node_name == "node-1"
    running = kubelet.start("p")
    assert running.status.phase == "Running" and running.status.pod_ip
    cs = running.status.container_statuses[0]
    assert cs.ready and cs.started and cs.state.running.started_at is not None and cs.image_id and cs.container_id
    conditions = {c.type: c.status for c in running.status.conditions}
    assert conditions == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
    }
    done = kubelet.succeed("p")
    pod = core.read_namespaced_pod_status("p", ns)
    assert done.status.phase == pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0 and terminated.reason == "Completed" and terminated.finished_at is not None
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.reason == "PodCompleted"
    with pytest.raises(ValueError, match="never starts a terminal pod"):  # the kubelet's rule, not the apiserver's
        kubelet.start("p")
    reasons = [e.reason for e in core.list_namespaced_event(ns, field_selector="involvedObject.name=p").items]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons)


@pytest.mark.parametrize(
    ("action", "phase", "reason", "exit_code"),
    [
        ("fail", "Failed", "Error", 1),
        ("oom", "Failed", "OOMKilled", 137),
    ],
)
def test_kubelet_failures_with_restart_policy_never(
    kube: KubeEnv, action: str, phase: str, reason: str, exit_code: int
) -> None:
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))
    getattr(kube.kubelet, action)("p")
    pod = kube.core.read_namespaced_pod_status("p", kube.namespace)
    assert pod.status.phase == phase
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == reason and terminated.exit_code == exit_code


def test_kubelet_failure_with_restart_policy_on_failure_crash_loops(kube: KubeEnv) -> None:
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p", restart_policy="OnFailure"))
    kube.kubelet.oom("p")
    pod = kube.core.read_namespaced_pod_status("p", kube.namespace)
    assert pod.status.phase == "Running"
    cs = pod.status.container_statuses[0]
    assert cs.restart_count == 1 and cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.last_state.terminated.reason == "OOMKilled" and cs.last_state.terminated.exit_code == 137


def test_kubelet_pending_problems(kube: KubeEnv) -> None:
    ns, core, kubelet = kube.namespace, kube.core, kube.kubelet
    core.create_namespaced_pod(ns, kube.pod_manifest("pull"))
    core.create_namespaced_pod(ns, kube.pod_manifest("nogpu"))
    core.create_namespaced_pod(ns, kube.pod_manifest("errpull"))
    pulled = kubelet.image_pull_backoff("pull")
    assert pulled.status.phase == "Pending"
    waiting = pulled.status.container_statuses[0].state.waiting
    assert waiting.reason == "ImagePullBackOff" and "busybox:1.36" in waiting.message
    assert kubelet.image_pull_backoff("errpull", "ErrImagePull").status.container_statuses[0].state.waiting.reason == (
        "ErrImagePull"
    )
    stuck = kubelet.unschedulable("nogpu", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    scheduled = next(c for c in stuck.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in scheduled.message
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=nogpu,reason=FailedScheduling").items
    assert len(events) == 1 and events[0].type == "Warning" and events[0].source.component == "default-scheduler"


def test_kubelet_disruptions(kube: KubeEnv) -> None:
    ns, core, kubelet = kube.namespace, kube.core, kube.kubelet
    for name in ("evicted", "lost", "legacy", "unreachable"):
        core.create_namespaced_pod(ns, kube.pod_manifest(name))
    evicted = kubelet.evict("evicted")
    assert (evicted.status.phase, evicted.status.reason) == ("Failed", "Evicted")
    disruption = next(c for c in evicted.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")

    rv = core.list_namespaced_pod(ns).metadata.resource_version
    kubelet.node_lost("lost")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("lost", ns)
    assert err.value.status == 404
    w = new_watch()
    seen: list[tuple[str, list[str]]] = []
    for event in w.stream(
        core.list_namespaced_pod, ns, field_selector="metadata.name=lost", resource_version=rv, timeout_seconds=5
    ):
        reasons = [c.reason for c in event["object"].status.conditions or [] if c.type == "DisruptionTarget"]
        seen.append((event["type"], reasons))
        if event["type"] == "DELETED":
            w.stop()
    assert ("MODIFIED", ["DeletionByTaintManager"]) in seen and seen[-1] == ("DELETED", ["DeletionByPodGC"])

    kept = kubelet.node_lost("unreachable", delete=False)
    assert kept.status.phase == "Running"
    assert any(c.type == "DisruptionTarget" and c.reason == "DeletionByTaintManager" for c in kept.status.conditions)
    legacy = kubelet.node_lost("legacy", legacy=True)
    assert (legacy.status.phase, legacy.status.reason) == ("Failed", "NodeLost")


def test_kubelet_set_log_is_a_capability(kube: KubeEnv) -> None:
    assert kube.kubelet.can_set_logs is kube.is_fake
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))
    kube.kubelet.start("p")
    assert kube.kubelet.set_log("p", "hello\n") is kube.is_fake


# --------------------------------------------------------------------------------------------------- Job controller
def test_job_controller_runs_a_job_to_completion(kube: KubeEnv) -> None:
    ns, batch, kubelet = kube.namespace, kube.batch, kube.kubelet
    job = batch.create_namespaced_job(ns, kube.job_manifest("train"))
    assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    (pod,) = kubelet.wait_for_job_pods(job)
    assert pod.metadata.name.startswith("train-")
    labels = pod.metadata.labels
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "train"
    assert labels["controller-uid"] == job.metadata.uid
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "train", job.metadata.uid, True)
    kubelet.start(pod)
    wait_for(lambda: batch.read_namespaced_job_status("train", ns).status.active == 1)
    w = new_watch()
    stream = w.stream(
        batch.list_namespaced_job,
        ns,
        field_selector="metadata.name=train",
        resource_version=batch.read_namespaced_job("train", ns).metadata.resource_version,
        timeout_seconds=30,
    )
    kubelet.succeed(pod)
    seen: list[list[str]] = []
    for event in stream:
        types = [c.type for c in event["object"].status.conditions or [] if c.status == "True"]
        if types and (not seen or seen[-1] != types):
            seen.append(types)
        if "Complete" in types:
            w.stop()
    # Two updates, as the real controller writes them: SuccessCriteriaMet alone first, then Complete.
    assert seen[:2] == [["SuccessCriteriaMet"], ["SuccessCriteriaMet", "Complete"]]
    status = batch.read_namespaced_job_status("train", ns).status
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions["Complete"] == ("True", "CompletionsReached")
    assert status.succeeded == 1 and not status.active and status.completion_time is not None


def test_job_controller_retries_until_backoff_limit(kube: KubeEnv) -> None:
    ns, batch, kubelet = kube.namespace, kube.batch, kube.kubelet
    batch.create_namespaced_job(ns, kube.job_manifest("flaky", backoff_limit=1))
    first = kubelet.wait_for_job_pods("flaky", 1)[0]
    kubelet.fail(first, exit_code=2)
    second = next(p for p in kubelet.wait_for_job_pods("flaky", 2) if p.metadata.name != first.metadata.name)
    kubelet.oom(second)

    def failed() -> Any:
        job = batch.read_namespaced_job_status("flaky", ns)
        return job if any(c.type == "Failed" for c in job.status.conditions or []) else None

    job = wait_for(failed)
    reasons = {c.type: c.reason for c in job.status.conditions}
    assert reasons["Failed"] == reasons["FailureTarget"] == "BackoffLimitExceeded"
    assert job.status.failed == 2


def test_job_status_helpers_with_controller_off(kube: KubeEnv) -> None:
    fake = kube.require_fake("a real cluster's Job controller cannot be switched off")
    fake.controllers.job = False
    ns, batch, kubelet = kube.namespace, kube.batch, kube.kubelet
    batch.create_namespaced_job(ns, kube.job_manifest("manual"))
    batch.create_namespaced_job(ns, kube.job_manifest("late"))
    assert kube.core.list_namespaced_pod(ns).items == []
    assert kubelet.job_active("manual").status.active == 1
    done = kubelet.job_succeed("manual").status
    assert {c.type for c in done.conditions} == {"SuccessCriteriaMet", "Complete"} and done.succeeded == 1
    failed = kubelet.job_fail("late", reason="DeadlineExceeded").status
    failed_condition = next(c for c in failed.conditions if c.type == "Failed")
    assert failed_condition.reason == "DeadlineExceeded"
    assert failed_condition.message == "Job was active longer than specified deadline"


def test_job_suspend_and_resume(kube: KubeEnv) -> None:
    ns, batch = kube.namespace, kube.batch
    pods = lambda: kube.core.list_namespaced_pod(ns, label_selector="job-name=queued").items  # noqa: E731
    batch.create_namespaced_job(ns, kube.job_manifest("queued"))
    batch.patch_namespaced_job("queued", ns, {"spec": {"suspend": True}})
    # The fake's controller acts inside the write; a real one a moment later: wait for both alike.
    suspended = lambda: any(  # noqa: E731
        c.type == "Suspended" and c.status == "True"
        for c in batch.read_namespaced_job_status("queued", ns).status.conditions or []
    )
    wait_for(suspended, 30)
    wait_for(lambda: pods() == [], 30)
    batch.patch_namespaced_job("queued", ns, {"spec": {"suspend": False}})
    wait_for(lambda: len(pods()) == 1, 30)
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job("queued", ns, {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}})
    assert err.value.status == 422 and "field is immutable" in status_of(err.value)["message"]


# ------------------------------------------------------------------------------------------------------ Kubeflow
def pytorchjob(name: str, workers: int, scheduler: str) -> dict[str, Any]:
    template = {
        "spec": {"schedulerName": scheduler, "containers": [{"name": "pytorch", "image": "pytorch/pytorch:2.5.0"}]}
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "Never", "template": template},
                "Worker": {"replicas": workers, "restartPolicy": "Never", "template": template},
            }
        },
    }


def test_kubeflow_operator_simulation(kube: KubeEnv) -> None:
    fake = kube.require_fake("needs the simulated training operator")
    ns, kubelet, core = kube.namespace, kube.kubelet, kube.core
    job = kube.custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", ns, "pytorchjobs", pytorchjob("ddp", 2, kube.scheduler_name)
    )
    pods = {p.metadata.name: p for p in kubelet.kubeflow_pods(job)}
    assert sorted(pods) == ["ddp-master-0", "ddp-worker-0", "ddp-worker-1"]
    worker = pods["ddp-worker-1"].metadata.labels
    assert worker["training.kubeflow.org/replica-type"] == "worker"
    assert worker["training.kubeflow.org/replica-index"] == "1"
    assert pods["ddp-master-0"].metadata.labels["training.kubeflow.org/job-role"] == "master"
    for name in pods:
        kubelet.start(name)
        kubelet.set_log(name, f"rank log from {name}\n")
    logs = {name: core.read_namespaced_pod_log(name, ns) for name in pods}
    assert logs["ddp-worker-0"] == "rank log from ddp-worker-0\n"
    status = kube.custom.get_namespaced_custom_object_status("kubeflow.org", "v1", ns, "pytorchjobs", "ddp")["status"]
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == ["Created", "Running"]
    assert status["replicaStatuses"] == {"Master": {"active": 1}, "Worker": {"active": 2}}
    for name in pods:
        kubelet.succeed(name)
    status = kube.custom.get_namespaced_custom_object_status("kubeflow.org", "v1", ns, "pytorchjobs", "ddp")["status"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Succeeded"] == ("True", "PyTorchJobSucceeded") and conditions["Running"][0] == "False"
    assert status["completionTime"]

    kube.custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", ns, "pytorchjobs", pytorchjob("bad", 1, kube.scheduler_name)
    )
    kubelet.fail("bad-worker-0", exit_code=3)
    bad = kube.custom.get_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", "bad")
    failed = next(c for c in bad["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PyTorchJobFailed" and "1 Worker replica(s) failed" in failed["message"]
    kube.custom.delete_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", "bad")
    assert not [p for p in core.list_namespaced_pod(ns).items if p.metadata.name.startswith("bad-")]
    assert fake.controllers.kubeflow


def test_kubeflow_and_trainjob_status_helpers(kube: KubeEnv) -> None:
    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    require_crd(kube, "trainer.kubeflow.org", "v1alpha1", "trainjobs")
    if kube.fake is not None:
        kube.fake.controllers.kubeflow = False
    ns, kubelet = kube.namespace, kube.kubelet
    job = kube.custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", ns, "pytorchjobs", pytorchjob("j", 1, kube.scheduler_name)
    )
    kubelet.kubeflow_created(job)
    kubelet.kubeflow_running(job, replica_statuses={"Master": {"active": 1}, "Worker": {"active": 1}})
    done = kubelet.kubeflow_failed(job, message="PyTorchJob j is failed because 1 Worker replica(s) failed.")
    states = {c["type"]: c["status"] for c in done["status"]["conditions"]}
    assert states == {"Created": "True", "Running": "False", "Failed": "True"}
    assert kubelet.kubeflow_succeeded(job)["status"]["conditions"] == done["status"]["conditions"]  # Failed is final

    trainjob = kube.custom.create_namespaced_custom_object(
        "trainer.kubeflow.org",
        "v1alpha1",
        ns,
        "trainjobs",
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "tj"},
            "spec": {"runtimeRef": {"name": "torch-distributed"}},  # required by the CRD
        },
    )
    complete = kubelet.trainjob_complete(trainjob)["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in complete] == [("Complete", "True", "AllJobsCompleted")]
    ref = CustomRef("trainer.kubeflow.org", "v1alpha1", "trainjobs", "tj", ns)
    failed = kubelet.trainjob_failed(ref)["status"]["conditions"]
    assert {c["type"] for c in failed} == {"Complete", "Failed"}
    client.V1Condition.from_dict(failed[-1])  # the metav1.Condition shape the client models expect


# ------------------------------------------------------------------------------------------------------ lifecycle
def test_real_cluster_mode_against_a_fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``ODIN_TEST_KUBECONFIG`` path of the fixture, pointed at a fake that plays the real cluster: the kubelet
    must not bind pods or set logs, fake-only tests must skip, and the test namespace must go away afterwards."""
    for proxy in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with FakeApiServer() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv(KUBECONFIG_ENV, str(kubeconfig))
        with kube_environment() as env:
            assert env.fake is None and not env.kubelet.binds_pods and not env.kubelet.can_set_logs
            assert env.kubeconfig == kubeconfig
            namespace = env.namespace
            pod = env.core.create_namespaced_pod(namespace, env.pod_manifest("p"))
            env.kubelet.succeed(pod)
            got = env.core.read_namespaced_pod("p", namespace)
            assert got.status.phase == "Succeeded" and got.spec.node_name is None
            assert got.spec.scheduler_name == UNSERVED_SCHEDULER
            assert env.kubelet.set_log(pod, "ignored\n") is False
            assert env.core.read_namespaced_pod_log("p", namespace) == ""
            with pytest.raises(pytest.skip.Exception):
                env.require_fake()
        assert cluster.get_object(NAMESPACES, None, namespace) is None
        assert cluster.requests.count(verb="delete", resource="namespaces") == 1


def test_pod_status_subresource_put(kube: KubeEnv) -> None:
    ns, core = kube.namespace, kube.core
    core.create_namespaced_pod(ns, kube.pod_manifest("p", labels={"a": "1"}))
    pod = core.read_namespaced_pod_status("p", ns)
    pod.status.phase = "Running"
    pod.metadata.labels = {"a": "2"}  # kept: a pod's /status strategy resets only spec and a few metadata fields
    pod.spec.active_deadline_seconds = 60  # ignored: /status never writes the spec
    replaced = core.replace_namespaced_pod_status("p", ns, pod)
    assert replaced.status.phase == "Running" and replaced.metadata.labels == {"a": "2"}
    assert replaced.spec.active_deadline_seconds is None
    pod.spec.containers[0].image = "busybox:1.37"
    pod.status.phase = "Failed"
    with pytest.raises(ApiException) as err:  # stale resourceVersion
        core.replace_namespaced_pod("p", ns, pod)
    assert err.value.status == 409


def test_status_subresource_keeps_metadata_of_pods_and_jobs_not_of_custom_objects(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: `pods/status` and `jobs/status` keep label changes and reset ownerReferences;
    a custom resource's `/status` keeps nothing but status."""
    ns, core = kube.namespace, kube.core
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_pod(ns, kube.pod_manifest("p", labels={"a": "1"}))
    patched = core.patch_namespaced_pod_status(
        "p", ns, {"metadata": {"labels": {"a": "2"}, "ownerReferences": [ref]}, "status": {"phase": "Running"}}
    )
    assert patched.metadata.labels == {"a": "2"} and patched.metadata.owner_references is None
    kube.batch.create_namespaced_job(ns, kube.job_manifest("j", labels={"a": "1"}))
    job = kube.batch.patch_namespaced_job_status("j", ns, {"metadata": {"labels": {"a": "2"}}, "status": {"active": 0}})
    assert job.metadata.labels == {"a": "2"}

    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "pt", "labels": {"a": "1"}},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": kube.pod_manifest()["spec"]}}}},
    }
    kube.custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", body)
    got = kube.custom.patch_namespaced_custom_object_status(
        "kubeflow.org",
        "v1",
        ns,
        "pytorchjobs",
        "pt",
        {"metadata": {"labels": {"a": "2"}}, "status": {"conditions": []}},
    )
    assert got["metadata"]["labels"] == {"a": "1"}


def test_pod_naming_a_missing_service_account_is_forbidden(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: ServiceAccount admission answers 403, naming the account."""
    ns, core = kube.namespace, kube.core
    manifest = kube.pod_manifest("p")
    manifest["spec"]["serviceAccountName"] = "trainer"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, manifest)
    status = status_of(err.value)
    assert err.value.status == 403 and status["reason"] == "Forbidden"
    assert f'error looking up service account {ns}/trainer: serviceaccount "trainer" not found' in status["message"]
    core.create_namespaced_service_account(ns, {"metadata": {"name": "trainer"}})
    created = wait_for(lambda: _created_or_none(core, ns, manifest), 30)  # a real cluster's cache may lag a moment
    assert created.spec.service_account_name == "trainer"


def _created_or_none(core: Any, ns: str, manifest: dict[str, Any]) -> Any:
    try:
        return core.create_namespaced_pod(ns, manifest)
    except ApiException as e:
        if e.status == 403:
            return None
        raise


def test_an_exhausted_resource_quota_answers_403_until_a_pod_finishes(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: quota admission answers 403 `exceeded quota`; a finished pod frees its slot."""
    ns, core = kube.namespace, kube.core
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    first = wait_for(lambda: _created_or_none(core, ns, kube.pod_manifest("first")), 30)  # the quota is counted
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, kube.pod_manifest("second"))
    status = status_of(err.value)
    assert err.value.status == 403 and status["reason"] == "Forbidden"
    assert (
        (status["message"])
        == 'pods "second" is forbidden: exceeded quota: one-pod, requested: pods=1, used: pods=1, limited: pods=1'
    )
    kube.kubelet.succeed(first)
    assert wait_for(lambda: _created_or_none(core, ns, kube.pod_manifest("second")), 30)


def test_list_resource_version_match_answers_410_for_an_old_version_and_504_for_a_future_one(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: `resourceVersionMatch=NotOlderThan` with a compacted version is 410 Expired."""
    ns, core = kube.namespace, kube.core
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    listed = core.list_namespaced_config_map(ns, resource_version=rv, resource_version_match="NotOlderThan")
    assert [c.metadata.name for c in listed.items if c.metadata.name == "a"] == ["a"]
    if kube.fake is not None:
        kube.fake.expire_history()  # what etcd compaction does to every version handed out so far
        old = rv
    else:
        old = "1"  # long compacted on any cluster that has run for a few minutes
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, resource_version=old, resource_version_match="NotOlderThan")
    assert err.value.status == 410 and status_of(err.value)["reason"] == "Expired"
    with pytest.raises(ApiException) as err:
        future = str(int(core.list_namespaced_config_map(ns).metadata.resource_version) + 1_000_000)
        core.list_namespaced_config_map(ns, resource_version=future, resource_version_match="NotOlderThan")
    assert err.value.status == 504 and "Too large resource version" in status_of(err.value)["message"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, resource_version_match="NotOlderThan")
    assert err.value.status == 422


def test_custom_objects_are_validated_against_their_crd(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: a custom object missing a field its CRD requires is 422 Invalid."""
    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "bad"}, "spec": {}}
    with pytest.raises(ApiException) as err:
        kube.custom.create_namespaced_custom_object("kubeflow.org", "v1", kube.namespace, "pytorchjobs", body)
    status = status_of(err.value)
    assert err.value.status == 422 and status["reason"] == "Invalid"
    assert {"field": "spec.pytorchReplicaSpecs", "reason": "FieldValueRequired", "message": "Required value"} in (
        status["details"]["causes"]
    )
    body["spec"] = {"pytorchReplicaSpecs": {"Master": {"replicas": "one"}}}
    with pytest.raises(ApiException) as err:
        kube.custom.create_namespaced_custom_object("kubeflow.org", "v1", kube.namespace, "pytorchjobs", body)
    assert err.value.status == 422 and "spec.pytorchReplicaSpecs.Master.replicas" in status_of(err.value)["message"]


def test_custom_objects_lose_unknown_fields_with_a_warning_or_are_refused_under_strict_validation(
    kube: KubeEnv,
) -> None:
    """The apiserver prunes fields a structural schema does not declare: a `Warning` header by default, 400 under
    `fieldValidation=Strict`."""
    require_crd(kube, "kubeflow.org", "v1", "pytorchjobs")
    args = ("kubeflow.org", "v1", kube.namespace, "pytorchjobs")
    body = pytorchjob("typo", 1, kube.scheduler_name)
    body["spec"]["pytorchReplicaSpecs"]["Master"]["replcas"] = 2
    with pytest.raises(ApiException) as err:
        kube.custom.create_namespaced_custom_object(*args, body, field_validation="Strict")
    assert err.value.status == 400
    assert 'unknown field "spec.pytorchReplicaSpecs.Master.replcas"' in status_of(err.value)["message"]
    created, code, headers = kube.custom.create_namespaced_custom_object_with_http_info(*args, body)
    assert code == 201 and "replcas" not in created["spec"]["pytorchReplicaSpecs"]["Master"]
    assert 'unknown field \\"spec.pytorchReplicaSpecs.Master.replcas\\"' in headers.get("Warning", "")


def test_a_plugin_crd_registered_from_its_yaml_is_served_and_validated(kube: KubeEnv, tmp_path: Path) -> None:
    fake = kube.require_fake("registers a CRD in the fake; on a cluster, install it")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "rayjobs.ray.io"},
        "spec": {
            "group": "ray.io",
            "names": {"kind": "RayJob", "plural": "rayjobs", "singular": "rayjob", "listKind": "RayJobList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["entrypoint"],
                                    "properties": {"entrypoint": {"type": "string"}},
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }
    path = tmp_path / "rayjobs.yaml"
    path.write_text(json.dumps(crd))
    [kind] = fake.register_crd(path)
    assert (kind.group, kind.version, kind.plural, kind.namespaced, "status" in kind.subresources) == (
        "ray.io", "v1", "rayjobs", True, True,
    )  # fmt: skip
    args = ("ray.io", "v1", kube.namespace, "rayjobs")
    body: dict[str, Any] = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "r"}, "spec": {}}
    with pytest.raises(ApiException) as err:
        kube.custom.create_namespaced_custom_object(*args, body)
    assert err.value.status == 422
    body["spec"] = {"entrypoint": "python tune.py"}
    assert kube.custom.create_namespaced_custom_object(*args, body)["spec"] == {"entrypoint": "python tune.py"}


def test_pod_status_subresource_accepts_any_phase_transition(kube: KubeEnv) -> None:
    """Seen on kube-apiserver v1.36: `pods/status` takes Succeeded -> Running (a terminal phase is final only by the
    kubelet's rule, and the fake must not refuse what the executor may meet)."""
    ns, core = kube.namespace, kube.core
    core.create_namespaced_pod(ns, kube.pod_manifest("p"))
    for phase in ("Succeeded", "Running", "Failed", "Pending"):
        core.patch_namespaced_pod_status("p", ns, {"status": {"phase": phase}})
        assert core.read_namespaced_pod_status("p", ns).status.phase == phase


def test_server_lifecycle_and_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUBECONFIG_ENV, raising=False)
    server = FakeApiServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    with server, server.api_client() as api_client:
        assert api_client.configuration.host == server.url and server.url.startswith("http://127.0.0.1:")
        core: Any = client.CoreV1Api(api_client)
        assert core.read_namespace("default").status.phase == "Active"
    server.stop()  # idempotent
    with kube_environment(job_controller=False) as env:
        assert env.fake is not None and not env.fake.controllers.job
        assert env.namespace.startswith("odin-test-")
