"""The `odin_kube` pytest plugin as a project that merely has Odin installed sees it: `kube_api` with no conftest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from odin.testing.kube import KUBECONFIG_ENV, FakeApiServer, KubeEnv

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[2]
PROXIES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def test_kube_api_has_a_kubeconfig_for_its_cluster_and_namespace(
    kube_api: KubeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in PROXIES:
        monkeypatch.delenv(proxy, raising=False)
    kube_api.core.create_namespaced_config_map(kube_api.namespace, {"metadata": {"name": "marker"}})
    _, current = kubernetes.config.list_kube_config_contexts(str(kube_api.kubeconfig))  # type: ignore[no-untyped-call]
    if kube_api.fake is not None:
        assert current["context"]["namespace"] == kube_api.namespace
    with kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig)) as other:  # type: ignore[no-untyped-call]
        core: Any = kubernetes.client.CoreV1Api(other)
        assert core.read_namespaced_config_map("marker", kube_api.namespace).metadata.name == "marker"


def test_kube_fake_is_the_server_behind_kube_api(kube_api: KubeEnv, kube_fake: FakeApiServer) -> None:
    assert kube_fake is kube_api.fake
    assert kube_api.api_client.configuration.host == kube_fake.url


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {"job_controller": False}


def test_kube_api_options_reach_the_fake(kube_api: KubeEnv) -> None:
    fake = kube_api.require_fake("inspects the fake's controllers")
    assert not fake.controllers.job


def _documented_example() -> str:
    doc = (ROOT / "docs" / "testing-kubernetes.md").read_text()
    section = doc[doc.index("## Testing a resource-handler plugin") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


@pytest.mark.slow  # a second pytest process that imports Odin and the Kubernetes client
def test_the_documented_plugin_example_passes_in_a_project_of_its_own(tmp_path: Path) -> None:
    """docs/testing-kubernetes.md's example, verbatim, in a directory with no conftest and no Odin pytest settings:
    only the installed entry point can give it `kube_api`."""
    project = tmp_path / "odin-rayjob"
    (project / "my_odin_plugins").mkdir(parents=True)
    (project / "my_odin_plugins" / "__init__.py").write_text("")
    shutil.copy(ROOT / "tests" / "kube" / "plugin_rayjob.py", project / "my_odin_plugins" / "ray.py")
    (project / "tests").mkdir()
    (project / "tests" / "test_rayjob.py").write_text(_documented_example())
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--strict-markers -W error"\n')
    # Always the fake: on a real cluster the example would need KubeRay's CRD installed.
    drop = {*PROXIES, KUBECONFIG_ENV}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(project)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
