"""Repositories as data (issue 13 items 1-2) over real HTTP and through odinctl: register, list, show, update,
remove; branch patterns followed by the leader's pollers on real git repositories; secrets by reference only; a
remote that cannot be reached shown as Ready=False. SQLite and Postgres."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.models import EVENTS, REPOSITORIES
from odin.controller.store.repo_records import insert_record
from odin.controller.store.retention import policies
from tests.api.conftest import PASSWORD, Served
from tests.support.git import GitRemote
from tests.support.server import odinctl
from tests.support.wait import wait_until


def pipeline(name: str, word: str) -> str:
    return f"name: {name}\ntasks:\n  - {{name: t, image: busybox, command: [echo, {word}]}}\n"


def runs_of(served: Served, name: str) -> dict[str, dict[str, Any]]:
    """The runs of pipeline `name`, by commit."""
    items = served.get("/v1/runs", params={"limit": 500}).json()["items"]
    return {r["commit_sha"]: r for r in items if r["pipeline"] == name}


def repo(served: Served, name: str) -> dict[str, Any]:
    r = served.get(f"/v1/repos/{name}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def ready(served: Served, name: str, branch: str | None = None) -> dict[str, Any] | None:
    """The repository's (or one further branch's) Ready condition, once recorded."""
    body = repo(served, name)
    conditions = body["conditions"] if branch is None else body["branch_conditions"].get(branch, [])
    return next((c for c in conditions if c["type"] == "Ready"), None)


def audit(served: Served, name: str) -> list[dict[str, Any]]:
    """The repository's audit events (`repo.added`, `repo.updated`, `repo.removed`), read from the store."""
    engine = create_db_engine(served.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(EVENTS.c.kind, EVENTS.c.data).where(EVENTS.c.kind.in_(["repo.added", "repo.updated",
                                                                                 "repo.removed"])).order_by(EVENTS.c.id)
            )  # fmt: skip
            return [{"kind": kind, **data} for kind, data in rows if data.get("name") == name]
    finally:
        engine.dispose()


def test_a_registered_repository_is_followed_on_every_branch_its_patterns_match(served: Served, tmp_path: Path) -> None:
    remote = GitRemote.create(tmp_path / "second")
    remote.commit({"second/main.yml": pipeline("second", "one")}, message="first")
    remote.create_branch("release/1")
    remote.create_branch("feature/x")
    body = {"name": "second", "url": remote.file_url, "branches": ["main", "release/*"], "poll_interval": 0.2}
    r = served.post("/v1/repos", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["default_branch"], created["branches"], created["origin"]) == ("main", ["main", "release/*"], "api")

    # the leader picks it up without a restart: main and the release branch, not the feature branch
    wait_until(lambda: repo(served, "second")["followed_branches"] == ["main", "release/1"], 30,
               message="the pattern's branch is followed")  # fmt: skip
    wait_until(lambda: repo(served, "second")["last_seen_sha"] == remote.remote_tip("main"), 30, message="baseline")
    wait_until(lambda: (ready(served, "second", "release/1") or {}).get("status") == "True", 30, message="synced")

    on_release = remote.commit({"second/main.yml": pipeline("second", "two")}, branch="release/1")
    on_feature = remote.commit({"second/main.yml": pipeline("second", "three")}, branch="feature/x")
    on_main = remote.commit({"second/main.yml": pipeline("second", "four")}, branch="main")
    runs = wait_until(lambda: (found := runs_of(served, "second")) and {on_release, on_main} <= found.keys() and found,
                      60, message="a run on each followed branch")  # fmt: skip
    assert runs[on_release]["branch"] == "release/1"
    assert runs[on_main]["branch"] == "main"
    assert on_feature not in runs

    # a manual run in the registered repository, named by the request; an unknown name is a 404
    r = served.post("/v1/runs", json={"pipeline": "second", "repository": "second"})
    assert r.status_code == 201, r.text
    assert (r.json()["commit_sha"], r.json()["branch"]) == (on_main, "main")
    r = served.post("/v1/runs", json={"pipeline": "second", "repository": "second", "ref": "release/1"})
    assert r.status_code == 201, r.text  # a further branch by name: its tip, and the run records the branch
    assert (r.json()["commit_sha"], r.json()["branch"]) == (on_release, "release/1")
    r = served.post("/v1/runs", json={"pipeline": "second", "repository": "nowhere"})
    assert r.status_code == 404 and "nowhere" in r.json()["detail"]

    # the repository ODIN_REPO names is still followed, listed beside it, and changed only through the settings
    listed = {r["name"]: r for r in served.get("/v1/repos").json()["items"]}
    assert listed["second"]["origin"] == "api"
    (settings_repo,) = [r for r in listed.values() if r["origin"] == "settings"]
    r = served.request("PATCH", f"/v1/repos/{settings_repo['name']}", json={"poll_interval": 5})
    assert r.status_code == 409 and "ODIN_REPO" in r.json()["detail"]
    assert [e["kind"] for e in audit(served, "second")] == ["repo.added"]
    assert audit(served, "second")[0]["by"] == "admin"


