"""The console in a real browser: log in and out, watch a pushed commit's run live, read a task's log, rerun the
failed part, see a bad commit's problems, and a viewer who sees no buttons. Screenshots go to each test's tmp dir."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, Route, expect

from tests.console.conftest import PASSWORD, VIEWER_PASSWORD, keep, log_in
from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

FLOW = """\
name: flow
tasks:
  - name: prepare
    image: busybox
    command: [sh, -c, 'echo preparing data']
  - name: train
    image: busybox
    command:
      - sh
      - -c
      - 'echo training; test -e "{marks}/fixed" || {{ echo boom: no data >&2; exit 3; }};
         while [ ! -e "{marks}/go" ]; do sleep 0.05; done; echo trained'
    depends: prepare
  - name: report
    image: busybox
    command: [sh, -c, 'echo reporting']
    depends: train
"""


def open_run_of(page: Page, server: OdinServer, sha: str) -> None:
    """From the commit timeline (not live: reloaded until the run is there) to the commit's run page."""
    link = page.locator(f'li[data-sha="{sha}"] .runs a')

    def listed() -> bool:
        page.goto(f"{server.url}/console/commits")
        return link.count() > 0

    wait_until(listed, 30, interval=0.3, message="the pushed commit's run on the commits page")
    link.first.click()
    page.wait_for_url("**/console/runs/**")


def test_root_login_logout_and_the_api_alongside(console_server: OdinServer, page: Page, shots: Path) -> None:
    page.goto(console_server.url + "/")
    expect(page).to_have_url(f"{console_server.url}/console/login?next=/console/commits")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("wrong username or password")
    page.screenshot(path=shots / "login.png")

    log_in(page, console_server)
    expect(page.locator("li.commit .subject").first).to_have_text("add hello")
    expect(page.locator("li.commit .badge").first).to_have_text("baseline")
    cookie = next(c for c in page.context.cookies() if c["name"] == "odin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"

    # The cookie reaches the API for reads, but a change without the page's CSRF token is refused.
    assert page.request.get(f"{console_server.url}/v1/runs").status == 200
    refused = page.request.post(f"{console_server.url}/v1/runs", data={"pipeline": "hello"})
    assert refused.status == 403 and "X-CSRF-Token" in refused.json()["detail"]
    # Bearer tokens keep working as before.
    token = httpx.post(f"{console_server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()[
        "access_token"
    ]
    assert httpx.get(f"{console_server.url}/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/console/login")
    page.goto(f"{console_server.url}/console/commits")
    expect(page).to_have_url(f"{console_server.url}/console/login?next=/console/commits")
    # The logged-out session's cookie value no longer authenticates anywhere.
    old = httpx.get(f"{console_server.url}/v1/runs", cookies={"odin_session": cookie["value"]})
    assert old.status_code == 401


def test_push_watch_log_and_rerun_failed(
    console_server: OdinServer, git_remote: GitRemote, page: Page, shots: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    log_in(page, console_server)
    sha = git_remote.commit({"flow/main.yml": FLOW.format(marks=marks)}, "add the flow pipeline")
    open_run_of(page, console_server, sha)

    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator('#dag a[data-task="train"]')).to_have_class("node s-failed")
    expect(page.locator('#dag a[data-task="report"]')).to_have_class("node s-skipped")
    expect(page.locator("#t-train td").nth(4)).to_have_text("3")  # the exit code
    page.get_by_role("button", name="train", exact=True).click()
    expect(page.locator("#log")).to_contain_text("boom: no data")
    page.get_by_label("Search").fill("boom")
    expect(page.locator("#log")).to_have_text("boom: no data")
    page.screenshot(path=shots / "run-failed.png", full_page=True)

    (marks / "fixed").touch()
    failed_url = page.url
    page.get_by_role("button", name="Rerun failed").click()
    page.wait_for_url(lambda url: url != failed_url and "/console/runs/" in url)
    # The rerun is watched live: train runs (waiting for the gate), its log follows, then it all succeeds.
    expect(page.locator("#run")).to_have_attribute("data-live", "yes")  # subscribed over the WebSocket
    expect(page.locator("#t-train .badge")).to_have_text("running")
    expect(page.locator('#dag a[data-task="train"]')).to_have_class("node s-running")
    page.get_by_role("button", name="train", exact=True).click()
    expect(page.locator("#log")).to_contain_text("training")
    expect(page.locator("#log-state")).to_have_text("following…")
    shot = shots / "run.png"
    page.screenshot(path=shot, full_page=True)
    keep(shot, "console-run.png")
    (marks / "go").touch()
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#log")).to_contain_text("trained")
    expect(page.locator('#dag a[data-task="report"]')).to_have_class("node s-succeeded")
    expect(page.locator(".provenance")).to_contain_text("rerun by admin")
    page.screenshot(path=shots / "run-succeeded.png", full_page=True)


def test_bad_commit_shows_its_problems(console_server: OdinServer, git_remote: GitRemote, page: Page) -> None:
    log_in(page, console_server)
    bad = "name: bad\ntasks:\n  - name: a\n    image: busybox\n    command: [echo]\n    depends: nowhere\n"
    sha = git_remote.commit({"bad/main.yml": bad}, "a broken pipeline")
    entry = page.locator(f'li[data-sha="{sha}"]')

    def shown() -> bool:
        page.goto(f"{console_server.url}/console/commits?status=invalid")
        return entry.count() > 0

    wait_until(shown, 30, interval=0.3, message="the invalid commit on the commits page")
    expect(entry.locator(".badge").first).to_have_text("invalid")
    expect(entry.locator(".problems")).to_contain_text("bad/main.yml:6:")
    expect(entry.locator(".problems")).to_contain_text("nowhere")
    # The SHA search finds it, the other filters narrow, and a bad SHA says what is wrong.
    page.goto(f"{console_server.url}/console/commits?sha={sha[:9]}")
    expect(page.locator("li.commit")).to_have_count(1)
    page.goto(f"{console_server.url}/console/commits?author=nobody@example.com")
    expect(page.locator(".empty")).to_contain_text("No commits match")
    page.goto(f"{console_server.url}/console/commits?sha=xyz")
    expect(page.locator(".error")).to_contain_text("7 to 40 hexadecimal")


def test_a_viewer_sees_no_buttons(console_server: OdinServer, git_remote: GitRemote, page: Page, shots: Path) -> None:
    sha = git_remote.commit({"hello/main.yml": HELLO_2}, "say hello again")
    log_in(page, console_server, "vera", VIEWER_PASSWORD)
    open_run_of(page, console_server, sha)
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator(".who .role")).to_have_text("viewer")
    page.screenshot(path=shots / "viewer.png", full_page=True)
    # Hidden buttons are not the protection: the API refuses the viewer even with the page's CSRF token.
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    run_id = page.locator("#run").get_attribute("data-run")
    res = page.request.post(f"{console_server.url}/v1/runs/{run_id}/rerun", data={}, headers={"X-CSRF-Token": csrf})
    assert res.status == 403 and "member" in res.json()["detail"]


