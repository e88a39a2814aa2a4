"""Checks and annotations: a commit's validation problems shown at `file:line` and each run summed up, on local
servers shaped like GitHub's Checks API, GitLab's merge-request notes, Gitea's statuses and Bitbucket's Code Insights.

Every test drives a real Odin (webhook in, sync, validation, local executor) and asserts the exact requests the
provider received and what a user would see there: batching to the provider's limits, the fallback to statuses,
retries, and that a report sent again (after a failure, or by a restarted notifier) updates instead of duplicating.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from odin.controller.store.models import EVENTS
from odin.webhooks import notifiers
from odin.webhooks.notifiers.base import CommitStatusNotifier
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.fake_forges import FakeBitbucket, FakeGitHubChecks, FakeGitLab
from tests.webhooks.fake_receivers import FakeProvider
from tests.webhooks.support import HELLO, Odin, push_via_webhook

TOKEN = "checks-token-456"
PUBLIC = "https://odin.acme.example"
BROKEN = "tasks:\n" + "".join(
    f"  - {{name: t{i}, image: busybox, command: [echo], retriess: 1}}\n" for i in range(60)
)  # 60 problems: `broken/main.yml:<2..61>:49: unknown field `retriess` in task (did you mean `retries`?)`
FIRST_PROBLEM = "unknown field `retriess` in task (did you mean `retries`?)"
FAILING = (
    "name: train\ntasks:\n"
    "  - {name: boom, image: busybox, command: [sh, -c, 'echo first-clue; echo last-clue; exit 3'], retries: 0}\n"
)


def reporting_odin(
    factory: OdinFactory, kind: str, api_url: str, **overrides: Any
) -> tuple[Odin, CommitStatusNotifier]:
    odin = factory(
        status_provider=kind,
        status_api_url=api_url,
        status_token=TOKEN,
        status_repo="acme/ml",
        public_url=PUBLIC,
        **overrides,
    )
    return odin, started(odin)


def started(odin: Odin) -> CommitStatusNotifier:
    """A notifier as `odin serve` makes it, with fast retries."""
    notifier = notifiers.from_settings(odin.settings, odin.controller)
    assert notifier is not None
    notifier.backoff = replace(notifier.backoff, initial=0.05)
    return notifier.start(odin.controller.bus)


def seen_event(odin: Odin, sha: str) -> dict[str, Any]:
    """The commit's `commit.seen` event as the bus carried it (what a restarted notifier would be given again)."""
    [row] = odin.rows(EVENTS, EVENTS.c.kind == "commit.seen", EVENTS.c.commit_sha == sha)
    return dict(row._mapping)


@pytest.fixture
def github() -> Iterator[FakeGitHubChecks]:
    fake = FakeGitHubChecks(token=TOKEN).start()
    yield fake
    fake.stop()


def test_github_annotates_every_problem_in_batches_of_50(odin_factory: OdinFactory, github: FakeGitHubChecks) -> None:
    odin, notifier = reporting_odin(odin_factory, "github", github.url)
    try:
        github.refuse("POST", r"/check-runs$", 502)  # retried with backoff: still one check run in the end
        sha = push_via_webhook(odin, {"broken/main.yml": BROKEN})
        wait_until(lambda: [len(c["annotations"]) for c in github.named("odin/validation")] == [60], 30)
        [check] = github.named("odin/validation", sha)
        assert check["status"] == "completed" and check["conclusion"] == "failure"
        assert check["details_url"] == f"{PUBLIC}/console/commits/{sha}"
        assert check["external_id"] == "validation"
        assert check["output"]["title"] == "60 problems in the pipeline files"
        assert "`broken/main.yml:2:49`" in check["output"]["summary"]
        assert "... and 10 more" in check["output"]["summary"]
        assert check["annotations"][0] == {
            "path": "broken/main.yml",
            "start_line": 2,
            "end_line": 2,
            "start_column": 49,
            "end_column": 49,
            "annotation_level": "failure",
            "message": FIRST_PROBLEM,
            "title": "error at broken/main.yml:2:49",
        }
        assert [a["start_line"] for a in check["annotations"]] == list(range(2, 62))
        # Exactly: the look-up, the refused create, the look-up again, the create with 50, one update with 10.
        calls = [(h.method, h.path.split("?")[0], h.answered) for h in github.hits]
        base = "/repos/acme/ml"
        assert calls == [
            ("GET", f"{base}/commits/{sha}/check-runs", 200),
            ("POST", f"{base}/check-runs", 502),
            ("GET", f"{base}/commits/{sha}/check-runs", 200),
            ("POST", f"{base}/check-runs", 201),
            ("PATCH", f"{base}/check-runs/{check['id']}", 200),
        ]
        created, updated = github.hits[3].body, github.hits[4].body
        assert created["head_sha"] == sha and len(created["output"]["annotations"]) == 50
        assert updated == {"output": {**created["output"], "annotations": updated["output"]["annotations"]}}
        assert len(updated["output"]["annotations"]) == 10
        assert "check_name=odin%2Fvalidation" in github.hits[0].path
        assert all(h.headers["authorization"] == f"Bearer {TOKEN}" for h in github.hits)
        assert all(h.headers["x-github-api-version"] == "2022-11-28" for h in github.hits)
        assert github.statuses == [] and odin.runs(sha) == []
    finally:
        notifier.stop()


