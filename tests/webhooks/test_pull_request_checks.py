"""A pull request's whole path, for each provider (issue 13, "Done when"): its delivery, shaped like the provider's own,
reaches a real `odin serve` over HTTP; Odin fetches the head over smart HTTP, validates it and runs its pipeline, and
the outcome goes back to a local server standing in for the provider's API as statuses on the pull request's head,
with the invalid pipeline's problems at file:line where the provider can show them: GitHub check-run annotations,
GitLab's merge-request note, Bitbucket Cloud's Code Insights annotations; Gitea's and Bitbucket Server's statuses name
the first problem. Bitbucket Server's `/retest` comment runs the head again and its builds follow.

The followed repository is served by `git http-backend` (`tests/support/git_http.py`); the test plays the provider by
publishing the head where it keeps it (`refs/pull/N/head`, `refs/merge-requests/N/head`, the source branch) and
sending the signed delivery. The provider stand-ins are those of test_checks.py (`fake_forges.py`,
`fake_receivers.FakeProvider`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer
from tests.support.server import OdinServer
from tests.support.wait import wait_until
from tests.webhooks.fake_forges import FakeBitbucket, FakeBitbucketServer, FakeGitHubChecks, FakeGitLab
from tests.webhooks.fake_receivers import FakeProvider
from tests.webhooks.pr_payloads import FEATURE, NUMBERS, PR_REFS, head, pr_delivery, server_comment, server_own_pr
from tests.webhooks.support import ALIASES, HELLO, SECRET, signed

TOKEN = "pr-checks-token-123"
PUBLIC = "https://odin.acme.example"
BROKEN = "".join(
    ["tasks:\n", *(f"  - {{name: t{i}, image: busybox, command: [echo], retriess: 1}}\n" for i in range(2))]
)  # two problems, at broken/main.yml:2:49 and :3:49
PROBLEM = "unknown field `retriess` in task (did you mean `retries`?)"
EVERY_PROBLEM = {("broken/main.yml", 2), ("broken/main.yml", 3)}


@dataclass(frozen=True)
class Shown:
    """What the provider shows on a commit, in the same words for each: the validation's and the run's state, and
    the places (file, line) of the problems it shows."""

    validation: str | None
    run: str | None
    places: set[tuple[str, int]]


class Forge:
    """One provider's API stand-in and how to read what it shows on a commit."""

    api_suffix = ""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def shown(self, sha: str) -> Shown:
        raise NotImplementedError


class GitHub(Forge):
    def shown(self, sha: str) -> Shown:
        validation = self.fake.named("odin/validation", sha)
        run = self.fake.named("odin/hello", sha)
        places = {(a["path"], a["start_line"]) for c in validation for a in c["annotations"]}
        return Shown(
            validation[0].get("conclusion") if validation else None, run[0].get("conclusion") if run else None, places
        )


class GitLab(Forge):
    api_suffix = "/api/v4"

    def shown(self, sha: str) -> Shown:
        states = {s["name"]: s["state"] for s in self.fake.statuses if s["sha"] == sha}
        notes = [n["body"] for n in self.fake.notes.get(NUMBERS["gitlab"], []) if sha in n["body"]]
        places = {(m[0], int(m[1])) for n in notes for m in re.findall(r"`([^`:]+):(\d+):\d+`", n)}
        return Shown(states.get("odin/validation"), states.get("odin/hello"), places)


class Gitea(Forge):
    api_suffix = "/api/v1"

    def shown(self, sha: str) -> Shown:
        posted = [h.body for h in self.fake.received if h.path.endswith(f"/statuses/{sha}") and h.answered < 300]
        states = {b["context"]: b["state"] for b in posted}
        descriptions = [b["description"] for b in posted if b["context"] == "odin/validation"]
        places = {(m[0], int(m[1])) for d in descriptions for m in re.findall(r"first at ([^\s:]+):(\d+):", d)}
        return Shown(states.get("odin/validation"), states.get("odin/hello"), places)


class Bitbucket(Forge):
    api_suffix = "/2.0"

    def shown(self, sha: str) -> Shown:
        validation = self.fake.statuses.get((sha, "odin/validation"), {}).get("state")
        run = self.fake.statuses.get((sha, "odin/hello"), {}).get("state")
        report = self.fake.reports.get((sha, "odin-validation"), {})
        places = {(a["path"], a["line"]) for a in report.get("annotations", {}).values()}
        return Shown(validation, run, places)


