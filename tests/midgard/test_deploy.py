"""deploy/midgard: the DaemonSet's command line is one `midgard` accepts, and every optional component renders into
manifests that validate against the Kubernetes schemas (tests/test_deploy.py validates the plain files)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from odin.midgard.cli import build_parser

MIDGARD = Path(__file__).resolve().parents[2] / "deploy" / "midgard"


def _daemonset(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    return ds


def test_daemonset_runs_a_command_midgard_accepts() -> None:
    ds = yaml.safe_load((MIDGARD / "daemonset.yaml").read_text())
    [container] = ds["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["midgard"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.bind == ("0.0.0.0", 9090)
    assert args.token_file == "/etc/midgard/token"
    assert container["ports"][0]["containerPort"] == 9090
    service = yaml.safe_load((MIDGARD / "service.yaml").read_text())
    assert service["spec"]["clusterIP"] == "None"  # headless: one EndpointSlice entry per agent


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("components", [[], ["pod-resources"], ["host-processes"], ["pod-resources", "host-processes"]])
def test_kustomization_with_components_renders_valid_manifests(tmp_path: Path, components: list[str]) -> None:
    work = tmp_path / "midgard"
    shutil.copytree(MIDGARD, work)
    kustomization = yaml.safe_load((work / "kustomization.yaml").read_text())
    kustomization["components"] = [f"components/{c}" for c in components]
    (work / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = subprocess.run(["kubectl", "kustomize", str(work)], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.31", strict=True)
    spec = _daemonset(docs)["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert ("/var/lib/kubelet/pod-resources" in mounts) == ("pod-resources" in components)
    assert spec.get("hostPID", False) == ("host-processes" in components)
    assert ("/var/log/pods" in mounts) == ("host-processes" in components)
