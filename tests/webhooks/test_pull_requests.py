"""Pull / merge requests run their pipelines (issue 13 item 3), for GitHub, GitLab, Gitea, Bitbucket Cloud and
Bitbucket Server / Data Center.

Deliveries shaped like the providers' own (tests/webhooks/data) go over real HTTP to an in-process Odin following a
real bare repository; the test plays the provider by publishing each pull request's head where that provider keeps it
(`refs/pull/N/head`, `refs/merge-requests/N/head`, a fork's branch for Bitbucket), and Odin fetches it from
there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from odin.controller.store.models import TASK_RUNS
from odin.webhooks import notify
from tests.support.git import GitRemote
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.fake_receivers import FakeSlack
from tests.webhooks.pr_payloads import (
    FEATURE,
    FORK_NUMBERS,
    PR_REFS,
    fresh,
    gitea_pr,
    github_pr,
    gitlab_mr,
    head,
    server_comment,
    server_own_pr,
    server_pr,
)
from tests.webhooks.support import HELLO, Odin, Recorded, load

SECRET_TASK = (
    "name: hello\ntasks:\n  - name: hi\n    image: busybox\n    command: [sh, -c, 'cat /etc/creds/token']\n"
    "    secrets: [{name: db-creds, path: /etc/creds}]\n"
)
SLOW = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [sh, -c, 'sleep 60']}\n"


def send(odin: Odin, provider: str, delivery: Recorded) -> tuple[int, dict[str, Any]]:
    res = odin.send(provider, delivery)
    return res.status_code, res.json()


def run_of(odin: Odin, run_id: str) -> Any:
    [row] = [r for r in odin.runs() if r.id == run_id]
    return row


def finished(odin: Odin, run_id: str, timeout: float = 30) -> Any:
    terminal = {"succeeded", "failed", "cancelled", "error", "skipped"}

    def done() -> Any:
        row = run_of(odin, run_id)
        return row if row.status in terminal else None

    return wait_until(done, timeout, message=f"run {run_id} finishes")


def test_a_github_pull_request_runs_its_head_once(odin_factory: OdinFactory) -> None:
    odin = odin_factory(pull_requests="same-repo")
    sha = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": HELLO.format(name="hello", marker="pr42")})
    delivery = github_pr(sha)
    status, body = send(odin, "github", delivery)
    assert (status, body["status"], body["commit"], body["pull_request"]) == (202, "accepted", sha, 42), body
    [run_id] = body["runs"]
    run = finished(odin, run_id)
    assert (run.pipeline, run.trigger, run.pull_request, run.pr_provider) == ("hello", "pull_request", 42, "github")
    assert (run.status, run.secrets_withheld, run.commit_sha) == ("succeeded", False, sha)
    assert run.triggered_by.startswith("github:")
    assert odin.commit_row(sha).validation == "valid", "validated and recorded on the commit, as for a push"

    # The provider's retry of the same delivery, and another delivery about the same head: one run.
    status, body = send(odin, "github", delivery)
    assert (status, body["status"]) == (200, "duplicate"), body
    status, body = send(odin, "github", github_pr(sha, action="reopened"))
    assert (status, body["runs"], body["existing"]) == (202, [], [run_id]), body
    assert [r.id for r in odin.runs(sha)] == [run_id]


def test_a_new_head_supersedes_the_runs_of_the_older_one(odin_factory: OdinFactory, db_url: str) -> None:
    odin = odin_factory(db_url, pull_requests="same-repo")  # run policy `latest`; SQLite and Postgres
    first = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": SLOW})
    status, body = send(odin, "github", github_pr(first))
    assert status == 202, body
    [older] = body["runs"]
    wait_until(lambda: run_of(odin, older).status == "running", 30, message="the first head's run starts")

    second = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": HELLO.format(name="hello", marker="pr42b")})
    status, body = send(odin, "github", github_pr(second, action="synchronize"))
    assert (status, body["superseded"]) == (202, [older]), body
    assert finished(odin, older).status == "cancelled"
    assert finished(odin, body["runs"][0]).status == "succeeded"


def test_a_forks_pull_request_runs_without_secrets_and_never_starts_a_task_that_asks_for_one(
    odin_factory: OdinFactory, tmp_path: Path
) -> None:
    odin = odin_factory(pull_requests="all")
    files = {"hello/main.yml": SECRET_TASK, "train/main.yml": HELLO.format(name="train", marker="from-a-fork")}
    sha = head(odin.remote, "refs/pull/43/head", files, fork=True)
    status, body = send(odin, "github", github_pr(sha, action="synchronize", fork=True))
    assert status == 202 and "secrets are withheld" in body["detail"], body
    runs = {run_of(odin, r).pipeline: finished(odin, r) for r in body["runs"]}
    hello, train = runs["hello"], runs["train"]
    assert (hello.status, hello.reason) == ("failed", "SecretsWithheld")
    assert "secrets are withheld from pull requests from forks" in hello.message and "db-creds" in hello.message
    [task] = odin.rows(TASK_RUNS, TASK_RUNS.c.run_id == hello.id)
    assert (task.status, task.attempt, task.started_at) == ("skipped", 0, None), "the task never started"
    assert (train.status, train.secrets_withheld, train.pull_request) == ("succeeded", True, 43)


def test_forks_are_ignored_unless_the_repository_runs_them(odin_factory: OdinFactory) -> None:
    odin = odin_factory(pull_requests="same-repo")
    sha = head(odin.remote, "refs/pull/43/head", {"hello/main.yml": HELLO.format(name="hello", marker="fork")},
               fork=True)  # fmt: skip
    status, body = send(odin, "github", github_pr(sha, fork=True))
    assert (status, body["status"]) == (200, "ignored"), body
    assert "comes from a fork (mallory/ml)" in body["detail"] and "--pull-requests all" in body["detail"]
    [row] = odin.deliveries()
    assert row.outcome == "ignored" and "fork" in row.reason
    assert odin.runs() == []


@pytest.mark.parametrize("provider", ["gitlab", "gitea"])
def test_a_gitlab_or_gitea_fork_runs_without_secrets_and_is_ignored_where_forks_are_not_run(
    odin_factory: OdinFactory, provider: str
) -> None:
    """A fork's merge request (GitLab: `source_project_id` is not `target_project_id`) or pull request (Gitea:
    `head.repo` is the fork), as those providers send it: the head is fetched from the target repository's own ref,
    which the provider keeps for forks too, and runs with no secret; a repository that runs only its own branches'
    pull requests ignores it."""
    number = FORK_NUMBERS[provider]
    announce = gitlab_mr if provider == "gitlab" else gitea_pr
    files = {"hello/main.yml": SECRET_TASK, "train/main.yml": HELLO.format(name="train", marker=f"{provider}-fork")}
    own_repo_only = odin_factory(pull_requests="same-repo")
    sha = head(own_repo_only.remote, PR_REFS[provider](number), files, fork=True)
    status, body = send(own_repo_only, provider, announce(sha, fork=True))
    assert (status, body["status"]) == (200, "ignored"), body
    assert "comes from a fork (mallory/ml)" in body["detail"], body
    assert own_repo_only.runs() == []

    odin = odin_factory(pull_requests="all")
    status, body = send(odin, provider, announce(sha, fork=True))
    assert (status, body["commit"], body["pull_request"]) == (202, sha, number), body
    assert "secrets are withheld" in body["detail"], body
    runs = {run_of(odin, r).pipeline: finished(odin, r) for r in body["runs"]}
    hello, train = runs["hello"], runs["train"]
    assert (hello.status, hello.reason, hello.secrets_withheld) == ("failed", "SecretsWithheld", True)
    assert "db-creds" in hello.message
    [task] = odin.rows(TASK_RUNS, TASK_RUNS.c.run_id == hello.id)
    assert (task.status, task.started_at) == ("skipped", None), "the task that asks for a secret never started"
    assert (train.status, train.secrets_withheld, train.pr_provider, train.pull_request) == (
        "succeeded", True, provider, number
    )  # fmt: skip


def test_a_pull_request_claiming_a_branch_that_lacks_its_head_is_a_forks(odin_factory: OdinFactory) -> None:
    """The payload's word that the head is the repository's own branch is not enough to hand out secrets: that
    branch must have the commit (a signed but lying payload, or a fork's branch of the same name)."""
    odin = odin_factory(pull_requests="same-repo")
    sha = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": SECRET_TASK}, fork=True)
    status, body = send(odin, "github", github_pr(sha))
    assert status == 422 and "treated as a fork's" in body["detail"], body
    assert odin.runs() == []

    odin = odin_factory(pull_requests="all")  # the same remote: refs/pull/42/head still names the commit
    status, body = send(odin, "github", github_pr(sha))
    assert status == 202 and "secrets are withheld" in body["detail"], body
    run = finished(odin, body["runs"][0])
    assert (run.status, run.reason, run.secrets_withheld) == ("failed", "SecretsWithheld", True)


def test_bad_pull_request_input_gets_a_clear_answer_and_loses_nothing(odin_factory: OdinFactory) -> None:
    odin = odin_factory(pull_requests="all")
    sha = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": HELLO.format(name="hello", marker="bad")})

    status, body = send(odin, "github", github_pr(sha, action="closed"))
    assert (status, body["status"]) == (200, "ignored") and "action `closed` starts nothing" in body["detail"]

    other_base = github_pr(sha)
    other_base.body["pull_request"]["base"]["ref"] = "develop"
    status, body = send(odin, "github", other_base)
    assert (status, body["status"]) == (200, "ignored") and "targets develop" in body["detail"], body

    malformed = github_pr(sha)
    malformed.body["pull_request"]["number"] = "42"
    status, body = send(odin, "github", malformed)
    assert status == 400 and "number" in body["detail"], body

    not_the_head = github_pr("f" * 40)
    status, body = send(odin, "github", not_the_head)
    assert (status, body["status"]) == (422, "rejected") and "is not on pull request #42" in body["detail"], body

    no_ref = github_pr(sha)
    no_ref.body["pull_request"]["number"] = 99
    status, body = send(odin, "github", no_ref)
    assert status == 422 and "refs/pull/99/head" in body["detail"], body

    assert odin.runs() == []
    outcomes = sorted(r.outcome for r in odin.deliveries())
    assert outcomes == ["ignored", "ignored", "rejected", "rejected"], "each answered delivery is recorded"
    # Nothing was lost: the same head, properly announced, still runs.
    status, body = send(odin, "github", github_pr(sha))
    assert status == 202 and len(body["runs"]) == 1, body
    assert finished(odin, body["runs"][0]).status == "succeeded"


def test_github_retest_is_obeyed_for_members_and_ignored_for_others(odin_factory: OdinFactory, db_url: str) -> None:
    odin = odin_factory(db_url, pull_requests="same-repo")  # SQLite and Postgres
    sha = head(odin.remote, "refs/pull/42/head", {"hello/main.yml": HELLO.format(name="hello", marker="retest")})
    status, body = send(odin, "github", github_pr(sha))
    first = body["runs"][0]
    finished(odin, first)

    stranger = fresh(load("github", "issue_comment"), "github")
    stranger.body["comment"]["author_association"] = "CONTRIBUTOR"
    stranger.body["comment"]["user"]["login"] = "passer-by"
    status, body = send(odin, "github", stranger)
    assert (status, body["status"]) == (200, "ignored"), body
    assert "/retest by passer-by (CONTRIBUTOR)" in body["detail"] and "not authorised" in body["detail"]

    status, body = send(odin, "github", fresh(load("github", "issue_comment"), "github"))
    assert (status, body["status"], body["commit"]) == (202, "accepted", sha), body
    [again] = body["runs"]
    assert again != first
    run = finished(odin, again)
    assert (run.trigger, run.triggered_by, run.status) == ("pull_request", "github:retest:octocat", "succeeded")
    assert [r.outcome for r in odin.deliveries()] == ["accepted", "ignored", "accepted"]


def test_a_gitlab_merge_request_runs_and_approvers_may_retest(odin_factory: OdinFactory) -> None:
    odin = odin_factory(pull_requests="same-repo", pr_approvers=["maintainer"])
    sha = head(odin.remote, "refs/merge-requests/7/head", {"hello/main.yml": HELLO.format(name="hello", marker="mr")})
    delivery = fresh(load("gitlab", "merge_request"), "gitlab")
    delivery.body["object_attributes"]["last_commit"]["id"] = sha
    status, body = send(odin, "gitlab", delivery)
    assert (status, body["pull_request"]) == (202, 7), body
    run = finished(odin, body["runs"][0])
    assert (run.pr_provider, run.pull_request, run.status) == ("gitlab", 7, "succeeded")

    note = fresh(load("gitlab", "note"), "gitlab")
    note.body["merge_request"]["last_commit"]["id"] = sha
    note.body["user"]["username"] = "jmon"
    status, body = send(odin, "gitlab", note)
    assert (status, body["status"]) == (200, "ignored") and "not authorised" in body["detail"], body

    note = fresh(load("gitlab", "note"), "gitlab")
    note.body["merge_request"]["last_commit"]["id"] = sha
    status, body = send(odin, "gitlab", note)
    assert status == 202, body
    assert finished(odin, body["runs"][0]).triggered_by == "gitlab:retest:maintainer"
    assert len(odin.runs(sha)) == 2


def test_a_gitea_pull_request_runs_and_retest_names_one_pipeline(odin_factory: OdinFactory) -> None:
    odin = odin_factory(pull_requests="same-repo", pr_approvers=["maintainer"])
    files = {
        "hello/main.yml": HELLO.format(name="hello", marker="gitea"),
        "train/main.yml": HELLO.format(name="train", marker="gitea"),
    }
    sha = head(odin.remote, "refs/pull/12/head", files)
    delivery = fresh(load("gitea", "pull_request"), "gitea")
    delivery.body["pull_request"]["head"]["sha"] = sha
    status, body = send(odin, "gitea", delivery)
    assert status == 202 and len(body["runs"]) == 2, body
    for run_id in body["runs"]:
        finished(odin, run_id)

    # "/retest train" from an approver: the comment names no commit or fork; Odin fetches the head and remembers
    # the pull request came from the repository itself.
    status, body = send(odin, "gitea", fresh(load("gitea", "issue_comment"), "gitea"))
    assert status == 202, body
    [run_id] = body["runs"]
    run = finished(odin, run_id)
    assert (run.pipeline, run.commit_sha, run.secrets_withheld) == ("train", sha, False)

    unknown = fresh(load("gitea", "issue_comment"), "gitea")
    unknown.body["comment"]["body"] = "/retest nosuch"
    status, body = send(odin, "gitea", unknown)
    assert status == 422 and "no pipeline 'nosuch'" in body["detail"], body


def test_a_bitbucket_pull_request_from_a_fork_is_fetched_from_the_fork(
    odin_factory: OdinFactory, tmp_path: Path
) -> None:
    odin = odin_factory(pull_requests="all", pr_approvers=["alex"])
    upstream = odin.remote
    fork = GitRemote.create(tmp_path / "fork")
    fork.work.remotes.create("upstream", upstream.url).fetch(["+refs/heads/main:refs/heads/main"])
    fork.push("main")  # the fork starts as a copy of the repository
    sha = fork.commit(
        {"train/main.yml": HELLO.format(name="train", marker="bitbucket-fork")},
        "From a fork",
        branch=FEATURE,
        parents=[upstream.head],
    )
    assert upstream.bare.get(sha) is None, "the commit is only in the fork"
    delivery = fresh(load("bitbucket", "pullrequest_created"), "bitbucket")
    source = delivery.body["pullrequest"]["source"]
    source["commit"]["hash"] = sha[:12]
    source["repository"]["links"]["html"]["href"] = fork.url
    status, body = send(odin, "bitbucket", delivery)
    assert (status, body["commit"]) == (202, sha), body
    run = finished(odin, body["runs"][0])
    assert (run.pipeline, run.pr_provider, run.secrets_withheld, run.status) == ("train", "bitbucket", True,
                                                                                 "succeeded")  # fmt: skip

    comment = fresh(load("bitbucket", "pullrequest_comment_created"), "bitbucket")
    comment.body["pullrequest"] = delivery.body["pullrequest"]
    status, body = send(odin, "bitbucket", comment)
    assert status == 202, body
    assert finished(odin, body["runs"][0]).secrets_withheld is True

    # A pull request from a branch of the repository itself: its source branch, fetched from the repository.
    own = head(upstream, "refs/heads/" + FEATURE, {"hello/main.yml": HELLO.format(name="hello", marker="bb-own")})
    same = fresh(load("bitbucket", "pullrequest_created"), "bitbucket")
    same.headers["X-Event-Key"] = "pullrequest:updated"
    pull = same.body["pullrequest"]
    pull["id"] = 6
    pull["source"]["commit"]["hash"] = own[:12]
    pull["source"]["repository"] = pull["destination"]["repository"]
    status, body = send(odin, "bitbucket", same)
    assert (status, body["commit"], body["pull_request"]) == (202, own, 6), body
    run = finished(odin, body["runs"][0])
    assert (run.pipeline, run.secrets_withheld, run.status) == ("hello", False, "succeeded")

    elsewhere = fresh(load("bitbucket", "pullrequest_created"), "bitbucket")
    elsewhere.body["pullrequest"]["source"]["commit"]["hash"] = sha[:12]  # the fixture's fork on bitbucket.org
    status, body = send(odin, "bitbucket", elsewhere)
    assert status == 422 and "not on the host of the followed repository" in body["detail"], body


def test_a_bitbucket_server_pull_request_runs_from_a_fork_and_from_the_repository(
    odin_factory: OdinFactory, tmp_path: Path
) -> None:
    """`pr:opened` from a fork: fetched from the fork's clone URL, run without secrets; `pr:from_ref_updated` from
    a branch of the repository: run with them; `pr:modified` runs only when the target branch changed."""
    odin = odin_factory(pull_requests="all")
    upstream = odin.remote
    fork = GitRemote.create(tmp_path / "fork")
    fork.work.remotes.create("upstream", upstream.url).fetch(["+refs/heads/main:refs/heads/main"])
    fork.push("main")
    sha = fork.commit(
        {"train/main.yml": HELLO.format(name="train", marker="bbs-fork")},
        "From a fork",
        branch=FEATURE,
        parents=[upstream.head],
    )
    assert upstream.bare.get(sha) is None, "the commit is only in the fork"
    opened = server_pr("pr:opened", sha)
    opened.body["pullRequest"]["fromRef"]["repository"]["links"]["clone"] = [{"href": fork.url, "name": "http"}]
    status, body = send(odin, "bitbucket", opened)
    assert (status, body["commit"], body["pull_request"]) == (202, sha, 7), body
    run = finished(odin, body["runs"][0])
    assert (run.pipeline, run.pr_provider, run.pull_request, run.secrets_withheld, run.status) == (
        "train", "bitbucket", 7, True, "succeeded"
    )  # fmt: skip
    status, body = send(odin, "bitbucket", opened)
    assert (status, body["status"]) == (200, "duplicate"), "the server's retry of one delivery runs nothing more"

    # From a branch of the repository itself (fromRef.repository is toRef.repository): its secrets are not withheld.
    own = head(upstream, "refs/heads/" + FEATURE, {"hello/main.yml": HELLO.format(name="hello", marker="bbs-own")})
    moved = server_pr("pr:from_ref_updated", own, number=8)
    moved.body["previousFromHash"] = upstream.head
    pull = moved.body["pullRequest"]
    pull["fromRef"]["repository"] = pull["toRef"]["repository"]
    status, body = send(odin, "bitbucket", moved)
    assert (status, body["commit"], body["pull_request"]) == (202, own, 8), body
    [own_run] = body["runs"]
    run = finished(odin, own_run)
    assert (run.pipeline, run.secrets_withheld, run.status) == ("hello", False, "succeeded")

    # Retargeted: the head is run against its new base (here the same head and pipelines, so the run exists).
    retargeted = server_pr("pr:modified", own, number=8)
    retargeted.body["pullRequest"]["fromRef"]["repository"] = pull["toRef"]["repository"]
    retargeted.body["previousTarget"] = {"id": "refs/heads/develop", "displayId": "develop", "type": "BRANCH"}
    status, body = send(odin, "bitbucket", retargeted)
    assert (status, body["runs"], body["existing"]) == (202, [], [own_run]), body
    retitled = server_pr("pr:modified", own, number=8)
    retitled.body["previousTitle"] = "WIP"
    retitled.body["previousTarget"] = {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"}
    status, body = send(odin, "bitbucket", retitled)
    assert (status, body["status"]) == (200, "ignored") and "without a new target branch" in body["detail"], body

    # Signed with another secret: refused, nothing recorded.
    forged = server_pr("pr:opened", sha, number=9)
    res = odin.send("bitbucket", forged, secret="not-the-secret")
    assert res.status_code == 401, res.text
    assert [r.pull_request for r in odin.runs()].count(9) == 0


def test_bitbucket_server_retest_is_obeyed_for_approvers_and_ignored_for_others(
    odin_factory: OdinFactory, db_url: str
) -> None:
    """`pr:comment:added` with `/retest` in `comment.text` runs the pull request's head again for the repository's
    `pr_approvers` (by `actor.slug`); anyone else's, and a comment without `/retest`, is ignored with the reason."""
    odin = odin_factory(db_url, pull_requests="same-repo", pr_approvers=["jsmith"])  # SQLite and Postgres
    sha = head(odin.remote, "refs/heads/" + FEATURE, {"hello/main.yml": HELLO.format(name="hello", marker="bbs-rt")})
    status, body = send(odin, "bitbucket", server_own_pr("pr:opened", sha))
    assert (status, body["commit"], body["pull_request"]) == (202, sha, 7), body
    [first] = body["runs"]
    assert finished(odin, first).status == "succeeded"

    status, body = send(odin, "bitbucket", server_comment(sha, by="mallory"))
    assert (status, body["status"]) == (200, "ignored"), body
    assert "/retest by mallory on pull request #7 ignored: not authorised" in body["detail"], body
    status, body = send(odin, "bitbucket", server_comment(sha, "Looks good to me", by="jsmith"))
    assert (status, body["status"]) == (200, "ignored") and "without `/retest`" in body["detail"], body

    status, body = send(odin, "bitbucket", server_comment(sha, "Flaky, trying again.\n/retest\n"))
    assert (status, body["status"], body["commit"], body["pull_request"]) == (202, "accepted", sha, 7), body
    [again] = body["runs"]
    assert again != first
    run = finished(odin, again)
    assert (run.trigger, run.triggered_by, run.pr_provider, run.secrets_withheld, run.status) == (
        "pull_request", "bitbucket:retest:jsmith", "bitbucket", False, "succeeded"
    )  # fmt: skip

    forged = server_comment(sha)
    res = odin.send("bitbucket", forged, secret="not-the-secret")
    assert res.status_code == 401, res.text
    assert [r.outcome for r in odin.deliveries()] == ["accepted", "ignored", "ignored", "accepted"]
    assert len(odin.runs(sha)) == 2


def test_a_forks_runs_send_no_notifications(odin_factory: OdinFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`notify:` entries name the server's secrets (a Slack webhook URL by `env:`): a fork's runs send none, the
    same pipeline from the repository's own branch does."""
    slack = FakeSlack().start()
    monkeypatch.setenv("ODIN_NOTIFY_SLACK", slack.url)
    odin = odin_factory(pull_requests="all")
    notifier = notify.from_settings(odin.settings, odin.controller)
    notifier.start(odin.controller.bus)
    failing = (
        "name: train\ntasks:\n  - {name: fit, image: busybox, command: [sh, -c, 'exit 3']}\n"
        "notify:\n  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
    )
    try:
        sha = head(odin.remote, "refs/pull/43/head", {"train/main.yml": failing}, fork=True)
        _, body = send(odin, "github", github_pr(sha, fork=True))
        fork_run = finished(odin, body["runs"][0])
        assert (fork_run.status, fork_run.secrets_withheld) == ("failed", True)

        own = head(odin.remote, "refs/pull/42/head", {"train/main.yml": failing + "# own\n"})
        _, body = send(odin, "github", github_pr(own))
        own_run = finished(odin, body["runs"][0])
        assert own_run.status == "failed"
        wait_until(lambda: slack.hits, 30, message="the repository's own run notifies")
        assert [own_run.id in hit.body["text"] for hit in slack.hits] == [True], "one message, for the own run"
    finally:
        notifier.stop()
        slack.stop()