HELLO_2 = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hello again]}\n"


def test_pipelines_run_now_and_gpus(console_server: OdinServer, page: Page, shots: Path) -> None:
    log_in(page, console_server)
    page.get_by_role("link", name="Pipelines").click()
    expect(page.locator("tr[data-pipeline]")).to_have_count(2)
    page.get_by_role("link", name="tune", exact=True).click()
    expect(page.locator("pre.source")).to_contain_text("choices: [fast, slow]")
    # The form is generated from the declared parameters: a choice is a select, an integer a number field.
    page.get_by_label("mode").select_option("slow")
    epochs = page.get_by_label("epochs")
    assert epochs.get_attribute("type") == "number" and epochs.get_attribute("step") == "1"
    epochs.fill("7")
    page.screenshot(path=shots / "pipeline.png", full_page=True)
    page.get_by_role("button", name="Run tune").click()
    page.wait_for_url("**/console/runs/**")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("table.params")).to_contain_text("slow")
    page.get_by_role("button", name="fit", exact=True).click()
    expect(page.locator("#log")).to_contain_text("fitting slow for 7")
    expect(page.locator(".provenance")).to_contain_text("api by admin")
    page.get_by_role("link", name="Pipelines").click()
    expect(page.locator('tr[data-pipeline="tune"]')).to_contain_text("100%")
    page.get_by_role("link", name="GPUs").click()
    expect(page.locator("#no-gpus")).to_contain_text("not configured")
    page.screenshot(path=shots / "gpus.png", full_page=True)

    # The API docs render offline: every request that would leave this server is refused and recorded.
    outside: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(console_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.get_by_role("link", name="API docs").click()
    expect(page.get_by_role("heading", name=re.compile("Odin API"))).to_be_visible()
    expect(page.get_by_text("Find runs, newest first").first).to_be_attached()
    page.screenshot(path=shots / "api-docs.png")
    assert outside == []
