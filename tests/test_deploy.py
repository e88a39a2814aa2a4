"""deploy/: every manifest is valid Kubernetes, and the executor's Role grants what each resource handler needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from odin.controller.executors.kubernetes import HandlerRegistry

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, "1.31", strict=True)


def test_kustomizations_list_existing_files() -> None:
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text()).get("resources", []):
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def test_the_role_grants_every_handler_what_the_executor_does() -> None:
    [role] = [d for _, d in documents() if d["kind"] == "Role" and d["metadata"]["name"] == "odin-executor"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    for handler in HandlerRegistry.load().all():
        verbs = granted.get((handler.kind.group, handler.kind.plural), set())
        assert {"create", "get", "list", "watch", "delete"} <= verbs, handler.kind
    assert granted[("", "pods/log")] == {"get"}
    assert granted[("", "events")] == {"list"}
    assert granted[("", "configmaps")] == {"create", "list", "delete"}
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
