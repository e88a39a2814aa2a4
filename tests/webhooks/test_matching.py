"""Repository URLs in every form a provider or a user writes them reduce to one key."""

from __future__ import annotations

import pytest

from odin.webhooks.matching import RepoIndex, repo_key


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/ml",
        "https://github.com/acme/ml.git",
        "https://github.com/acme/ml/",
        "https://GitHub.com/Acme/ML.git",
        "https://x-access-token@github.com/acme/ml.git",
        "https://github.com:443/acme/ml",
        "http://github.com/acme/ml",
        "git@github.com:acme/ml.git",
        "git@github.com:/acme/ml.git",
        "github.com:acme/ml",
        "ssh://git@github.com/acme/ml.git",
        "ssh://git@github.com:22/acme/ml",
        "git+ssh://git@github.com/acme/ml",
        "git://github.com/acme/ml.git",
    ],
)
def test_every_form_of_a_github_url_is_one_repository(url: str) -> None:
    assert repo_key(url) == "github.com/acme/ml"


def test_local_paths_and_file_urls_are_one_repository(tmp_path: object) -> None:
    assert (
        repo_key("/srv/git/ml.git")
        == repo_key("file:///srv/git/ml.git")
        == repo_key("/srv/git/./ml")
        == "file:/srv/git/ml"
    )
    assert repo_key("relative/path") is None


@pytest.mark.parametrize(
    "url", ["", "   ", "https://github.com/", "https:///acme/ml", "not a url", "a\nb", "http://[::1"]
)
def test_what_is_not_a_repository_url_matches_nothing(url: str) -> None:
    assert repo_key(url) is None


def test_subgroups_and_distinct_hosts_stay_apart() -> None:
    assert repo_key("https://gitlab.com/acme/vision/ml") == "gitlab.com/acme/vision/ml"
    assert repo_key("https://gitlab.com/acme/ml") != repo_key("https://github.com/acme/ml")


def test_the_index_matches_any_of_the_payloads_urls() -> None:
    index = RepoIndex.build([(1, ["/srv/git/ml.git", "git@github.com:acme/ml.git"]), (2, ["https://gitlab.com/a/b"])])
    assert index.match(["https://github.com/acme/other", "https://github.com/ACME/ml.git"]) == 1
    assert index.match(["git@gitlab.com:a/b.git"]) == 2
    assert index.match(["file:///srv/git/ml"]) == 1
    assert index.match(["https://github.com/acme/other"]) is None
    assert index.match([]) is None
