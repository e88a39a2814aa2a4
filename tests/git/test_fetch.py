"""Fetching: how a Mirror follows a branch through pushes, force-pushes, deletions and outages."""

from __future__ import annotations

from pathlib import Path

import pytest

from odin.controller.git import BranchNotFound, Mirror, RefNotFound, RemoteUnreachable
from tests.git.conftest import MirrorFactory
from tests.support.git import GitRemote


@pytest.mark.parametrize("form", ["path", "file_url"])
def test_first_fetch_from_local_path_and_file_url(git_remote: GitRemote, make_mirror: MirrorFactory, form: str) -> None:
    sha = git_remote.commit({"train/main.yml": "steps: []\n"})
    mirror = make_mirror(git_remote.url if form == "path" else git_remote.file_url)
    assert mirror.tip() is None

    result = mirror.fetch()

    assert result.tip == sha
    assert result.previous_tip is None
    assert result.changed and result.fetched and not result.forced
    assert mirror.tip() == sha
    assert mirror.read_file(sha, "train/main.yml", max_size=100) == b"steps: []\n"


def test_no_change_fetch_is_cheap_and_unchanged(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = git_remote.commit({"a/main.yml": "x"})
    mirror.fetch()

    result = mirror.fetch()

    assert (result.tip, result.previous_tip, result.changed, result.forced) == (sha, sha, False, False)
    assert not result.fetched  # answered from the ref listing alone


class _Listener:
    """Counts `Mirror.on_fetch` calls (a bound method: the mirror holds its listeners weakly)."""

    def __init__(self) -> None:
        self.calls = 0

    def heard(self) -> None:
        self.calls += 1


def test_only_a_fetch_that_may_move_references_tells_the_listeners(git_remote: GitRemote, mirror: Mirror) -> None:
    # The scheduler re-reads its branches' tips and schedules when told; a poll that finds nothing new must not tell
    # it (2,496 such polls a cycle for 500 repositories of 5 branches cost more CPU than the polls themselves).
    listener = _Listener()
    mirror.on_fetch(listener.heard)
    git_remote.commit({"a/main.yml": "x"})

    mirror.fetch()
    assert listener.calls == 1
    sequence = mirror.fetches

    assert not mirror.fetch().fetched
    assert (listener.calls, mirror.fetches) == (1, sequence)

    git_remote.commit({"a/f": "1"})
    assert mirror.fetch().changed
    assert listener.calls == 2 and mirror.fetches > sequence


def test_a_failed_fetch_tells_the_listeners(git_remote: GitRemote, make_mirror: MirrorFactory) -> None:
    mirror = make_mirror(git_remote.url, branch="gone")
    listener = _Listener()
    mirror.on_fetch(listener.heard)
    git_remote.commit({"a/main.yml": "x"})

    with pytest.raises(BranchNotFound):
        mirror.fetch()
    assert listener.calls == 1  # it may have moved some references before it failed: readers look again


def test_new_commits_are_found_oldest_first(git_remote: GitRemote, mirror: Mirror) -> None:
    base = git_remote.commit({"a/main.yml": "x"}, message="base")
    mirror.fetch()
    one = git_remote.commit({"a/f": "1"}, message="one")
    two = git_remote.commit({"a/f": "2"}, message="two")

    result = mirror.fetch()

    assert result.previous_tip == base and result.tip == two and result.changed and not result.forced
    commits = mirror.commits_between(result.previous_tip, result.tip)
    assert [c.sha for c in commits] == [one, two]
    assert [c.subject for c in commits] == ["one", "two"]
    assert commits[0].parents == (base,)


def test_multi_commit_push_arrives_in_one_fetch(git_remote: GitRemote, mirror: Mirror) -> None:
    base = git_remote.commit({"a/main.yml": "x"})
    mirror.fetch()
    shas = [git_remote.commit({f"a/f{i}": str(i)}, message=f"c{i}", push=False) for i in range(5)]
    git_remote.push()

    result = mirror.fetch()

    assert result.tip == shas[-1]
    assert [c.sha for c in mirror.commits_between(base, result.tip)] == shas
    assert [c.sha for c in mirror.commits_between(base, result.tip, limit=2)] == shas[-2:]
    assert [c.sha for c in mirror.commits_between(None, result.tip)] == [shas[-1]]
    assert mirror.commits_between(result.tip, result.tip) == []


def test_merge_commits_are_ordered_parents_first(git_remote: GitRemote, mirror: Mirror) -> None:
    base = git_remote.commit({"a/main.yml": "x"})
    mirror.fetch()
    side = git_remote.commit({"b/f": "side"}, branch="side", parents=[base], push=False)
    main = git_remote.commit({"a/f": "main"})
    merge = git_remote.commit({"b/f": "side"}, message="merge", parents=[main, side])

    mirror.fetch()

    order = [c.sha for c in mirror.commits_between(base, merge)]
    assert set(order) == {side, main, merge}
    assert order[-1] == merge


def test_force_push_is_flagged_and_old_commits_stay_readable(git_remote: GitRemote, mirror: Mirror) -> None:
    base = git_remote.commit({"a/main.yml": "v1"})
    doomed = git_remote.commit({"a/main.yml": "doomed"}, message="will be force-pushed away")
    mirror.fetch()
    git_remote.reset_hard(base)
    replacement = git_remote.commit({"a/main.yml": "v2"}, push=False)
    git_remote.push(force=True)

    result = mirror.fetch()

    assert result.forced and result.changed
    assert (result.previous_tip, result.tip) == (doomed, replacement)
    assert not mirror.is_ancestor(doomed, replacement)
    assert [c.sha for c in mirror.commits_between(doomed, replacement)] == [replacement]
    # The run that used `doomed` can still read it, even after more fetches.
    git_remote.commit({"a/other": "x"})
    mirror.fetch()
    assert mirror.read_file(doomed, "a/main.yml", max_size=100) == b"doomed"
    assert mirror.commit_info(doomed).subject == "will be force-pushed away"
    assert not mirror.has_commit(doomed)  # not on the branch any more: webhooks must not trust it


def test_reset_to_an_ancestor_counts_as_forced(git_remote: GitRemote, mirror: Mirror) -> None:
    base = git_remote.commit({"a/main.yml": "v1"})
    git_remote.commit({"a/main.yml": "v2"})
    mirror.fetch()
    git_remote.reset_hard(base)
    git_remote.push(force=True)

    result = mirror.fetch()

    assert result.forced and result.tip == base
    assert mirror.commits_between(result.previous_tip, result.tip) == []


def test_plain_push_of_diverged_history_is_rejected_by_the_helper(git_remote: GitRemote) -> None:
    base = git_remote.commit({"a": "1"})
    git_remote.commit({"a": "2"})
    git_remote.reset_hard(base)
    git_remote.commit({"a": "3"}, push=False)
    with pytest.raises(RuntimeError, match=r"push rejected|non-fast|fastforward"):
        git_remote.push()


def test_deleted_branch_is_reported_and_cache_keeps_its_tip(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = git_remote.commit({"a/main.yml": "x"})
    git_remote.create_branch("keep")  # the remote must keep some branch
    mirror.fetch()
    git_remote.delete_remote_branch("main")

    with pytest.raises(BranchNotFound) as err:
        mirror.fetch()

    assert not err.value.transient
    assert "'main'" in str(err.value) and "does not exist" in str(err.value)
    assert mirror.tip() == sha
    assert mirror.read_file(sha, "a/main.yml", max_size=10) == b"x"
    # Pushed again: followed again.
    git_remote.push()
    assert mirror.fetch().tip == sha


def test_branch_missing_on_first_fetch(git_remote: GitRemote, make_mirror: MirrorFactory) -> None:
    git_remote.commit({"a": "1"})
    mirror = make_mirror(git_remote, branch="release")
    with pytest.raises(BranchNotFound, match="'release'"):
        mirror.fetch()
    assert mirror.tip() is None
    with pytest.raises(RefNotFound, match="not been fetched"):
        mirror.resolve("release")


def test_other_branch_is_followed_independently(git_remote: GitRemote, make_mirror: MirrorFactory) -> None:
    main = git_remote.commit({"a/main.yml": "main"})
    release = git_remote.commit({"a/main.yml": "release"}, branch="release", parents=[main])
    main_mirror = make_mirror(git_remote)
    release_mirror = make_mirror(git_remote, branch="release")
    assert main_mirror.path == release_mirror.path  # one cache per remote

    assert release_mirror.fetch().tip == release
    assert main_mirror.fetch().tip == main


@pytest.mark.parametrize("form", ["path", "file_url"])
def test_remote_directory_removed_is_transient(git_remote: GitRemote, make_mirror: MirrorFactory, form: str) -> None:
    sha = git_remote.commit({"a/main.yml": "x"})
    mirror = make_mirror(git_remote.url if form == "path" else git_remote.file_url)
    mirror.fetch()

    with git_remote.unavailable(), pytest.raises(RemoteUnreachable) as err:
        mirror.fetch()

    assert err.value.transient
    assert "will retry" in str(err.value)
    assert mirror.tip() == sha  # the cache is intact
    newer = git_remote.commit({"a/f": "y"})
    assert mirror.fetch().tip == newer  # and it works again once the remote is back


def test_local_path_that_is_not_a_repository(tmp_path: Path, make_mirror: MirrorFactory) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RemoteUnreachable, match="not available"):
        make_mirror(str(tmp_path / "empty")).fetch()


def test_tags_are_fetched_moved_and_pruned(git_remote: GitRemote, mirror: Mirror) -> None:
    first = git_remote.commit({"a/main.yml": "1"})
    second = git_remote.commit({"a/main.yml": "2"})
    git_remote.tag("v1", first)
    git_remote.tag("v2", second, message="annotated release")
    result = mirror.fetch()
    assert result.tags_changed
    assert mirror.resolve("v1") == first and mirror.resolve("v2") == second
    unchanged = mirror.fetch()  # annotated tags are advertised with a peeled ^{} entry; that is not a change
    assert not unchanged.tags_changed and not unchanged.fetched

    git_remote.tag("v1", second)  # moved
    git_remote.delete_tag("v2")
    result = mirror.fetch()

    assert result.tags_changed and not result.changed
    assert mirror.resolve("v1") == second
    with pytest.raises(RefNotFound):
        mirror.resolve("v2")
    assert not mirror.fetch().tags_changed


def test_cache_survives_a_restart(git_remote: GitRemote, cache_dir: Path) -> None:
    sha = git_remote.commit({"a/main.yml": "x"})
    Mirror(git_remote.url, cache_dir).fetch()

    again = Mirror(git_remote.url, cache_dir)

    assert again.tip() == sha
    assert not again.fetch().changed


def test_cache_is_bare_and_never_garbage_collected(git_remote: GitRemote, mirror: Mirror) -> None:
    git_remote.commit({"a": "1"})
    mirror.fetch()
    assert (mirror.path / "HEAD").is_file()
    assert not (mirror.path / ".git").exists()
    config = (mirror.path / "config").read_text()
    assert "bare = true" in config
    assert "auto = 0" in config
