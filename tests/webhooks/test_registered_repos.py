"""Webhooks for a repository registered through the API (issue 13 items 1-2): its own secret, by reference; a push
to a branch its patterns match syncs that branch and runs, recording the branch; a push to another is answered and
ignored. In process, over real HTTP, on real git repositories."""

from __future__ import annotations

from pathlib import Path

from odin.controller.store.repo_records import insert_record
from tests.support.git import GitRemote
from tests.support.wait import wait_until
from tests.webhooks.support import HELLO, Odin, load, point_at, signed

SECOND_SECRET = "whsec-second-repo-secret"


def push_delivery(odin: Odin, remote: GitRemote, ref: str, after: str, secret: str) -> tuple[int, dict[str, object]]:
    """A GitHub push of `ref` naming `remote` (its URLs replaced by the test repository's), signed with `secret`."""
    delivery = point_at("github", load("github", "push"), after=after)
    delivery.body["ref"] = ref
    delivery.headers["X-GitHub-Delivery"] = f"{ref}-{after}-{secret}"  # each a delivery of its own
    for key in ("html_url", "url", "git_url", "ssh_url", "clone_url", "svn_url"):
        delivery.body["repository"][key] = remote.file_url
    raw, headers = signed("github", delivery, secret)
    res = odin.post("github", raw, headers)
    return res.status_code, res.json()


def test_pushes_to_a_registered_repository_run_on_the_branches_its_patterns_match(odin: Odin, tmp_path: Path) -> None:
    remote = GitRemote.create(tmp_path / "second")
    remote.commit({"vision/main.yml": HELLO.format(name="vision", marker="v1")}, "Seed")
    remote.create_branch("release/1")
    secret_file = tmp_path / "second-secret"
    secret_file.write_text(SECOND_SECRET + "\n")
    values = {"url": remote.file_url, "branch": "main", "branches": ["main", "release/*"], "poll_interval": 3600.0}
    record = insert_record(odin.controller.db, "second", {**values, "webhook_secret_ref": f"file:{secret_file}"},
                           by="test")  # fmt: skip
    odin.controller.refresh_repositories()
    followed = odin.controller.repo("second")
    assert followed.followers is not None
    wait_until(lambda: followed.followers.branches == ["release/1"], 30, message="the pattern's branch is followed")
    release = followed.followers.poller("release/1")
    assert release is not None and release.wait_for_syncs(1, 30)  # its baseline

    sha = remote.commit(
        {"vision/main.yml": HELLO.format(name="vision", marker="v2")}, "Release fix", branch="release/1"
    )
    status, body = push_delivery(odin, remote, "refs/heads/release/1", sha, SECOND_SECRET)
    assert (status, body["status"], body["repository"]) == (202, "accepted", "second"), body
    [run] = wait_until(lambda: odin.runs(sha), 15, message="the run of the pushed commit")
    assert (run.repo_id, run.branch, run.trigger) == (record.id, "release/1", "webhook")

    other = remote.commit({"vision/main.yml": HELLO.format(name="vision", marker="v3")}, "WIP", branch="feature/x")
    status, body = push_delivery(odin, remote, "refs/heads/feature/x", other, SECOND_SECRET)
    assert (status, body["status"]) == (200, "ignored"), body
    assert "feature/x is not followed" in str(body["detail"]) and "release/*" in str(body["detail"])

    # the secret of ODIN_REPO's repository does not sign for this one
    status, body = push_delivery(odin, remote, "refs/heads/release/1", sha, "whsec-test-0123456789abcdef")
    assert status in (401, 403), body
