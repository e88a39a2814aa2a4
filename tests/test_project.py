"""Guards on the project itself: packaging, layering, and the README's promises to CI."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAPPING: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, "the README gives exactly two commands for a fresh machine"
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in ci.splitlines()


def test_every_package_folder_is_listed_for_installation() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for package, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[tuple[str, Path]]:
    package = next(p for p, f in MAPPING.items() if f == folder)
    out = []
    for path in (ROOT / folder).rglob("*.py"):
        rel = path.relative_to(ROOT / folder).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out.append((".".join([package, *parts]), path))
    return out


@pytest.mark.parametrize(
    ("library", "allowed_prefix"),
    [
        ("pygit2", ("odin.controller.git",)),
        # The Kubernetes fake and its kubelet speak to the official client as a test tool; nothing in Odin imports them.
        ("kubernetes", ("odin.controller.executors.kubernetes", "odin.testing.kube")),
    ],
)
def test_only_one_adapter_imports_each_external_system(library: str, allowed_prefix: tuple[str, ...]) -> None:
    offenders = [
        module
        for folder in MAPPING.values()
        for module, path in _modules(folder)
        if any(i == library or i.startswith(library + ".") for i in _imports(path))
        and not module.startswith(allowed_prefix)
    ]
    assert offenders == []


def test_schema_knows_nothing_of_the_rest_of_odin() -> None:
    offenders = [
        (module, i)
        for module, path in _modules("schema")
        for i in _imports(path)
        if i.startswith("odin.") and not i.startswith("odin.schema")
    ]
    assert offenders == []


def test_controller_does_not_depend_on_api_or_cli() -> None:
    offenders = [
        (module, i)
        for module, path in _modules("controller")
        for i in _imports(path)
        if i.startswith(("odin.api", "odin.cli", "odin.webhooks"))
    ]
    assert offenders == []


@pytest.mark.slow
def test_wheel_installs_everything_under_the_odin_namespace(tmp_path: Path) -> None:
    # With build isolation, as a user's `pip install .`: the venv's own setuptools may be older than the floor.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("odin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"odin", next(t for t in top if t.endswith(".dist-info"))}
    for expected in (
        "odin/controller/engine/decide.py",
        "odin/schema/pipeline.schema.json",
        "odin/controller/store/migrations/versions/0001_initial_schema.py",
        "odin/controller/store/migrations/script.py.mako",
        "odin/api/app.py",
        "odin/cli/odinctl.py",
        "odin/testing/kube/fake_apiserver.py",
        "odin/testing/kube/crds/kubeflow.org_pytorchjobs.yaml",
    ):
        assert expected in names
    assert not any(n.startswith("odin/__init__") for n in names), "odin is a namespace: no package owns it"


def test_webhooks_depend_on_the_controller_not_on_api_or_cli() -> None:
    offenders = [
        (module, i)
        for module, path in _modules("webhooks")
        for i in _imports(path)
        if i.startswith(("odin.api", "odin.cli"))
    ]
    assert offenders == []


def test_odin_never_imports_its_test_support() -> None:
    """`odin.testing` ships in the wheel for plugin authors' tests; no part of Odin itself may depend on it."""
    offenders = [
        (module, i)
        for folder in MAPPING.values()
        if folder != "testing"
        for module, path in _modules(folder)
        for i in _imports(path)
        if i == "odin.testing" or i.startswith("odin.testing.")
    ]
    assert offenders == []
