"""The command lines import only what the command asked for (issue 15: start-up time, measured as whole processes).

Each command runs as a real process started through the installed console script; at exit the process writes the
top-level packages in `sys.modules` to a file. The assertions are about what was imported, not about timings (which
depend on the machine): a module-level `import rich` or `from odin.api.app import ...` on a start-up path fails here.
The rule itself is in docs/architecture.md ("Start-up"); benchmarks/bench_startup.py measures the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import OdinServer

BIN = Path(sys.executable).parent

# Runs a console script as its own process would (`__main__`), and records the modules it imported (every name in
# `sys.modules`: a package's submodules with their dotted names, and the package itself, as importing one imports it).
PROBE = """
import atexit, json, os, runpy, sys

def record():
    with open(os.environ["ODIN_TEST_IMPORTED"], "w") as f:
        json.dump(sorted(sys.modules), f)

atexit.register(record)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# What neither `--help` may import: the server, the store, the cluster, the optional integrations, and rich, YAML,
# msgspec, pydantic and HTTP (imported by the commands that use them, never to print help).
NOT_FOR_HELP = {
    "litestar",
    "uvicorn",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "kubernetes",
    "urllib3",
    "boto3",
    "botocore",
    "mlflow",
    "jinja2",
    "rich",
    "yaml",
    "msgspec",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "pygit2",
    "jsonschema",
    "argon2",
    "asyncio",
}

# What a list command of `odinctl` does not need: the server's side, and the asynchronous clients of `watch`.
NOT_FOR_A_LIST = NOT_FOR_HELP - {"rich", "msgspec", "httpx", "pydantic"} | {"websockets"}

# What `odin run` of a local pipeline does not need: the API, the cluster, the optional integrations, git; nor Alembic
# (its new store is made from the models), jsonschema (a valid pipeline passes the compiled check alone) or croniter
# (no schedule); nor SQLModel and SQLAlchemy's ORM (the store's queries use the Core tables generated from the models,
# controller/store/tables.py), nor typer and the pydantic it validates command lines with (a well-formed `odin run`
# line is read by cli/run_line.py); nor psutil (only for adopting a live task after a restart, or where Linux has no
# pidfds) or the repository configuration's module (`.odin.yml`: odin.schema imports it on first use); nor rich
# (the lines a run prints are cli/styled.py's; a failed run's report and the error messages import it).
NOT_FOR_LOCAL_RUN = {
    "rich",
    "psutil",
    "odin.schema.repoconfig",
    "odin.schema.report",
    "sqlmodel",
    "sqlalchemy.orm",
    "typer",
    "pydantic",
    "jsonschema",
    "croniter",
    "alembic",
    "litestar",
    "uvicorn",
    "jinja2",
    "kubernetes",
    "urllib3",
    "boto3",
    "botocore",
    "mlflow",
    "pygit2",
}


