"""A real `odin serve` per test module and database backend (SQLite and Postgres), following a real git remote.

Starting a server takes a couple of seconds, so one serves a whole module; tests keep to their own pipelines, runs
and users so they do not depend on each other's order. Everything goes over real HTTP (and real WebSockets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from odin.api.client import OdinClient
from tests.support.git import GitRemote
from tests.support.postgres import scratch_database
from tests.support.server import OdinServer
from tests.support.wait import wait_until

PASSWORD = "correct-horse-battery"
JWT_SECRET = "test-secret-that-is-at-least-32-bytes-long!!"
TERMINAL = {"succeeded", "failed", "cancelled", "error"}


def pipelines(marks: Path) -> dict[str, str]:
    """The test repository: pipelines that succeed, fail until told not to, and wait to be released."""
    return {
        "ok/main.yml": (
            "name: ok\n"
            "params:\n  who: {default: world}\n  n: {type: integer, default: 1}\n"
            "tasks:\n"
            "  - {name: prep, image: busybox,"
            " command: [sh, -c, 'echo prep ${params.who}; echo data > ${RUN_PATH}/d']}\n"
            "  - {name: train, image: busybox, command: [sh, -c, 'cat ${RUN_PATH}/d; echo trained'], depends: prep}\n"
            "  - {name: report, image: busybox, command: [sh, -c, 'echo report'], depends: prep}\n"
        ),
        "ok/helper.sh": "echo helper\n",
        "flaky/main.yml": (
            "name: flaky\n"
            "tasks:\n"
            f"  - {{name: a, image: busybox,"
            f" command: [sh, -c, 'echo a >> {marks}/flaky-a; echo out > ${{RUN_PATH}}/a']}}\n"
            f"  - {{name: b, image: busybox, command: [sh, -c, 'cat ${{RUN_PATH}}/a && test -e {marks}/flaky-ok'],"
            " depends: a}\n"
            "  - {name: c, image: busybox, command: [sh, -c, 'echo c'], depends: b}\n"
            "  - {name: side, image: busybox, command: [sh, -c, 'echo side']}\n"
        ),
        "gate/main.yml": (
            "name: gate\n"
            "tasks:\n"
            f"  - {{name: hold, image: busybox, command: [sh, -c, 'while [ ! -e {marks}/go-$ODIN_RUN ]; do sleep 0.05;"
            " done; echo released']}\n"
            "  - {name: after, image: busybox, command: [sh, -c, 'echo after'], depends: hold}\n"
        ),
        "talky/main.yml": (
            "name: talky\n"
            "tasks:\n"
            "  - {name: talk, image: busybox, command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8; do echo line $i; done;"
            f" while [ ! -e {marks}/go-$ODIN_RUN ]; do sleep 0.05; done; echo bye; exit 3']}}\n"
        ),
        "serial/main.yml": (
            "name: serial\n"
            "concurrency: {limit: 1}\n"
            "tasks:\n"
            f"  - {{name: hold, image: busybox, command: [sh, -c, 'while [ ! -e {marks}/go-$ODIN_RUN ]; do sleep 0.05;"
            " done']}\n"
        ),
        "vision/detector/main.yml": "name: detector\ntasks:\n  - {name: t, image: busybox, command: [echo, nested]}\n",
        "made/main.yml": (
            "name: made\n"
            "tasks:\n"
            "  - {name: train, image: busybox,"
            " command: [sh, -c, 'printf w > $OUTPUT_PATH/model; echo 0.9 > $RESULTS_PATH/acc'],"
            " outputs: {artifacts: [model], results: [acc]}}\n"
            "  - {name: use, image: busybox, command: [sh, -c, 'echo ${tasks.train.results.acc}'], depends: train}\n"
        ),
    }


@dataclass
class Served:
    """A running server with its repository and an admin session."""

    server: OdinServer
    remote: GitRemote
    marks: Path
    admin_token: str
    backend: str
    db_url: str

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def request(
        self, method: str, path: str, token: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(token), **(headers or {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, token, **kwargs)

    def client(self, token: str | None = None) -> OdinClient:
        return OdinClient(self.url, token or self.admin_token)

    def login(self, username: str, password: str) -> str:
        r = httpx.post(f"{self.url}/v1/auth/token", json={"username": username, "password": password}, timeout=30)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def user(self, username: str, role: str, password: str = "a-long-password") -> str:
        """Create a user (if needed) and return a session token for them."""
        r = self.post("/v1/users", json={"username": username, "password": password, "role": role})
        assert r.status_code in (201, 409), r.text
        return self.login(username, password)

    def wait_run(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run: dict[str, Any] = self.get(f"/v1/runs/{run_id}").json()
            return run if run["status"] in TERMINAL else None

        return wait_until(done, timeout, interval=0.05, message=f"run {run_id} finishes")

    def start(self, pipeline: str, **body: Any) -> dict[str, Any]:
        r = self.post("/v1/runs", json={"pipeline": pipeline, **body})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def release(self, run_id: str) -> None:
        (self.marks / f"go-{run_id}").touch()

    def release_all(self) -> None:
        """Let every gated task that started finish: a local task outlives the server by design (restart adoption),
        so one a failed test never released would otherwise loop for ever after the suite."""
        run_ids = {started.name.removeprefix("pid-") for started in self.marks.glob("pid-*")}
        with contextlib.suppress(Exception):  # best effort: the server may be the thing that failed
            runs = self.get("/v1/runs", params={"limit": 500}).json()["items"]
            run_ids.update(str(r["id"]) for r in runs)  # a mark for a finished run is harmless
        for run_id in run_ids:
            self.release(run_id)


def start_server(tmp: Path, db_url: str, backend: str, extra_env: dict[str, str] | None = None) -> Served:
    marks = tmp / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    remote = GitRemote.create(tmp / "git")
    remote.commit(pipelines(marks), message="Add pipelines")
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_DATABASE_URL": db_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_RETRY_BACKOFF": "0.1",
        "ODIN_JWT_SECRET": JWT_SECRET,
        "ODIN_WS_POLL_INTERVAL": "0.1",
        "ODIN_WS_AUTH_TIMEOUT": "1",
        **(extra_env or {}),
    }
    server = OdinServer(tmp / "state", env).start()
    try:
        wait_until(lambda: "first sync" in server.log(), 60, message="the server synced the repository")
        r = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
    except BaseException:
        server.stop()
        raise
    return Served(server, remote, marks, r.json()["access_token"], backend, db_url)


@pytest.fixture(scope="module")
def module_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    backend: str = request.param
    if backend == "sqlite":
        yield backend, f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'odin.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with scratch_database(admin_url) as url:
        yield backend, url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses the module's server runs against SQLite and against real Postgres.
    if "module_db" in metafunc.fixturenames:
        metafunc.parametrize(
            "module_db",
            ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
            indirect=True,
            scope="module",
        )


@pytest.fixture(scope="module")
def served(module_db: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    backend, url = module_db
    s = start_server(tmp_path_factory.mktemp(f"served-{backend}"), url, backend)
    try:
        yield s
    finally:
        s.release_all()
        s.server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Schemathesis makes one item per API operation, named `test_x[GET /v1/runs]`, but under pytest 9 every one of
    # them gets the node id of the bare function. pytest-xdist keys results by node id, so it reported 1 of each 41
    # (and `-k`/`--lf` could not pick one operation). Give each the node id its name says.
    for item in items:
        expected = f"{item.parent.nodeid}::{item.name}" if item.parent is not None else item.nodeid
        if type(item).__name__ == "SchemathesisFunction" and item.nodeid != expected:
            if hasattr(item, "_id"):  # pytest >= 9.2 keeps the node id as a structured NodeId
                item._id = type(item._id).parse(expected)
            else:
                item._nodeid = expected