def test_github_run_check_ends_with_its_conclusion_tasks_and_failed_task_log(
    odin_factory: OdinFactory, github: FakeGitHubChecks
) -> None:
    odin, notifier = reporting_odin(odin_factory, "github", github.url)
    try:
        sha = push_via_webhook(odin, {"train/main.yml": FAILING})
        [run] = wait_until(lambda: odin.runs(sha), 15)
        wait_until(lambda: [c.get("conclusion") for c in github.named("odin/train")] == ["failure"], 30)
        [check] = github.named("odin/train", sha)
        assert check["external_id"] == run.id
        assert check["details_url"] == f"{PUBLIC}/console/runs/{run.id}"
        assert check["started_at"].endswith("Z") and check["completed_at"].endswith("Z")
        output = check["output"]
        assert output["title"].startswith(f"run {run.id} failed in ") and output["title"].endswith(
            "task boom failed, exit 3"
        )
        assert "| `boom` | failed | 1 |" in output["summary"]
        assert "### Task `boom` failed (attempt 1, exit 3)" in output["text"]
        assert output["text"].index("first-clue") < output["text"].index("last-clue")
        # Created while the run was queued or running, then updated: one check run, never a second.
        sent = [h.body.get("status") for h in github.hits if h.method in ("POST", "PATCH")]
        assert sent[-1] == "completed" and set(sent) <= {"queued", "in_progress", "completed"}
        assert len(github.calls("POST", r"/check-runs$")) == 2  # odin/validation and odin/train, once each
        [validation] = github.named("odin/validation", sha)
        assert validation["conclusion"] == "success" and validation["output"]["title"] == "1 pipeline valid"
    finally:
        notifier.stop()


def test_github_a_run_past_its_timeout_concludes_timed_out(odin_factory: OdinFactory, github: FakeGitHubChecks) -> None:
    odin, notifier = reporting_odin(odin_factory, "github", github.url)
    slow = "name: slow\ntimeout: 1s\ntasks:\n  - {name: nap, image: busybox, command: [sleep, '30']}\n"
    try:
        sha = push_via_webhook(odin, {"slow/main.yml": slow})
        wait_until(lambda: [c.get("conclusion") for c in github.named("odin/slow")] == ["timed_out"], 30)
    finally:
        notifier.stop()
    [run] = odin.runs(sha)
    [check] = github.named("odin/slow", sha)
    assert run.reason == "TimedOut" and check["status"] == "completed"
    assert check["output"]["title"].startswith(f"run {run.id} timed out in ")


def test_a_restarted_notifier_finishes_a_check_without_duplicating_it(
    odin_factory: OdinFactory, github: FakeGitHubChecks
) -> None:
    """The first notifier creates the check with 50 annotations and is refused the update with the other 10 (a 401
    is not retried: it records `report.failed`). A new notifier, knowing nothing, is given the same event: it finds
    the check run by name and external id, sends only the 10 missing annotations, and a third report adds none."""
    odin, first = reporting_odin(odin_factory, "github", github.url)
    github.refuse("PATCH", r"/check-runs/\d+$", 401, "Bad credentials")
    sha = push_via_webhook(odin, {"broken/main.yml": BROKEN})
    wait_until(lambda: odin.events("report.failed"), 30, message="the refused update recorded")
    first.stop()
    [failed] = odin.events("report.failed")
    assert failed.commit_sha == sha and failed.run_id is None
    assert failed.data["context"] == "odin/validation" and "refused by github (401)" in failed.data["reason"]
    assert [len(c["annotations"]) for c in github.named("odin/validation")] == [50]

    second = started(odin)
    try:
        second.on_event(seen_event(odin, sha))
        wait_until(lambda: [len(c["annotations"]) for c in github.named("odin/validation")] == [60], 30)
        second.on_event(seen_event(odin, sha))
        wait_until(lambda: len(github.calls("PATCH", r"/check-runs/\d+$")) == 2, 30)
    finally:
        second.stop()
    [check] = github.named("odin/validation", sha)
    assert [a["start_line"] for a in check["annotations"]] == list(range(2, 62)), "each problem annotated once"
    assert len(github.calls("POST", r"/check-runs$")) == 1
    resumed, again = (h.body for h in github.calls("PATCH", r"/check-runs/\d+$"))
    assert [a["start_line"] for a in resumed["output"]["annotations"]] == list(range(52, 62))
    assert "annotations" not in again["output"] and again["conclusion"] == "failure"


