"""The console's views of issue 12's second slice, in a real browser against a real `odin serve`: a commit's problems
with the lines they point at and the files it changed, a run's downloads, events and GPU usage, and two runs
compared. Screenshots go to each test's tmp dir."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from odin.controller.store.db import create_db_engine
from odin.controller.store.gpu_usage import UsageUpdate, record_gpu_usage
from tests.console.conftest import HELLO, PASSWORD, log_in
from tests.support.git import GitRemote
from tests.support.prefix_proxy import PrefixProxy
from tests.support.server import OdinServer, free_port
from tests.support.wait import wait_until

BAD = "name: bad\ntasks:\n  - name: a\n    image: busybox\n    command: [echo]\n    depends: nowhere\n"

PRODUCE = """\
name: produce
params:
  lr: {{default: "0.1"}}
tasks:
  - name: train
    image: busybox
    command: [sh, -c, {train}]
    outputs: {{artifacts: [{{name: model, path: model.bin}}], results: [acc]}}
"""


def produce(acc: str) -> str:
    train = f"printf weights-{acc} > $OUTPUT_PATH/model.bin; echo {acc} > $RESULTS_PATH/acc"
    return PRODUCE.format(train=json.dumps(train))


def api(server: OdinServer) -> httpx.Client:
    token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30)


def finished_run_of(http: httpx.Client, sha: str, pipeline: str) -> dict[str, Any]:
    """The run the server started by itself for a pushed commit, once it has ended."""

    def ended() -> dict[str, Any] | None:
        items = http.get("/v1/runs", params={"commit": sha, "pipeline": pipeline}).json()["items"]
        if not items:
            return None
        run: dict[str, Any] = http.get(f"/v1/runs/{items[0]['id']}").json()
        return run if run["status"] in ("succeeded", "failed", "error", "cancelled") else None

    return wait_until(ended, 60, interval=0.2, message=f"the run of {pipeline} at {sha[:7]} to end")


def test_commits_show_the_offending_lines_and_what_changed(
    console_server: OdinServer, git_remote: GitRemote, page: Page, shots: Path
) -> None:
    log_in(page, console_server)
    sha = git_remote.commit({"bad/main.yml": BAD, "bad/README.md": "notes\n"}, "a broken pipeline")
    entry = page.locator(f'li[data-sha="{sha}"]')

    def shown() -> bool:
        page.goto(f"{console_server.url}/console/commits?status=invalid")
        return entry.count() > 0

    wait_until(shown, 30, interval=0.3, message="the invalid commit on the commits page")
    # The problem, then the lines around it from that commit's file, the offending column marked.
    excerpt = entry.locator("pre.excerpt").first
    expect(excerpt).to_contain_text("depends: nowhere")
    expect(excerpt).to_contain_text("command: [echo]")  # context before it
    expect(excerpt.locator(".ln.hit .no")).to_have_text("   6 ")
    expect(excerpt.locator("mark")).to_have_count(1)
    page.screenshot(path=shots / "commits-problems.png", full_page=True)

    # The file changes on the branch afterwards: the page still shows the commit's own lines.
    fixed = git_remote.commit({"bad/main.yml": BAD.replace("nowhere", "a"), "bad/README.md": None}, "fix it")
    page.goto(f"{console_server.url}/console/commits?sha={sha[:12]}")
    expect(page.locator(f'li[data-sha="{sha}"] pre.excerpt').first).to_contain_text("depends: nowhere")

    # The commit's page: what it changed against its parent.
    page.locator(f'li[data-sha="{sha}"] .head a').click()
    page.wait_for_url(f"**/console/commits/{sha}")
    changes = page.locator("table.changes")
    expect(changes.locator("tr.ch-added")).to_have_count(2)
    expect(changes).to_contain_text("bad/main.yml")
    expect(page.locator("pre.excerpt")).to_contain_text("depends: nowhere")
    page.screenshot(path=shots / "commit.png", full_page=True)

    def recorded() -> bool:
        page.goto(f"{console_server.url}/console/commits/{fixed[:12]}")
        return page.locator("table.changes").count() > 0

    wait_until(recorded, 30, interval=0.3, message="the fixing commit's page")
    expect(page.locator("h1")).to_contain_text(fixed[:10])
    expect(page.locator("table.changes tr.ch-modified")).to_contain_text("bad/main.yml")
    expect(page.locator("table.changes tr.ch-deleted")).to_contain_text("bad/README.md")
    # A commit Odin never recorded is a page saying so.
    page.goto(f"{console_server.url}/console/commits/{'0' * 40}")
    expect(page.locator(".error")).to_contain_text("has not recorded a commit")


def test_run_page_downloads_events_and_gpu_usage(
    console_server: OdinServer, git_remote: GitRemote, page: Page, shots: Path, db_url: str
) -> None:
    sha = git_remote.commit({"produce/main.yml": produce("0.91")}, "add produce")
    with api(console_server) as http:
        run = finished_run_of(http, sha, "produce")
    assert run["status"] == "succeeded", run
    # What the GPU sampler records for an attempt (docs/midgard.md), written as it writes it.
    usage = {
        "attempt": 1, "running": False, "node": "gpu-node-1",
        "gpus": [{"uuid": "GPU-1", "index": 0, "model": "NVIDIA H100 80GB HBM3"},
                 {"uuid": "GPU-2", "index": 1, "model": "NVIDIA H100 80GB HBM3"}],
        "samples": 60, "gpu_seconds": 3600.0, "utilization_mean_percent": 4.2, "utilization_peak_percent": 71,
        "memory_peak_bytes": 12 * 2**30, "first_sample_at": "2026-01-01T10:00:00+00:00",
        "last_sample_at": "2026-01-01T10:30:00+00:00",
        "idle": {"since": "2026-01-01T10:05:00+00:00", "flagged_at": "2026-01-01T10:15:00+00:00", "active": False,
                 "threshold_percent": 5.0, "after_seconds": 600.0},
    }  # fmt: skip
    engine = create_db_engine(db_url)
    try:
        record_gpu_usage(engine, [UsageUpdate(run["id"], "train", 1, usage)])
    finally:
        engine.dispose()

    log_in(page, console_server)
    page.goto(f"{console_server.url}/console/runs/{run['id']}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    gpu = page.locator("#gpu-usage tbody tr")
    expect(gpu).to_have_count(1)
    for text in ("2 x NVIDIA H100 80GB HBM3", "3,600", "4%", "71%", "12.0 GiB", "was idle", "gpu-node-1"):
        expect(gpu).to_contain_text(text)

    # The artifact's link downloads it with the session cookie alone.
    link = page.get_by_role("link", name="model", exact=True)
    expect(link).to_have_attribute("href", f"/v1/runs/{run['id']}/artifacts/train/model")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == b"weights-0.91"
    expect(page.locator("#t-train")).to_contain_text("acc = 0.91")

    # A task's events beside its log: Odin's own on the local executor (no Kubernetes events there).
    page.get_by_role("button", name="train", exact=True).click()
    events = page.locator("#events")
    expect(events).to_be_visible()
    expect(events).to_contain_text("task.status")
    expect(events).to_contain_text("succeeded")
    expect(page.locator("#events-state")).to_contain_text("no Kubernetes events")
    page.screenshot(path=shots / "run-gpu-downloads.png", full_page=True)


def test_compare_two_runs(console_server: OdinServer, git_remote: GitRemote, page: Page, shots: Path) -> None:
    first = git_remote.commit({"produce/main.yml": produce("0.91")}, "add produce")
    with api(console_server) as http:
        a = finished_run_of(http, first, "produce")
        second = git_remote.commit({"produce/main.yml": produce("0.95"), "produce/notes.txt": "x\n"}, "better")
        b = finished_run_of(http, second, "produce")
    log_in(page, console_server)
    page.goto(f"{console_server.url}/console/pipelines/produce")
    page.get_by_label("Compare run").select_option(a["id"])
    page.get_by_label("with run").select_option(b["id"])
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/console/compare?*")
    results = page.locator("#compare-results tr.differs")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("train.acc")
    expect(results).to_contain_text("0.91")
    expect(results).to_contain_text("0.95")
    expect(page.locator("#compare-params tbody tr")).to_contain_text("same")
    expect(page.locator("#compare-tasks tbody tr")).to_have_count(1)
    expect(page.locator("#compare-tasks")).to_contain_text("succeeded")
    changes = page.locator("table.changes")
    expect(changes.locator("tr.ch-modified")).to_contain_text("produce/main.yml")
    expect(changes.locator("tr.ch-added")).to_contain_text("produce/notes.txt")
    page.screenshot(path=shots / "compare.png", full_page=True)
    # By URL too; the same run twice is a page saying what to do.
    page.goto(f"{console_server.url}/console/compare?a={a['id']}&b={a['id']}")
    expect(page.locator(".error")).to_contain_text("two different runs")


@pytest.mark.slow  # a server of its own, a run and a download through the proxy: ~25 s on a loaded two-core machine
def test_behind_a_path_prefix(
    db_url: str, git_remote: GitRemote, browser: Browser, tmp_path: Path, shots: Path
) -> None:
    """Odin served at http://127.0.0.1:<port>/odin/ by a reverse proxy stripping the prefix (docs/console.md):
    log in, the commits, a run watched live over the WebSocket, its log, its download; nothing asked outside it."""
    git_remote.commit({"hello/main.yml": HELLO}, "add hello")
    upstream = free_port()
    with PrefixProxy("/odin", upstream) as proxy:
        env = {
            "ODIN_REPO": git_remote.file_url,
            "ODIN_DATABASE_URL": db_url,
            "ODIN_POLL_INTERVAL": "0.2",
            "ODIN_ADMIN_PASSWORD": PASSWORD,
            "ODIN_PUBLIC_URL": f"{proxy.url}/odin/",
        }
        with OdinServer(tmp_path / "state", env, port=upstream) as server:
            wait_until(lambda: "first sync" in server.log(), 30, message="the server's first sync")
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            context.set_default_timeout(30_000)
            page = context.new_page()
            try:
                page.goto(f"{proxy.url}/odin/")
                expect(page).to_have_url(f"{proxy.url}/odin/console/login?next=/odin/console/commits")
                page.get_by_label("User name").fill("admin")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(f"{proxy.url}/odin/console/commits")
                cookie = next(c for c in context.cookies() if c["name"] == "odin_session")
                assert cookie["path"] == "/odin/"

                sha = git_remote.commit({"produce/main.yml": produce("0.5")}, "add produce")
                link = page.locator(f'li[data-sha="{sha}"] .runs a')

                def listed() -> bool:
                    page.get_by_role("link", name="Commits").click()
                    page.wait_for_url(f"{proxy.url}/odin/console/commits")
                    return link.count() > 0

                wait_until(listed, 30, interval=0.3, message="the pushed commit's run on the commits page")
                link.first.click()
                page.wait_for_url(f"{proxy.url}/odin/console/runs/**")
                expect(page.locator("#run")).to_have_attribute("data-live", "yes")  # the WebSocket under /odin
                expect(page.locator("#run-status")).to_have_text("succeeded")
                page.get_by_role("button", name="train", exact=True).click()
                expect(page.locator("#log-title")).to_have_text("Log of train")  # the log's own call under /odin
                expect(page.locator("#log-state")).not_to_have_text(re.compile("loading|cannot|40[0-9]"))
                expect(page.locator("#events")).to_contain_text("task.status")
                model = page.get_by_role("link", name="model", exact=True)
                assert (model.get_attribute("href") or "").startswith("/odin/v1/runs/")
                with page.expect_download() as download:
                    model.click()
                assert Path(download.value.path()).read_bytes() == b"weights-0.5"
                page.screenshot(path=shots / "prefixed-run.png", full_page=True)
                page.get_by_role("link", name=sha[:10]).click()  # the commit's page: what it changed
                page.wait_for_url(f"{proxy.url}/odin/console/commits/{sha}")
                expect(page.locator("table.changes tr.ch-added")).to_contain_text("produce/main.yml")
            finally:
                context.close()
    assert proxy.refused == [], proxy.refused
    assert any(" /odin/v1/ws " in r for r in proxy.requests)