def seen_tags(served: Served, name: str) -> dict[str, str] | None:
    """The remote's tags at the repository's last listing, read from the store (None: not listed yet)."""
    engine = create_db_engine(served.db_url)
    try:
        with engine.connect() as conn:
            seen = conn.execute(sa.select(REPOSITORIES.c.tags_seen).where(REPOSITORIES.c.name == name)).scalar()
            return None if seen is None else dict(seen)
    finally:
        engine.dispose()


def test_a_new_tag_a_pattern_matches_runs_its_commit_once(served: Served, tmp_path: Path) -> None:
    remote = GitRemote.create(tmp_path / "tagged")
    released = remote.commit({"tagged/main.yml": pipeline("tagged", "one")}, message="first")
    remote.tag("v0.9")  # there before the pattern: the baseline
    body = {"name": "tagged", "url": remote.file_url, "tags": ["v*"], "poll_interval": 0.2}
    r = served.post("/v1/repos", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["tags"] == ["v*"]
    wait_until(lambda: seen_tags(served, "tagged") == {"v0.9": released}, 30, message="the tags' baseline")
    assert released not in runs_of(served, "tagged")  # the baseline commit's own run would be a poll's: none

    tagged = remote.commit({"tagged/main.yml": pipeline("tagged", "two")}, message="second", branch="side")
    remote.tag("v1.0", tagged, message="release")
    remote.tag("rc-1", tagged)  # no pattern matches it
    runs = wait_until(lambda: (found := runs_of(served, "tagged")) and tagged in found and found, 60,
                      message="the tag's run")  # fmt: skip
    assert (runs[tagged]["tag"], runs[tagged]["trigger"], runs[tagged]["branch"]) == ("v1.0", "tag", None)
    wait_until(lambda: (seen_tags(served, "tagged") or {}).get("rc-1") == tagged, 30, message="listed again")
    items = served.get("/v1/runs", params={"limit": 500}).json()["items"]
    assert [r["id"] for r in items if r["tag"]] == [runs[tagged]["id"]]  # one run for the tag, none for rc-1

    r = served.request("PATCH", "/v1/repos/tagged", json={"tags": []})
    assert r.status_code == 200 and r.json()["tags"] == [], r.text
    r = served.post("/v1/repos", json={"name": "badtag", "url": remote.file_url, "tags": ["v 1"]})
    assert r.status_code == 422 and "not a tag name" in r.json()["detail"]


@pytest.mark.parametrize("field", ["credentials_ref", "webhook_secret_ref"])
def test_a_secret_is_refused_unless_given_by_reference(served: Served, field: str) -> None:
    body = {"name": f"leaky-{field[:4]}", "url": "https://git.example.com/acme/ml.git", field: "ghp_plainsecret"}
    r = served.post("/v1/repos", json=body)
    assert r.status_code == 422, r.text
    assert "env:NAME or file:/path" in r.json()["detail"] and "ghp_plainsecret" not in r.json()["detail"]
    assert served.get(f"/v1/repos/{body['name']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "https://user:tok@git.example.com/x.git"}, "password or token"),
        ({"url": "http://gitea.svc:3000/acme/x.git"}, "ODIN_GIT_ALLOW_HTTP=true on the server allows it"),
        ({"url": "https://git.example.com/x.git", "branches": ["release/*"]}, "every pattern has wildcards"),
        ({"url": "https://git.example.com/x.git", "branches": ["bad branch"]}, "not a branch name"),
        ({"url": "https://git.example.com/x.git", "poll_interval": 0}, "poll_interval"),
        ({"url": "https://git.example.com/x.git", "namespace": "Not_A_Namespace"}, "namespace"),
    ],
)
def test_bad_registrations_are_refused_with_what_to_change(served: Served, body: dict[str, Any], says: str) -> None:
    r = served.post("/v1/repos", json={"name": "bad", **body})
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]


