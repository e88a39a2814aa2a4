"""A real `odin serve` with a pull request's run, for the console and `odinctl` tests that show its number.

The followed repository is served over smart HTTP (`git http-backend`, `ODIN_GIT_ALLOW_HTTP`) at
`http://127.0.0.1:<port>/acme/remote.git`, so its web address is known (`http://127.0.0.1:<port>/acme/remote`) and
the console can link the pull request's page. The test plays GitHub: it publishes the pull request's head at
`refs/pull/42/head` and sends the signed `pull_request` delivery; Odin fetches the head and runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer
from tests.support.server import OdinServer
from tests.support.wait import wait_until
from tests.webhooks.support import ALIASES, SECRET, load, signed

HELLO = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"
NUMBER = 42  # the recorded delivery's pull request, and its head branch:
FEATURE = "feature/bigger-model"


@dataclass(frozen=True)
class PullRequestRun:
    server: OdinServer
    run_id: str
    sha: str
    web_url: str  # the followed repository's page, as the console derives it from its URL


@contextlib.contextmanager
def pull_request_run(tmp: Path, password: str) -> Iterator[PullRequestRun]:
    """`odin serve` (admin password `password`) following a repository over HTTP, with pull request #42's run
    finished."""
    served = tmp / "served"
    remote = GitRemote.create(served / "acme")  # served as /acme/remote.git
    remote.commit({"hello/main.yml": HELLO}, "add hello")
    with GitHttpServer.serving(served) as git:
        url = git.url("acme/remote.git")
        env = {
            "ODIN_REPO": url,
            "ODIN_GIT_ALLOW_HTTP": "true",
            "ODIN_REPO_ALIASES": ",".join(ALIASES),  # the delivery names github.com/acme/ml
            "ODIN_PULL_REQUESTS": "same-repo",
            "ODIN_WEBHOOK_SECRET": SECRET,
            "ODIN_POLL_INTERVAL": "3600",
            "ODIN_ADMIN_PASSWORD": password,
            "ODIN_LOGIN_ATTEMPTS_PER_MINUTE": "100",
        }
        with OdinServer(tmp / "state", env) as server:
            wait_until(lambda: "first sync" in server.log(), 30, message="the server's first sync")
            remote.commit({"hello/main.yml": HELLO.replace("hi]", "pr]")}, "PR change", branch=FEATURE,
                          parents=[remote.head], push=False)  # fmt: skip
            remote.push(FEATURE, force=True)
            sha = remote.publish(FEATURE, f"refs/pull/{NUMBER}/head")
            delivery = load("github", "pull_request")
            delivery.body["action"] = "opened"
            delivery.body["pull_request"]["head"]["sha"] = sha
            raw, headers = signed("github", delivery)
            res = httpx.post(f"{server.url}/webhooks/github", content=raw, headers=headers, timeout=30)
            assert res.status_code == 202, res.text
            [run_id] = res.json()["runs"]
            yield PullRequestRun(server, run_id, sha, url.removesuffix(".git"))