# provider -> (its stand-in, what it shows for an invalid pipeline beside a run that succeeded)
FORGES: dict[str, tuple[Callable[[], Forge], Shown]] = {
    "github": (
        lambda: GitHub(FakeGitHubChecks(token=TOKEN)),
        Shown("failure", "success", EVERY_PROBLEM),
    ),
    "gitlab": (
        lambda: GitLab(FakeGitLab(token=TOKEN, merge_requests={NUMBERS["gitlab"]: "opened"})),
        Shown("failed", "success", EVERY_PROBLEM),
    ),
    "gitea": (
        lambda: Gitea(FakeProvider()),
        Shown("failure", "success", {("broken/main.yml", 2)}),  # a status only: its description names the first
    ),
    "bitbucket": (
        lambda: Bitbucket(FakeBitbucket(token=TOKEN)),
        Shown("FAILED", "SUCCESSFUL", EVERY_PROBLEM),
    ),
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitRemote, GitHttpServer]]:
    root = tmp_path / "served"
    remote = GitRemote.create(root / "acme")  # served as /acme/remote.git
    remote.commit({"hello/main.yml": HELLO.format(name="hello", marker="v1")}, "Seed")
    with GitHttpServer.serving(root) as git:
        yield remote, git


@pytest.mark.parametrize("provider", list(FORGES))
def test_a_pull_request_is_validated_run_and_reported_on_its_head_at_the_provider(
    provider: str, served: tuple[GitRemote, GitHttpServer], tmp_path: Path
) -> None:
    remote, git = served
    make, expected = FORGES[provider]
    forge = make()
    forge.fake.start()
    env = {
        "ODIN_REPO": git.url("acme/remote.git"),
        "ODIN_GIT_ALLOW_HTTP": "true",
        "ODIN_REPO_ALIASES": ",".join(ALIASES),  # the deliveries name acme/ml at each provider
        "ODIN_PULL_REQUESTS": "same-repo",
        "ODIN_WEBHOOK_SECRET": SECRET,
        "ODIN_POLL_INTERVAL": "3600",  # the delivery, not the timer, brings the head
        "ODIN_STATUS_PROVIDER": provider,
        "ODIN_STATUS_API_URL": forge.fake.url + forge.api_suffix,
        "ODIN_STATUS_TOKEN": TOKEN,
        "ODIN_STATUS_REPO": "acme/ml",
        "ODIN_PUBLIC_URL": PUBLIC,
    }
    try:
        with OdinServer(tmp_path / "state", env) as server:
            wait_until(lambda: "first sync" in server.log(), 60, message="the server's first sync")
            files = {"hello/main.yml": HELLO.format(name="hello", marker=f"pr-{provider}"), "broken/main.yml": BROKEN}
            sha = head(remote, PR_REFS[provider](NUMBERS[provider]), files)
            raw, headers = signed(provider, pr_delivery(provider, sha))
            res = httpx.post(f"{server.url}/webhooks/{provider}", content=raw, headers=headers, timeout=30)
            assert res.status_code == 202, res.text
            body = res.json()
            assert (body["commit"], body["pull_request"], len(body["runs"])) == (sha, NUMBERS[provider], 1), body

            def settled() -> Shown | None:
                shown = forge.shown(sha)
                return shown if shown.run == expected.run and shown.places == expected.places else None

            shown = wait_until(settled, 60, message=f"{provider} shows the pull request's outcome")
            assert shown == expected, server.log()[-3000:]
    finally:
        forge.fake.stop()
    about = [h for h in forge.fake.hits if sha in h.path or sha in h.raw.decode()]
    assert about and all(h.answered < 300 for h in about), [(h.method, h.path, h.answered) for h in about]
    assert all("acme/ml" in h.path or "acme%2Fml" in h.path for h in about), "to the repository of the settings"
    if provider == "github":
        [check] = forge.fake.named("odin/validation", sha)
        assert check["annotations"][0]["message"] == PROBLEM and check["head_sha"] == sha
        assert check["details_url"] == f"{PUBLIC}/console/commits/{sha}"
    if provider == "gitlab":
        [note] = forge.fake.notes[NUMBERS["gitlab"]]
        assert f"- **error** `broken/main.yml:2:49`: {PROBLEM}" in note["body"].splitlines()
    if provider == "bitbucket":
        [run_id] = body["runs"]
        assert forge.fake.statuses[(sha, "odin/hello")]["url"] == f"{PUBLIC}/console/runs/{run_id}"


def gated(name: str, gate: Path, exit_code: int = 0) -> str:
    """A one-task pipeline whose task waits for `gate` to exist, then exits with `exit_code`."""
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done; exit {exit_code}"
    return f"name: {name}\ntasks:\n  - {{name: t, image: busybox, command: [sh, -c, '{script}']}}\n"