def test_a_github_app_mints_its_installation_token_once(
    odin_factory: OdinFactory, github: FakeGitHubChecks, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "app.pem").write_bytes(pem)
    github.app_id, github.app_public_key = 321, key.public_key()
    odin = odin_factory(
        status_provider="github",
        status_api_url=github.url,
        status_github_app_id=321,
        status_github_app_key=f"file:{tmp_path / 'app.pem'}",
        status_repo="acme/ml",
        public_url=PUBLIC,
    )
    notifier = started(odin)
    try:
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="app")})
        wait_until(lambda: [c.get("conclusion") for c in github.named("odin/train")] == ["success"], 30)
        wait_until(lambda: [c.get("conclusion") for c in github.named("odin/validation")] == ["success"], 30)
    finally:
        notifier.stop()
    assert github.minted == ["ghs_installation_1"], "one installation token, kept for every report"
    checks = [h for h in github.hits if "check-runs" in h.path]
    assert checks and all(h.headers["authorization"] == "Bearer ghs_installation_1" for h in checks)
    assert all(h.answered < 300 for h in github.hits)
    assert [h.path for h in github.hits[:2]] == ["/repos/acme/ml/installation", "/app/installations/42/access_tokens"]
    assert {c["head_sha"] for c in github.checks.values()} == {sha}


def test_checks_refused_fall_back_to_statuses_said_once(
    odin_factory: OdinFactory, github: FakeGitHubChecks, caplog: pytest.LogCaptureFixture
) -> None:
    github.deny_checks = True
    odin, notifier = reporting_odin(odin_factory, "github", github.url)
    try:
        broken = push_via_webhook(odin, {"broken/main.yml": BROKEN})
        wait_until(lambda: any(s["sha"] == broken for s in github.statuses), 30)
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="fallback")})
        train = lambda: [s["state"] for s in github.statuses if s["context"] == "odin/train"]  # noqa: E731
        wait_until(lambda: train()[-1:] == ["success"], 30)
    finally:
        notifier.stop()
    assert github.checks == {}
    [invalid] = [s for s in github.statuses if s["sha"] == broken]
    assert invalid["context"] == "odin/validation" and invalid["state"] == "failure"
    assert {s["sha"] for s in github.statuses if s["context"] == "odin/train"} == {sha}
    refusals = [r for r in caplog.records if "GitHub refused check runs" in r.getMessage()]
    assert len(refusals) == 1 and "Resource not accessible by integration" in refusals[0].getMessage()
    tried = [(h.method, h.answered) for h in github.hits if "check-runs" in h.path]
    assert tried == [("GET", 403)], "after the refusal, checks are not tried again"


def test_gitlab_shows_the_first_problem_and_one_note_on_the_open_merge_request(odin_factory: OdinFactory) -> None:
    gitlab = FakeGitLab(token=TOKEN, merge_requests={7: "opened", 3: "closed"}).start()
    odin, notifier = reporting_odin(odin_factory, "gitlab", gitlab.url + "/api/v4")
    try:
        sha = push_via_webhook(odin, {"broken/main.yml": BROKEN})
        wait_until(lambda: gitlab.notes.get(7), 30, message="the note on the open merge request")
        event = seen_event(odin, sha)
        notifier.on_event(event)  # sent again (a redelivery, a restart): the note is found, not added
        wait_until(lambda: len(gitlab.calls("POST", r"/statuses/")) == 2, 30)
    finally:
        notifier.stop()
        gitlab.stop()
    [status, again] = gitlab.statuses
    assert status == again
    assert status["name"] == "odin/validation" and status["state"] == "failed" and status["sha"] == sha
    assert status["description"] == f"60 problems; first at broken/main.yml:2: {FIRST_PROBLEM}"
    assert status["target_url"] == f"{PUBLIC}/console/commits/{sha}"
    [note] = gitlab.notes[7]
    assert 3 not in gitlab.notes, "a closed merge request gets no note"
    lines = note["body"].splitlines()
    assert lines[0] == f"<!-- odin-report odin/validation {sha} -->"
    assert lines[1].startswith(f"**Odin: 60 problems in the pipeline files** at {sha[:12]} ([details](")
    assert lines[3] == f"- **error** `broken/main.yml:2:49`: {FIRST_PROBLEM}"
    assert len([line for line in lines if line.startswith("- **error**")]) == 60
    assert len(gitlab.calls("POST", r"/notes$")) == 1 and gitlab.calls("PUT", r"/notes/") == []
    assert all(h.headers["private-token"] == TOKEN for h in gitlab.hits)


