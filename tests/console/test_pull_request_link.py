"""The run page names the pull request a run ran for (issue 13 item 1), linked to its page at the provider when the
repository's web address is known: over plain HTTP against a real `odin serve` that ran a GitHub pull request's head;
and how the address and the link are told from each kind of repository URL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from odin.api.console.links import pull_request_link, web_url
from tests.console.conftest import PASSWORD
from tests.support.pull_request_run import pull_request_run


def test_the_run_page_links_the_pull_request_it_ran_for(tmp_path: Path) -> None:
    with pull_request_run(tmp_path, PASSWORD) as pr, httpx.Client(base_url=pr.server.url, timeout=30) as http:
        res = http.post("/console/login", data={"username": "admin", "password": PASSWORD, "next": ""})
        assert res.status_code == 303, res.text
        page = http.get(f"/console/runs/{pr.run_id}")
        assert page.status_code == 200, page.text
        found = re.search(r'<dt>Pull request</dt><dd id="run-pull-request">(.*?)</dd>', page.text)
        assert found, "the provenance names the pull request"
        assert found.group(1) == f'<a href="{pr.web_url}/pull/42" rel="noopener">#42</a> on github'
        assert f"<dt>Repository</dt><dd>{pr.web_url}.git</dd>" in page.text, "the run's own repository"


def test_the_web_address_and_the_link_are_told_from_the_url() -> None:
    assert web_url("https://github.com/acme/ml.git") == "https://github.com/acme/ml"
    assert web_url("git@gitlab.com:acme/group/ml.git") == "https://gitlab.com/acme/group/ml"
    assert web_url("ssh://git@git.acme.example:2222/acme/ml.git") == "https://git.acme.example/acme/ml"
    assert web_url("http://gitea.svc:3000/acme/ml/") == "http://gitea.svc:3000/acme/ml"
    assert web_url("file:///srv/git/ml.git") is None
    assert web_url("/srv/git/ml.git") is None
    assert web_url("https://github.com/ml.git") is None  # no owner: not a repository's page
    assert web_url(None) is None

    gitlab = pull_request_link("https://gitlab.com/acme/ml.git", "gitlab", 7)
    assert (gitlab.term, gitlab.label, gitlab.url) == (
        "Merge request",
        "!7",
        "https://gitlab.com/acme/ml/-/merge_requests/7",
    )
    assert (
        pull_request_link("https://gitea.acme.example/acme/ml", "gitea", 7).url
        == "https://gitea.acme.example/acme/ml/pulls/7"
    )
    assert pull_request_link("git@bitbucket.org:acme/ml.git", "bitbucket", 7).url == (
        "https://bitbucket.org/acme/ml/pull-requests/7"
    )
    local = pull_request_link("/srv/git/ml.git", "github", 7)
    assert (local.term, local.label, local.url) == ("Pull request", "#7", None), "no page to link: the number alone"
