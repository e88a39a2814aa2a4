"""`POST /v1/validate` and `PUT .../files/main.yml.jinja2` of a template over real HTTP against a real `odin serve`
and a real git remote: the template is rendered in the server's validation workers (under `ODIN_VALIDATION_TIMEOUT`),
a hostile one is a problem within its bounds, the server keeps answering, and a template that does not render to a
valid pipeline is never committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Served, start_server
from tests.support.wait import wait_until

FILE = "sweep/main.yml.jinja2"
TEMPLATE = """\
tasks:
{% for lr in (lrs | default("0.1,0.2")).split(",") %}
  - {name: train-{{ loop.index }}, image: busybox, command: [echo, "{{ lr }}"]}
{% endfor %}
"""
LOOPING = "x: 1\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("templates")
    # A CPU budget shorter than the renderer's own 2 s deadline: a problem naming it says the worker's budget applied.
    served = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", {"ODIN_VALIDATION_TIMEOUT": "0.5"})
    try:
        yield served
    finally:
        served.release_all()
        served.server.stop()


def _validate(server: Served, content: str) -> httpx.Response:
    return server.post("/v1/validate", json={"file": FILE, "content": content})


def test_a_template_is_rendered_with_its_defaults_then_validated(server: Served) -> None:
    r = _validate(server, TEMPLATE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["valid"] and body["problems"] == []
    assert [t["name"] for t in body["spec"]["tasks"]] == ["train-1", "train-2"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("x: 1\n{% set n = 10 ** 7 %}{{ (7 ** n) % 7 }}\n", "is a number of more than 4096 bits"),
        ("x: 1\ny: {{ 'x' * 10**10 }}\n", "makes 10,000,000,000 characters"),
        ("x: {{ 'x'|center(10**9) }}\n", "center makes 1,000,000,000 characters"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"),
        (LOOPING, "validation took longer than 0.5 s"),
    ],
    ids=["power", "repetition", "center", "recursion", "nested loops"],
)
def test_a_hostile_template_is_a_problem_within_its_bounds(server: Served, content: str, message: str) -> None:
    started = time.monotonic()
    r = _validate(server, content)
    assert time.monotonic() - started < 10
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["valid"] and body["spec"] is None
    [problem] = body["problems"]
    assert problem["file"] == FILE and message in problem["message"], problem


def test_the_server_answers_while_a_template_renders(server: Served) -> None:
    answers: list[httpx.Response] = []
    validating = threading.Thread(target=lambda: answers.append(_validate(server, LOOPING)))
    validating.start()
    latencies: list[float] = []
    while validating.is_alive():
        started = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
        latencies.append(time.monotonic() - started)
    validating.join()
    # Rendering runs in a worker process: /healthz is answered throughout, not after it (generous for a busy machine).
    assert latencies, "no /healthz was answered while the template rendered"
    assert max(latencies) < 2, latencies
    [answer] = answers
    assert "validation took longer than 0.5 s" in answer.json()["problems"][0]["message"]


def _put(server: Served, path: str, content: str) -> httpx.Response:
    return server.request("PUT", f"/v1/pipelines/{path}", json={"content": content})


@pytest.mark.parametrize(
    "content, where, message",
    [
        (TEMPLATE.replace("command:", "depnds: [], command:"), ("sweep/main.yml.jinja2 (rendered)", 3), "depnds"),
        ("tasks:\n  - {name: a, image: x, command: [echo, '{{ lr }}']}\n", ("sweep/main.yml.jinja2", 2), "'lr'"),
        (LOOPING, ("sweep/main.yml.jinja2", 1), "validation took longer than 0.5 s"),
    ],
    ids=["invalid when rendered", "undefined variable", "nested loops"],
)
def test_a_template_that_does_not_render_to_a_valid_pipeline_is_not_committed(
    server: Served, content: str, where: tuple[str, int], message: str
) -> None:
    before = server.remote.remote_tip()
    r = _put(server, "sweep/files/main.yml.jinja2", content)
    assert r.status_code == 422, r.text
    body = r.json()
    assert "sweep/main.yml.jinja2 is not a valid pipeline; nothing was committed" in body["detail"]
    problem = body["extra"]["problems"][0]
    assert (problem["file"], problem["line"]) == where and message in problem["message"], problem
    # Beside a main.yml too (which the controller reads first): a template is a pipeline file whatever shadows it.
    assert _put(server, "ok/files/main.yml.jinja2", content).status_code == 422
    assert server.remote.remote_tip() == before, "nothing was committed"


def test_a_valid_template_creates_a_pipeline_whose_files_are_then_editable(server: Served) -> None:
    r = _put(server, "sweep/files/main.yml.jinja2", TEMPLATE)
    assert r.status_code == 200, r.text
    written = r.json()
    assert server.remote.remote_tip() == written["commit_sha"]
    server.remote.pull()
    assert server.remote.files(written["commit_sha"])["sweep/main.yml.jinja2"] == TEMPLATE.encode()
    sweep = wait_until(lambda: server.get("/v1/pipelines/sweep").json().get("tasks"), 30)
    assert [t["name"] for t in sweep] == ["train-1", "train-2"], "the controller renders it as the API validated it"
    helper = _put(server, "sweep/files/run.sh", "echo\n")  # no main.yml: the template makes it a pipeline
    assert helper.status_code == 200, helper.text
    server.remote.pull()