def imported_by(
    tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    record = tmp_path / f"imported-{script}.json"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    full_env.update({"ODIN_TEST_IMPORTED": str(record), "ODIN_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"})
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(BIN / script), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert record.exists(), f"{script} {' '.join(args)} wrote no record:\n{done.stdout}\n{done.stderr}"
    return set(json.loads(record.read_text())), done


@pytest.mark.parametrize("script", ["odinctl", "odin"])
def test_help_imports_nothing_heavy(tmp_path: Path, script: str) -> None:
    imported, done = imported_by(tmp_path, script, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout, "the help itself is printed"
    assert "odin" in imported, "the probe saw the command line's own modules"
    assert imported & NOT_FOR_HELP == set(), f"`{script} --help` imported {sorted(imported & NOT_FOR_HELP)}"


def test_a_usage_error_imports_nothing_heavy(tmp_path: Path) -> None:
    """A mistyped command is answered without the server, the store or rich (typer itself validates through pydantic
    once it parses a command line, so pydantic is its cost, not Odin's)."""
    imported, done = imported_by(tmp_path, "odinctl", "no-such-command")
    assert done.returncode == 2
    assert "No such command" in done.stderr
    assert imported & (NOT_FOR_HELP - {"pydantic"}) == set()


def test_a_list_command_imports_the_client_but_no_server_or_websockets(tmp_path: Path) -> None:
    """`odinctl runs` against a server that is not there: the whole command path is imported (client, table), and
    the answer is the exit code of an unreachable server."""
    env = {"ODIN_SERVER": "http://127.0.0.1:9", "ODIN_TOKEN": "odin_x", "ODIN_CONFIG_DIR": str(tmp_path / "config")}
    imported, done = imported_by(tmp_path, "odinctl", "runs", env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "httpx" in imported, "the probe saw the HTTP client"
    assert imported & NOT_FOR_A_LIST == set(), f"`odinctl runs` imported {sorted(imported & NOT_FOR_A_LIST)}"


@pytest.mark.slow  # a few seconds: the run's store is created and migrated
def test_odin_run_of_a_local_pipeline_imports_no_server_cluster_or_integrations(tmp_path: Path) -> None:
    pipeline = tmp_path / "hello"
    pipeline.mkdir()
    (pipeline / "main.yml").write_text("name: hello\ntasks:\n  - name: say\n    image: busybox\n    command: echo hi\n")
    imported, done = imported_by(tmp_path, "odin", "run", str(pipeline / "main.yml"), "--data-dir", str(tmp_path / "r"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout + done.stderr, "the run really ran"
    assert {"sqlalchemy", "odin"} <= imported, "the probe saw the store the run is recorded in"
    assert imported & NOT_FOR_LOCAL_RUN == set(), f"`odin run` imported {sorted(imported & NOT_FOR_LOCAL_RUN)}"


@pytest.mark.slow  # a run, as above
def test_odin_run_lines_the_short_path_does_not_read_go_through_typer(tmp_path: Path) -> None:
    """A line cli/run_line.py leaves alone (here a parameter without `=`) is typer's to answer, as before."""
    pipeline = tmp_path / "hello"
    pipeline.mkdir()
    (pipeline / "main.yml").write_text("name: hello\ntasks:\n  - name: say\n    image: busybox\n    command: echo hi\n")
    imported, done = imported_by(tmp_path, "odin", "run", str(pipeline), "-p", "no-equals-sign")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "parameter 'no-equals-sign' must look like key=value" in done.stderr
    assert "typer" in imported


# What `odin serve` with the defaults (local executor, local artifacts, no MLflow, no Midgard agents) does not load;
# nor, on its way to ready, Alembic (a new store is made from the models, a current one is told by one query), the
# outbound HTTP client and what it drags in (httpx, rich, pygments: made by the first notification sent), jsonschema
# (a valid pipeline passes the compiled check) or attrs (Litestar's implicit attrs plugin is left out).
NOT_FOR_A_LOCAL_SERVER = {
    "kubernetes", "urllib3", "boto3", "botocore", "mlflow", "grpc",
    "alembic", "httpx", "rich", "pygments", "jsonschema", "attr",
}  # fmt: skip


@pytest.mark.slow  # `odin serve` up, healthy and stopped: several seconds on a busy machine
def test_odin_serve_with_the_defaults_loads_no_optional_integration(tmp_path: Path) -> None:
    record = tmp_path / "imported-serve.json"
    server = OdinServer(
        tmp_path / "data",
        {"ODIN_TEST_IMPORTED": str(record), "ODIN_LOG_LEVEL": "WARNING"},
        command=[sys.executable, "-c", PROBE, str(BIN / "odin")],
    )
    with server:
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert server.proc is not None and server.proc.returncode == 0, server.log()
    imported = set(json.loads(record.read_text()))
    assert {"litestar", "sqlalchemy"} <= imported, "the probe saw the server's own stack"
    loaded = imported & NOT_FOR_A_LOCAL_SERVER
    assert loaded == set(), f"`odin serve` loaded {sorted(loaded)}"


def test_results_takes_the_short_path_without_typer_or_the_client_stack(tmp_path: Path) -> None:
    """`odinctl results` (issue 11: 100 ms, whole process) runs on the standard library: not even typer, whose
    command-line validation imports pydantic, nor httpx, msgspec or rich."""
    env = {"ODIN_SERVER": "http://127.0.0.1:9", "ODIN_TOKEN": "odin_x", "ODIN_CONFIG_DIR": str(tmp_path / "config")}
    imported, done = imported_by(tmp_path, "odinctl", "results", "-p", "train", "--since", "30d", env=env)
    assert done.returncode == 3 and "cannot reach http://127.0.0.1:9" in done.stderr, done.stdout + done.stderr
    assert "odin" in imported, "the probe saw the command line's own modules"
    heavy = imported & (NOT_FOR_HELP | {"typer", "click", "certifi"})
    assert heavy == set(), f"`odinctl results` imported {sorted(heavy)}"
