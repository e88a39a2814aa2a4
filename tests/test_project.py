"""Guards on the project itself: packaging and the README's promises to CI.

The layer rules (who may import whom, which package owns pygit2, kubernetes and sqlalchemy, no new cycles) are
import-linter contracts in pyproject.toml, checked by scripts/check and by the last test here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def test_the_readme_commands_install_what_ci_tested() -> None:
    """Both README commands install through constraints.txt, so a fresh clone next month gets CI's versions."""
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert commands
    assert all("pip install -c constraints.txt " in c for c in commands)


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            parsed = Requirement(requirement)
            (specifier,) = parsed.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(parsed.name)] = Version(specifier.version)
    return pins


def test_constraints_pin_every_declared_dependency_within_its_floor() -> None:
    """constraints.txt is regenerated (`bash scripts/lock`) whenever pyproject.toml's dependencies change."""
    pins = _pins()
    declared = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["test"]]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not pinned: run `bash scripts/lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}: run `bash scripts/lock`"
        )


def test_every_package_folder_is_listed_for_installation() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for package, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed


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
        # The web console, whole: `pip install .` serves it offline (docs/console.md).
        "odin/api/console/templates/run.html",
        "odin/api/console/static/run.js",
        "odin/api/console/static/console.css",
        "odin/api/console/static/redoc/redoc.standalone.js",
        "odin/api/console/static/redoc/LICENSE",
    ):
        assert expected in names
    assert not any(n.startswith("odin/__init__") for n in names), "odin is a namespace: no package owns it"


def test_import_contracts_cover_every_folder_and_hold() -> None:
    config = PYPROJECT["tool"]["importlinter"]
    assert set(config["root_packages"]) == set(MAPPING), "a folder outside the contracts would go unchecked"
    assert "lint_imports_command" in (ROOT / "scripts" / "check").read_text()
    lint_imports = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    result = subprocess.run(
        [sys.executable, "-c", lint_imports, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