def test_artifact_retention_is_set_per_repository(served: Served) -> None:
    """What the retention sweep reads for a registered repository is what the admin set (issue 11, Retention)."""
    body = {"name": "kept", "url": "https://git.example.com/kept.git", "keep_runs": 5, "enabled": False}
    r = served.post("/v1/repos", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["keep_runs"], r.json()["keep_days"]) == (5, None)

    def policy() -> tuple[int | None, float | None]:
        engine = create_db_engine(served.db_url)
        try:
            with engine.connect() as conn:
                repo_id = conn.execute(sa.select(REPOSITORIES.c.id).where(REPOSITORIES.c.name == "kept")).scalar_one()
            [found] = [p for p in policies(engine) if p.repo_id == repo_id]
            return found.keep_runs, found.keep_days
        finally:
            engine.dispose()

    assert policy() == (5, None)
    for bad in ({"keep_runs": 0}, {"keep_days": -1}):  # keeping nothing is refused; null keeps every run's
        r = served.request("PATCH", "/v1/repos/kept", json=bad)
        assert r.status_code == 400 and next(iter(bad)) in r.json()["detail"], r.text
    r = served.request("PATCH", "/v1/repos/kept", json={"keep_runs": None, "keep_days": 30})
    assert r.status_code == 200, r.text
    assert policy() == (None, 30.0)
    assert audit(served, "kept")[-1]["retention_keep_days"] == 30.0


def test_pull_requests_are_opted_into_per_repository(served: Served) -> None:
    """Off by default; `same-repo` or `all`, and the logins whose /retest is obeyed (docs/webhooks.md#pull-requests)."""
    r = served.post("/v1/repos", json={"name": "prs", "url": "https://git.example.com/prs.git", "enabled": False})
    assert r.status_code == 201, r.text
    assert (r.json()["pull_requests"], r.json()["pr_approvers"]) == ("off", [])
    r = served.request("PATCH", "/v1/repos/prs", json={"pull_requests": "all", "pr_approvers": ["alice", "bob.b"]})
    assert r.status_code == 200, r.text
    assert (r.json()["pull_requests"], r.json()["pr_approvers"]) == ("all", ["alice", "bob.b"])
    assert audit(served, "prs")[-1]["pull_requests"] == "all"
    r = served.request("PATCH", "/v1/repos/prs", json={"pull_requests": "forks"})
    assert r.status_code == 400 and "pull_requests" in r.json()["detail"], r.text
    r = served.request("PATCH", "/v1/repos/prs", json={"pr_approvers": ["not a login"]})
    assert r.status_code == 422 and "pr_approvers" in r.json()["detail"], r.text
    assert served.get("/v1/repos/prs").json()["pr_approvers"] == ["alice", "bob.b"], "nothing half-applied"


def test_only_admins_manage_repositories(served: Served) -> None:
    member = served.user("repo-member", "member")
    assert served.get("/v1/repos", token=member).status_code == 403
    r = served.post("/v1/repos", token=member, json={"name": "nope", "url": "https://git.example.com/x.git"})
    assert r.status_code == 403


def test_an_unreachable_remote_or_missing_credentials_show_as_not_ready(served: Served, tmp_path: Path) -> None:
    r = served.post("/v1/repos", json={"name": "gone", "url": str(tmp_path / "missing.git"), "poll_interval": 0.2})
    assert r.status_code == 201, r.text
    cond = wait_until(lambda: (c := ready(served, "gone")) and c["status"] == "False" and c, 30, message="not ready")
    assert cond["reason"] == "RemoteUnreachable" and "does not exist" in cond["message"]
    readiness = served.get("/readyz")  # a mistyped registration does not take the API out of service
    assert readiness.status_code == 200 and readiness.json()["checks"]["repo:gone"].startswith("unavailable")

    body = {"name": "locked", "url": "https://git.example.invalid/acme/ml.git", "credentials_ref": "env:NO_SUCH_TOK"}
    assert served.post("/v1/repos", json=body).status_code == 201
    cond = wait_until(lambda: (c := ready(served, "locked")) and c["status"] == "False" and c, 30, message="no creds")
    assert cond["reason"] == "CredentialsUnavailable" and "env:NO_SUCH_TOK" in cond["message"]
    assert repo(served, "locked")["followed_branches"] == []