def test_gitea_status_names_the_first_problem_and_links_the_commit(odin_factory: OdinFactory) -> None:
    gitea = FakeProvider().start()
    odin, notifier = reporting_odin(odin_factory, "gitea", gitea.url + "/api/v1")
    try:
        sha = push_via_webhook(odin, {"broken/main.yml": BROKEN})
        wait_until(lambda: gitea.received, 30)
    finally:
        notifier.stop()
        gitea.stop()
    [posted] = gitea.received
    assert posted.path == f"/api/v1/repos/acme/ml/statuses/{sha}"
    assert posted.headers["authorization"] == f"token {TOKEN}"
    assert posted.body == {
        "state": "failure",
        "context": "odin/validation",
        "description": f"60 problems; first at broken/main.yml:2: {FIRST_PROBLEM}"[:140],
        "target_url": f"{PUBLIC}/console/commits/{sha}",
    }


def test_bitbucket_build_statuses_and_a_code_insights_report_with_annotations(odin_factory: OdinFactory) -> None:
    bitbucket = FakeBitbucket(token=TOKEN).start()
    odin, notifier = reporting_odin(odin_factory, "bitbucket", bitbucket.url + "/2.0")
    try:
        broken = push_via_webhook(odin, {"one/main.yml": BROKEN, "two/main.yml": BROKEN})
        wait_until(lambda: len(bitbucket.calls("POST", r"/annotations$")) == 2, 30)
        notifier.on_event(seen_event(odin, broken))  # sent again: the same report and annotations, updated
        wait_until(lambda: len(bitbucket.calls("POST", r"/annotations$")) == 4, 30)
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="bitbucket")})
        [run] = wait_until(lambda: odin.runs(sha), 15)
        wait_until(lambda: bitbucket.statuses.get((sha, "odin/train"), {}).get("state") == "SUCCESSFUL", 30)
    finally:
        notifier.stop()
        bitbucket.stop()
    status = bitbucket.statuses[(broken, "odin/validation")]
    assert status["state"] == "FAILED" and status["url"] == f"{PUBLIC}/console/commits/{broken}"
    report = bitbucket.reports[(broken, "odin-validation")]
    assert report["result"] == "FAILED" and report["report_type"] == "BUG" and report["reporter"] == "odin"
    assert report["data"] == [
        {"title": "Problems", "type": "NUMBER", "value": 120},
        {"title": "Warnings", "type": "NUMBER", "value": 0},
    ]
    annotations = list(report["annotations"].values())
    assert len(annotations) == 120
    assert {(a["path"], a["line"]) for a in annotations} == {
        (f"{d}/main.yml", line) for d in ("one", "two") for line in range(2, 62)
    }
    first = next(a for a in annotations if (a["path"], a["line"]) == ("one/main.yml", 2))
    assert first["summary"] == f"one/main.yml:2:49: {FIRST_PROBLEM}"
    assert first["severity"] == "HIGH" and first["annotation_type"] == "BUG" and first["result"] == "FAILED"
    batches = [len(json.loads(h.raw)) for h in bitbucket.calls("POST", r"/annotations$")]
    assert batches == [100, 20, 100, 20], "at most 100 per request; the second report updates the same 120"
    assert bitbucket.statuses[(sha, "odin/train")] == {
        "key": "odin/train",
        "state": "SUCCESSFUL",
        "name": "odin/train",
        "description": f"run {run.id} succeeded",
        "url": f"{PUBLIC}/console/runs/{run.id}",
    }
    assert (sha, "odin-train") not in bitbucket.reports, "reports are for validation problems only"
    assert all(h.headers["authorization"] == f"Bearer {TOKEN}" for h in bitbucket.hits)


def test_github_app_settings_errors_are_clear(odin_factory: OdinFactory) -> None:
    odin = odin_factory(status_provider="gitlab", status_github_app_id=321, status_github_app_key="file:/nonexistent")
    with pytest.raises(notifiers.NotifierConfigError, match="for github only"):
        notifiers.from_settings(odin.settings, odin.controller)
    odin.settings.status_provider = "github"
    odin.settings.status_github_app_key = None
    with pytest.raises(
        notifiers.NotifierConfigError, match="both ODIN_STATUS_GITHUB_APP_ID and ODIN_STATUS_GITHUB_APP_KEY"
    ):
        notifiers.from_settings(odin.settings, odin.controller)
