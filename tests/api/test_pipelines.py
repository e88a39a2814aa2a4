"""Commits, pipelines at any ref, validation, and git-backed editing, over real HTTP against a real remote."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pygit2
import pytest
import sqlalchemy as sa
from rich.console import Console

from odin.controller.store.db import create_db_engine, transaction
from odin.controller.store.models import REPOSITORIES
from odin.controller.store.schedules import SlotKey, claim_slot
from tests.api.conftest import Served
from tests.support.git import Executable, Symlink
from tests.support.wait import wait_until

BROKEN = "name: broken\ntasks:\n  - name: a\n    image: busybox\n    command: [echo]\n    depends: ghost\n"


def test_pipelines_at_the_branch_a_tag_and_a_sha(served: Served) -> None:
    listing = served.get("/v1/pipelines").json()
    assert listing["ref"] == "main" and len(listing["sha"]) == 40
    names = {p["name"]: p for p in listing["items"]}
    assert {"ok", "flaky", "gate", "vision/detector"} <= names.keys()
    assert names["ok"]["valid"] and names["ok"]["task_count"] == 3
    first = listing["sha"]
    served.remote.tag("v-pipelines", first)
    by_tag = served.get("/v1/pipelines", params={"ref": "v-pipelines"}).json()
    by_sha = served.get("/v1/pipelines", params={"ref": first[:10]}).json()
    assert by_tag["sha"] == by_sha["sha"] == first
    r = served.get("/v1/pipelines", params={"ref": "no-such-ref"})
    assert r.status_code == 404 and "no-such-ref" in r.json()["detail"]


def test_a_pipeline_dag_params_and_problems(served: Served) -> None:
    detail = served.get("/v1/pipelines/ok").json()
    assert detail["valid"] and detail["problems"] == [] and detail["title"] == "ok"
    assert [(t["name"], t["depends"]) for t in detail["tasks"]] == [
        ("prep", []),
        ("train", ["prep"]),
        ("report", ["prep"]),
    ]
    assert {p["name"]: (p["type"], p["default"]) for p in detail["params"]} == {
        "who": ("string", "world"),
        "n": ("integer", "1"),
    }
    nested = served.get("/v1/pipelines/vision:detector").json()
    assert nested["name"] == "vision/detector" and nested["tasks"][0]["name"] == "t"
    sha = served.remote.commit({"broken/main.yml": BROKEN}, message="Break it")
    broken = served.get("/v1/pipelines/broken", params={"ref": sha}).json()
    assert not broken["valid"] and broken["spec"] is None
    [problem] = broken["problems"]
    assert problem["file"] == "broken/main.yml" and problem["line"] == 6 and "ghost" in problem["message"]
    assert served.get("/v1/pipelines/nope").status_code == 404
    commit = wait_until(lambda: served.get(f"/v1/commits/{sha[:8]}").json().get("validation") == "invalid", 30)
    assert commit
    detail_commit = served.get(f"/v1/commits/{sha}").json()
    assert detail_commit["problems"][0]["line"] == 6 and detail_commit["runs"] == []
    assert detail_commit["pipelines_changed"] == ["broken"] and detail_commit["subject"] == "Break it"


def test_commits_list_filter_and_detail_with_runs(served: Served) -> None:
    sha = served.remote.commit({"ok/commit-test.txt": "x"}, message="Touch ok\n\nwith a body")
    run = wait_until(lambda: served.get("/v1/runs", params={"commit": sha}).json()["items"], 30)[0]
    served.wait_run(run["id"])
    detail = served.get(f"/v1/commits/{sha[:7]}").json()
    assert (detail["sha"], detail["validation"], detail["subject"]) == (sha, "valid", "Touch ok")
    assert detail["message"].startswith("Touch ok\n\nwith a body")
    assert [r["id"] for r in detail["runs"]] == [run["id"]] and detail["parents"]
    listing = served.get("/v1/commits", params={"limit": 500}).json()["items"]
    assert listing[0]["sha"] == sha or sha in [c["sha"] for c in listing]
    assert sha in [c["sha"] for c in served.get("/v1/commits", params={"pipeline": "ok"}).json()["items"]]
    assert sha not in [c["sha"] for c in served.get("/v1/commits", params={"pipeline": "gate"}).json()["items"]]
    assert all(
        c["validation"] == "valid" for c in served.get("/v1/commits", params={"validation": "valid"}).json()["items"]
    )
    page = served.get("/v1/commits", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    second = served.get("/v1/commits", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert second["items"][0]["sha"] != page["items"][0]["sha"]
    assert served.get("/v1/commits/" + "0" * 40).status_code == 404
    for bad in ("xyz", "abc", "' or 1=1"):
        assert served.get(f"/v1/commits/{bad}").status_code == 400
    assert served.get("/v1/commits", params={"validation": "bogus"}).status_code == 400


def test_read_a_file_text_or_binary(served: Served) -> None:
    f = served.get("/v1/pipelines/ok/files/helper.sh").json()
    assert (f["pipeline"], f["path"], f["encoding"], f["content"]) == ("ok", "helper.sh", "utf-8", "echo helper\n")
    served.remote.commit({"ok/model.bin": b"\x00\xff\xfe"}, message="Binary")
    wait_until(lambda: served.get("/v1/pipelines/ok/files/model.bin").status_code == 200, 30)
    b = served.get("/v1/pipelines/ok/files/model.bin").json()
    assert b["encoding"] == "base64" and base64.b64decode(b["content"]) == b"\x00\xff\xfe"
    assert served.get("/v1/pipelines/ok/files/missing.txt").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E/flaky/main.yml",
        "sub/..%2F..%2Fgate/main.yml",
        ".git/config",
        "a/.GIT/hooks/pre-commit",
        "a%5Cb.txt",
        "a%00b",
        "x%0Ay",
    ],
)
def test_file_routes_refuse_paths_that_leave_the_pipeline(served: Served, path: str) -> None:
    read = served.get(f"/v1/pipelines/ok/files/{path}")
    write = served.request("PUT", f"/v1/pipelines/ok/files/{path}", json={"content": "pwned"})
    for r in (read, write):
        assert r.status_code in (400, 404, 422), (path, r.status_code, r.text)
        assert r.status_code != 404 or "does not exist" in r.text
    assert write.status_code in (400, 422), (path, write.text)
    files = served.remote.files(served.remote.pull())
    assert not any(content == b"pwned" for content in files.values())


@pytest.mark.parametrize("name", ["..", ".github", "%2E%2E", "a%5Cb"])
def test_pipeline_names_that_are_not_pipeline_directories_are_refused(served: Served, name: str) -> None:
    r = served.request("PUT", f"/v1/pipelines/{name}/files/x.txt", json={"content": "x"})
    assert r.status_code in (400, 404, 422), r.text


def remote_commit(served: Served, sha: str) -> pygit2.Commit:
    return served.remote.bare[sha].peel(pygit2.Commit)


@pytest.fixture(autouse=True)
def pull_after(served: Served) -> Iterator[None]:
    """Commits made through the API land on the remote; the test clone catches up so later commits fast-forward."""
    yield
    served.remote.pull()


def test_writing_a_file_commits_as_the_user_pushes_and_triggers_a_run(served: Served) -> None:
    member = served.user("meg", "member")
    served.request("PATCH", "/v1/users/meg", json={"email": "meg@example.com"})
    base = served.remote.remote_tip()
    r = served.request(
        "PUT",
        "/v1/pipelines/ok/files/config/params.yaml",
        token=member,
        json={"content": "lr: 0.1\n", "message": "Tune the learning rate"},
    )
    assert r.status_code == 200, r.text
    written = r.json()
    assert (written["pipeline"], written["path"], written["branch"]) == ("ok", "config/params.yaml", "main")
    assert written["base_sha"] == base and served.remote.remote_tip() == written["commit_sha"]
    commit = remote_commit(served, written["commit_sha"])
    assert (commit.author.name, commit.author.email) == ("meg", "meg@example.com")
    assert commit.committer.name == "Odin" and commit.message == "Tune the learning rate"
    assert [str(p) for p in commit.parent_ids] == [base]
    served.remote.pull()
    assert served.remote.files(written["commit_sha"])["ok/config/params.yaml"] == b"lr: 0.1\n"
    [run] = wait_until(lambda: served.get("/v1/runs", params={"commit": written["commit_sha"]}).json()["items"], 30)
    assert run["pipeline"] == "ok" and run["triggered_by"] == "meg"
    served.wait_run(run["id"])
    same = served.request("PUT", "/v1/pipelines/ok/files/config/params.yaml", json={"content": "lr: 0.1\n"}).json()
    assert same["commit_sha"] == same["base_sha"] == written["commit_sha"], "no change, no commit"


def test_optimistic_concurrency_with_if_match_or_base_sha(served: Served) -> None:
    tip = served.remote.remote_tip()
    assert tip is not None
    ok = served.request(
        "PUT", "/v1/pipelines/ok/files/notes.md", headers={"If-Match": f'"{tip}"'}, json={"content": "one\n"}
    )
    assert ok.status_code == 200, ok.text
    stale = served.request("PUT", "/v1/pipelines/ok/files/notes.md", headers={"If-Match": tip}, json={"content": "2\n"})
    assert stale.status_code == 409 and "read the file again" in stale.json()["detail"]
    stale = served.request("PUT", "/v1/pipelines/ok/files/notes.md", json={"content": "2\n", "base_sha": tip})
    assert stale.status_code == 409
    assert served.remote.files(served.remote.pull())["ok/notes.md"] == b"one\n"


def test_an_invalid_main_yml_is_not_committed(served: Served) -> None:
    before = served.remote.remote_tip()
    r = served.request("PUT", "/v1/pipelines/ok/files/main.yml", json={"content": BROKEN.replace("broken", "ok")})
    assert r.status_code == 422
    body: dict[str, Any] = r.json()
    assert "not a valid pipeline" in body["detail"] and body["extra"]["problems"][0]["line"] == 6
    assert served.remote.remote_tip() == before


def test_new_pipelines_symlinks_and_binary_content(served: Served) -> None:
    r = served.request("PUT", "/v1/pipelines/fresh/files/run.sh", json={"content": "echo\n"})
    assert r.status_code == 404 and "create its main.yml first" in r.json()["detail"]
    created = served.request(
        "PUT",
        "/v1/pipelines/fresh/files/main.yml",
        json={"content": "name: fresh\ntasks:\n  - {name: t, image: busybox, command: [echo, fresh]}\n"},
    )
    assert created.status_code == 200, created.text
    wait_until(lambda: served.get("/v1/pipelines/fresh").status_code == 200, 30)
    data = base64.b64encode(b"\x89PNG\x00").decode()
    png = served.request("PUT", "/v1/pipelines/fresh/files/img.png", json={"content": data, "encoding": "base64"})
    assert png.status_code == 200
    served.remote.pull()
    assert served.remote.files(png.json()["commit_sha"])["fresh/img.png"] == b"\x89PNG\x00"
    assert (
        served.request("PUT", "/v1/pipelines/fresh/files/x", json={"content": "%%%", "encoding": "base64"}).status_code
        == 400
    )
    served.remote.commit({"ok/linked": Symlink("../gate"), "ok/run.sh": Executable("#!/bin/sh\n")}, message="Link")
    wait_until(lambda: served.get("/v1/pipelines/ok/files/run.sh").status_code == 200, 30)
    r = served.request("PUT", "/v1/pipelines/ok/files/linked/main.yml", json={"content": "x"})
    assert r.status_code == 422 and "symbolic link" in r.json()["detail"]
    r = served.request("PUT", "/v1/pipelines/ok/files/linked", json={"content": "x"})
    assert r.status_code == 422
    r = served.request("PUT", "/v1/pipelines/ok/files/helper.sh/inside", json={"content": "x"})
    assert r.status_code == 422 and "not a directory" in r.json()["detail"]
    kept = served.request("PUT", "/v1/pipelines/ok/files/run.sh", json={"content": "#!/bin/sh\necho 2\n"}).json()
    tree = remote_commit(served, kept["commit_sha"]).tree
    assert tree["ok/run.sh"].filemode == pygit2.enums.FileMode.BLOB_EXECUTABLE, "the executable bit survives an edit"


def test_validate_a_main_yml(served: Served) -> None:
    good = served.post("/v1/validate", json={"content": "name: v\ntasks:\n  - {name: t, image: x, command: [echo]}\n"})
    assert good.status_code == 200 and good.json()["valid"] and good.json()["spec"]["name"] == "v"
    bad = served.post("/v1/validate", json={"content": BROKEN, "file": "broken/main.yml"}).json()
    assert not bad["valid"] and bad["spec"] is None
    assert bad["problems"][0]["file"] == "broken/main.yml" and bad["problems"][0]["line"] == 6
    yaml_error = served.post("/v1/validate", json={"content": "tasks: [\n"}).json()
    assert not yaml_error["valid"] and yaml_error["problems"][0]["line"] >= 1
    assert served.post("/v1/validate", json={"content": "x", "strict": True}).status_code == 400
    assert served.post("/v1/validate", json={"text": "x"}).status_code == 400


ELASTIC = "name: elastic\ntasks:\n  - name: t\n    image: x\n    command: [echo]\n    resource_type: ElasticJob\n"


def test_a_warning_is_listed_with_its_severity_and_never_makes_a_pipeline_invalid(served: Served) -> None:
    checked = served.post("/v1/validate", json={"content": ELASTIC, "file": "elastic/main.yml"}).json()
    assert checked["valid"] and checked["spec"] is not None
    [warning] = checked["problems"]
    assert warning["severity"] == "warning" and warning["line"] == 6 and "deprecated" in warning["message"]
    # At a ref off the followed branch (nothing runs): valid, the warning listed, no problem counted.
    sha = served.remote.commit({"elastic/main.yml": ELASTIC}, message="Elastic", branch="elastic-warning")
    served.remote.tag("elastic-warning", sha)
    detail = served.get("/v1/pipelines/elastic", params={"ref": "elastic-warning"}).json()
    assert detail["valid"] and [p["severity"] for p in detail["problems"]] == ["warning"]
    listed = {p["name"]: p for p in served.get("/v1/pipelines", params={"ref": "elastic-warning"}).json()["items"]}
    assert listed["elastic"]["valid"] and listed["elastic"]["problem_count"] == 0


def test_a_commits_problems_carry_their_severity(served: Served) -> None:
    both = ELASTIC + "    depends: ghost\n"
    sha = served.remote.commit({"elastic-broken/main.yml": both}, message="Elastic and broken")
    assert wait_until(lambda: served.get(f"/v1/commits/{sha}").json().get("validation") == "invalid", 30)
    detail = served.get(f"/v1/commits/{sha}").json()
    assert sorted(p["severity"] for p in detail["problems"]) == ["error", "warning"]
    [summary] = [c for c in served.get("/v1/commits", params={"limit": 50}).json()["items"] if c["sha"] == sha]
    assert summary["problem_count"] == 1, "the warning is listed, not counted as a problem"


def _validations(served: Served) -> float:
    """odin_pipeline_validations_total summed over outcomes, from /metrics."""
    text = served.get("/metrics").text
    assert "odin_pipeline_validations_total{" in text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("odin_pipeline_validations_total{")
    )


def test_listing_pipelines_does_not_validate_unchanged_ones_again(served: Served) -> None:
    first = served.get("/v1/pipelines")
    assert first.status_code == 200
    before = _validations(served)
    assert before > 0  # the first sync validated them
    for _ in range(3):
        assert served.get("/v1/pipelines").json()["items"] == first.json()["items"]
        assert served.get("/v1/pipelines/ok").status_code == 200
    assert _validations(served) == before


def test_a_hostile_main_yml_is_validated_with_a_bounded_report(served: Served) -> None:
    content = "tasks:\n  - name: a\n    image: x\n    command: " + "${" * 499_000 + "\n"
    r = served.post("/v1/validate", json={"content": content})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["valid"] and 1 <= len(body["problems"]) <= 101
    assert "unterminated `${`" in body["problems"][-1]["message"]
    assert served.get("/healthz").status_code == 200


SCHEDULED = """\
schedule: {cron: "0 3 29 2 *", timezone: Europe/Berlin, catchup: latest}
timeout: 2h
tasks:
  - {name: a, image: busybox, command: [echo]}