def test_disabling_and_removing_keep_the_history(served: Served, tmp_path: Path) -> None:
    remote = GitRemote.create(tmp_path / "third")
    remote.commit({"third/main.yml": pipeline("third", "one")}, message="first")
    assert (
        served.post("/v1/repos", json={"name": "third", "url": remote.file_url, "poll_interval": 0.2}).status_code
        == 201
    )
    wait_until(lambda: repo(served, "third")["last_seen_sha"] == remote.remote_tip("main"), 30, message="baseline")
    sha = remote.commit({"third/main.yml": pipeline("third", "two")})
    run = wait_until(lambda: runs_of(served, "third").get(sha), 60, message="a run of the push")
    served.wait_run(run["id"])

    r = served.request("PATCH", "/v1/repos/third", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["followed_branches"] == []  # this replica (the leader) stopped following it at once

    r = served.request("DELETE", "/v1/repos/third")
    assert r.status_code == 200 and r.json()["removed_at"] is not None
    assert "third" not in {x["name"] for x in served.get("/v1/repos").json()["items"]}
    assert "third" in {x["name"] for x in served.get("/v1/repos", params={"removed": "true"}).json()["items"]}
    assert served.get(f"/v1/runs/{run['id']}").json()["commit_sha"] == sha  # its runs stay readable
    assert served.get(f"/v1/commits/{sha}").status_code == 200
    assert served.request("PATCH", "/v1/repos/third", json={"enabled": True}).status_code == 404
    assert served.post("/v1/repos", json={"name": "third", "url": remote.file_url}).status_code == 409
    trail = audit(served, "third")
    assert [e["kind"] for e in trail] == ["repo.added", "repo.updated", "repo.removed"]
    assert trail[1]["enabled"] is False and trail[1]["by"] == "admin"


def test_odinctl_manages_repositories(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "config"
    login = odinctl("login", "--password-stdin", server=served.server, config_dir=config, stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr

    def ctl(*args: str, code: int = 0) -> str:
        res = odinctl(*args, server=served.server, config_dir=config)
        assert res.returncode == code, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        return res.stdout + res.stderr

    url = "https://git.example.com/acme/vision.git"
    add = ("repos", "add", url, "--name", "vision", "--branch", "main", "--branch", "release/*", "--tag", "v*")
    flags = ("--poll-interval", "60", "--run-policy", "each", "--credentials-ref", "env:VISION_TOKEN", "--disabled")
    assert "following vision" in ctl(*add, *flags)
    shown = json.loads(ctl("repos", "show", "vision", "-o", "json"))
    assert shown["branches"] == ["main", "release/*"] and shown["run_policy"] == "each" and shown["tags"] == ["v*"]
    assert shown["credentials_ref"] == "env:VISION_TOKEN" and shown["enabled"] is False
    assert "vision" in ctl("repos", "list", "-o", "name").split()
    assert "release/*" in ctl("repos", "list")
    assert "not the secret itself" in ctl("repos", "update", "vision", "--webhook-secret-ref", "s3cret", code=1)
    ctl("repos", "update", "vision", "--branch", "main", "--credentials-ref", "")
    shown = json.loads(ctl("repos", "show", "vision", "-o", "json"))
    assert shown["branches"] == ["main"] and shown["credentials_ref"] is None
    ctl("repos", "update", "vision", "--tag", "v*", "--tag", "rc-*")
    assert "tags:         v*, rc-*" in ctl("repos", "show", "vision")
    ctl("repos", "update", "vision", "--tag", "")
    assert json.loads(ctl("repos", "show", "vision", "-o", "json"))["tags"] == []
    ctl("repos", "update", "vision", "--pull-requests", "same-repo", "--pr-approver", "alice")
    shown = json.loads(ctl("repos", "show", "vision", "-o", "json"))
    assert (shown["pull_requests"], shown["pr_approvers"]) == ("same-repo", ["alice"])
    assert "pull requests: same-repo (/retest also by alice)" in ctl("repos", "show", "vision")
    ctl("repos", "update", "vision", "--pr-approver", "")
    assert json.loads(ctl("repos", "show", "vision", "-o", "json"))["pr_approvers"] == []
    ctl("repos", "update", "vision", "--keep-runs", "10", "--keep-days", "14")
    assert "newest 10 runs or last 14 days keep their artifacts" in ctl("repos", "show", "vision")
    ctl("repos", "update", "vision", "--keep-runs", "0")
    assert json.loads(ctl("repos", "show", "vision", "-o", "json"))["keep_runs"] is None
    assert "removed vision" in ctl("repos", "remove", "vision")
    assert "no followed repository" in ctl("repos", "remove", "vision", code=1)


def test_a_registration_written_by_another_replica_is_picked_up_without_a_restart(
    served: Served, tmp_path: Path
) -> None:
    remote = GitRemote.create(tmp_path / "fourth")
    remote.commit({"fourth/main.yml": pipeline("fourth", "one")}, message="first")
    engine = create_db_engine(served.db_url)  # as another replica's API would: straight into the store
    try:
        values = {"url": remote.file_url, "branch": "main", "branches": ["main"], "poll_interval": 0.2}
        insert_record(engine, "fourth", values, by="elsewhere")
    finally:
        engine.dispose()
    wait_until(lambda: repo(served, "fourth")["last_seen_sha"] == remote.remote_tip("main"), 30,
               message="the leader's periodic refresh follows it")  # fmt: skip
    assert repo(served, "fourth")["followed_branches"] == ["main"]