def test_a_bitbucket_server_pull_request_gets_build_statuses_and_approvers_may_retest(
    served: tuple[GitRemote, GitHttpServer], tmp_path: Path
) -> None:
    """Bitbucket Server / Data Center (`ODIN_STATUS_PROVIDER=bitbucket-server`, `ODIN_STATUS_API_URL` the server's
    root, here under a context path): a `pr:opened` head's builds go INPROGRESS while its runs run, then SUCCESSFUL
    or FAILED, each linking its run's page; the invalid pipeline's build names its first problem. A `/retest`
    (`pr:comment:added`) by an approver runs the head again, and its builds follow the new runs; anyone else's is
    ignored with the reason."""
    remote, git = served
    fake = FakeBitbucketServer(token=TOKEN, context_path="/bitbucket")
    fake.start()
    gate = tmp_path / "gate"
    env = {
        "ODIN_REPO": git.url("acme/remote.git"),
        "ODIN_GIT_ALLOW_HTTP": "true",
        "ODIN_REPO_ALIASES": ",".join(ALIASES),  # the deliveries name ssh://git@bitbucket.example.com:7999/acme/ml.git
        "ODIN_PULL_REQUESTS": "same-repo",
        "ODIN_PR_APPROVERS": "jsmith",
        "ODIN_WEBHOOK_SECRET": SECRET,
        "ODIN_POLL_INTERVAL": "3600",  # the delivery, not the timer, brings the head
        "ODIN_STATUS_PROVIDER": "bitbucket-server",
        "ODIN_STATUS_API_URL": fake.url + "/bitbucket",
        "ODIN_STATUS_TOKEN": TOKEN,
        "ODIN_STATUS_REPO": "ACME/ml",
        "ODIN_PUBLIC_URL": PUBLIC,
    }

    def deliver(delivery: Any) -> tuple[int, dict[str, Any]]:
        raw, headers = signed("bitbucket", delivery)
        res = httpx.post(f"{server.url}/webhooks/bitbucket", content=raw, headers=headers, timeout=30)
        return res.status_code, res.json()

    def build(sha: str, key: str) -> dict[str, Any]:
        return dict(fake.builds.get((sha, key), {}))

    try:
        with OdinServer(tmp_path / "state", env) as server:
            wait_until(lambda: "first sync" in server.log(), 60, message="the server's first sync")
            files = {
                "hello/main.yml": gated("hello", gate),
                "boom/main.yml": gated("boom", gate, exit_code=3),
                "broken/main.yml": BROKEN,
            }
            sha = head(remote, "refs/heads/" + FEATURE, files)
            status, body = deliver(server_own_pr("pr:opened", sha))
            assert (status, body["commit"], body["pull_request"], len(body["runs"])) == (202, sha, 7, 2), body
            runs = {run_id.split("-")[0]: run_id for run_id in body["runs"]}

            # While the runs run, their builds are in progress, each linking its run's page.
            for pipeline in ("hello", "boom"):
                key = f"odin/{pipeline}"
                wait_until(lambda k=key: build(sha, k).get("state") == "INPROGRESS", 60, message=f"{key} in progress")
                assert build(sha, key)["url"] == f"{PUBLIC}/console/runs/{runs[pipeline]}"
            validation = wait_until(lambda: build(sha, "odin/validation") or None, 60, message="validation build")
            assert validation["state"] == "FAILED"
            assert validation["description"].startswith("2 problems; first at broken/main.yml:2: "), validation
            assert validation["url"] == f"{PUBLIC}/console/commits/{sha}"
            gate.touch()
            wait_until(lambda: build(sha, "odin/hello").get("state") == "SUCCESSFUL", 60, message="hello succeeded")
            wait_until(lambda: build(sha, "odin/boom").get("state") == "FAILED", 60, message="boom failed")
            assert fake.states(sha, "odin/hello")[-1] == "SUCCESSFUL" and "INPROGRESS" in fake.states(sha, "odin/hello")
            assert fake.states(sha, "odin/boom")[-1] == "FAILED" and "INPROGRESS" in fake.states(sha, "odin/boom")
            shown = httpx.get(f"{fake.url}/bitbucket/rest/build-status/1.0/commits/{sha}",
                              headers={"Authorization": f"Bearer {TOKEN}"}).json()  # fmt: skip
            assert {b["key"]: b["state"] for b in shown["values"]} == {
                "odin/validation": "FAILED", "odin/hello": "SUCCESSFUL", "odin/boom": "FAILED"
            }  # fmt: skip

            # /retest: anyone else's is ignored; the approver's runs the head again, and the builds follow.
            status, body = deliver(server_comment(sha, by="mallory"))
            assert (status, body["status"]) == (200, "ignored") and "not authorised" in body["detail"], body
            gate.unlink()  # the retest's task waits again, so its build is seen in progress
            status, body = deliver(server_comment(sha, "/retest hello"))
            assert (status, body["commit"], body["pull_request"], len(body["runs"])) == (202, sha, 7, 1), body
            [again] = body["runs"]
            assert again not in runs.values()

            def retested(state: str) -> bool:
                shown = build(sha, "odin/hello")
                return (shown["state"], shown["url"]) == (state, f"{PUBLIC}/console/runs/{again}")

            wait_until(lambda: retested("INPROGRESS"), 60, message="the retest's build in progress")
            gate.touch()
            wait_until(lambda: retested("SUCCESSFUL"), 60, message="the retest's build successful")
    finally:
        gate.touch()
        fake.stop()
    assert fake.posted and all(h.answered < 300 for h in fake.hits), [(h.method, h.path, h.answered) for h in fake.hits]
    assert all(h.headers["authorization"] == f"Bearer {TOKEN}" for h in fake.hits)