"""


def test_the_listing_shows_each_schedule_with_its_next_and_last_slot(served: Served) -> None:
    sha = served.remote.commit({"leap/main.yml": SCHEDULED}, message="Schedule it")
    listing = served.get("/v1/pipelines", params={"ref": sha}).json()
    leap = {p["name"]: p for p in listing["items"]}["leap"]
    assert leap["timeout"] == 7200.0
    [schedule] = leap["schedules"]
    assert (schedule["cron"], schedule["timezone"], schedule["catchup"]) == ("0 3 29 2 *", "Europe/Berlin", "latest")
    assert schedule["next_slot"].endswith(("-02-29T02:00:00Z", "-02-29T02:00:00+00:00"))  # 03:00 in Berlin, winter
    assert schedule["last_slot"] is None and schedule["last_run"] is None
    # A slot the leader started (as `RunLauncher.start_slots` records it) shows up as the last one.
    db = create_db_engine(served.db_url)
    try:
        with transaction(db) as conn:
            repo_id = conn.execute(sa.select(REPOSITORIES.c.id)).scalar_one()
            key = SlotKey(repo_id, "main", "leap", "0 3 29 2 *@Europe/Berlin", datetime(2024, 2, 29, 2, tzinfo=UTC))
            assert claim_slot(conn, key)
    finally:
        db.dispose()
    [schedule] = {p["name"]: p for p in served.get("/v1/pipelines", params={"ref": sha}).json()["items"]}["leap"][
        "schedules"
    ]
    assert schedule["last_slot"].startswith("2024-02-29T02:00:00")
    assert "0 3 29 2 *" in ok_table(served, sha)


def test_the_listing_shows_odin_yml_schedules_with_their_params(served: Served) -> None:
    pipeline = "params:\n  epochs: 1\ntasks:\n  - {name: a, image: busybox, command: [echo]}\n"
    odin_yml = 'schedules:\n  - {pipeline: fit, cron: "0 3 * * *", params: {epochs: 10}}\n'
    sha = served.remote.commit({"fit/main.yml": pipeline, ".odin.yml": odin_yml}, message="Schedule it")
    [schedule] = {p["name"]: p for p in served.get("/v1/pipelines", params={"ref": sha}).json()["items"]}["fit"][
        "schedules"
    ]
    assert (schedule["cron"], schedule["params"], schedule["source"]) == ("0 3 * * *", {"epochs": "10"}, ".odin.yml")
    assert "0 3 * * * epochs=10 [.odin.yml]" in ok_table(served, sha)


def ok_table(served: Served, sha: str) -> str:
    from odin.api.schemas import PipelineList
    from odin.cli.render import pipelines_table

    listing = msgspec.json.decode(served.get("/v1/pipelines", params={"ref": sha}).content, type=PipelineList)
    console = Console(width=200, record=True)
    console.print(pipelines_table(listing.items))
    return console.export_text()
