"""`ODIN_LOCAL_SANDBOX` at the level of one process (controller/executors/sandbox.py): a real Landlock domain on a
real `sh`, in a data directory made here. What a task started in it can and cannot do, for each ABI the rules are
written for; and the choice of sandbox from the setting. The whole path through `odin serve` is
tests/e2e/test_task_secrets.py."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from odin.controller.executors import landlock
from odin.controller.executors.landlock import Access
from odin.controller.executors.sandbox import (
    EVERYTHING,
    READ,
    STATE_FILES,
    Grant,
    Sandbox,
    SandboxMode,
    SandboxUnavailable,
    resolve_sandbox,
)

ABI, WHY = landlock.abi_version()
pytestmark = pytest.mark.skipif(ABI == 0, reason=f"needs Landlock: {WHY}")


SandboxOf = Callable[..., Sandbox]


@pytest.fixture
def sandbox_of() -> Iterator[SandboxOf]:
    """`Sandbox(...)`, closed when the test ends: a sandbox keeps a descriptor per entry beside the way to the data
    directory (hundreds under a busy /tmp), which the worker process held for the rest of the run otherwise."""
    made: list[Sandbox] = []

    def make(*args: Any, **kwargs: Any) -> Sandbox:
        made.append(Sandbox(*args, **kwargs))
        return made[-1]

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory as Odin leaves it, a run's directories, another run's, and a neighbour outside it."""
    data = tmp_path / "data"
    for directory in ("runs/mine", "runs/other", "tasks/mine", "trees/t1", "outputs/r0/a/1/artifacts", "git/repo"):
        (data / directory).mkdir(parents=True)
    (data / "jwt-secret").write_text("key")
    (data / "odin.db").write_text("db")
    (data / "runs/other/secret").write_text("theirs")
    (data / "git/repo/config").write_text("[core]")
    (data / "trees/t1/main.yml").write_text("name: mine")
    (data / "outputs/r0/a/1/artifacts/model").write_text("weights")
    (tmp_path / "neighbour").mkdir()
    (tmp_path / "neighbour/file").write_text("hello")
    return data


def grants(data: Path) -> list[Grant]:
    return [
        Grant(str(data / "trees/t1"), READ),
        Grant(str(data / "runs/mine"), EVERYTHING),
        Grant(str(data / "tasks/mine"), STATE_FILES),
        Grant(str(data / "outputs/r0/a/1/artifacts/model"), READ),
        Grant(str(data.parent / "neighbour"), READ),  # outside: open already, never narrowed by a grant
        Grant(str(data.parent), EVERYTHING),  # holds the data directory: never opened
    ]


def run(sandbox: Sandbox, script: str, cwd: Path, given: list[Grant]) -> dict[str, int]:
    """Each line of `script` is `label command`; the exit status of each command, run in the sandbox."""
    lines = [line.split(" ", 1) for line in script.strip().splitlines()]
    body = "\n".join(f'( {command.strip()} ) >/dev/null 2>&1; echo "{label} $?"' for label, command in lines)

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(["/bin/sh", "-c", body], cwd=cwd, stdout=subprocess.PIPE, text=True)

    proc = sandbox.spawn(given, start)
    out, _ = proc.communicate(timeout=30)
    return {label: int(code) for label, code in (line.split() for line in out.splitlines())}


PROBES = """
jwt cat jwt-secret
db cat odin.db
mirror cat git/repo/config
other_run cat runs/other/secret
list_data ls .
list_runs ls runs
plant touch planted
tree_write touch trees/t1/x
state_read cat tasks/mine/t.pid
state_remove rm tasks/mine/t.pid
tree cat trees/t1/main.yml
artifact cat outputs/r0/a/1/artifacts/model
run_write echo x > runs/mine/out
run_mkdir mkdir -p runs/mine/a/b && echo y > runs/mine/a/b/c && mv runs/mine/a/b/c runs/mine/c
state echo $$ > tasks/mine/t.pid
neighbour cat ../neighbour/file
neighbour_write touch ../neighbour/new
usr ls /usr/bin
devnull echo > /dev/null
"""
DENIED = ("jwt", "db", "mirror", "other_run", "list_data", "list_runs", "plant", "tree_write", "state_read")
ALLOWED = ("tree", "artifact", "run_write", "run_mkdir", "state", "neighbour", "neighbour_write", "usr", "devnull")


@pytest.mark.parametrize("abi", sorted({1, 3, ABI}))
def test_a_task_reaches_only_its_own_paths_in_the_data_directory(
    sandbox_of: SandboxOf, data_dir: Path, abi: int
) -> None:
    """The same rules written for an older kernel (fewer rights handled) close the same things."""
    codes = run(sandbox_of(data_dir, abi), PROBES, data_dir, grants(data_dir))
    assert {label: codes[label] for label in DENIED if codes[label] == 0} == {}, "the sandbox let these through"
    assert {label: codes[label] for label in ALLOWED if codes[label] != 0} == {}, "the sandbox refused these"
    assert codes["state_remove"] != 0 and (data_dir / "tasks/mine/t.pid").exists()
    assert not (data_dir / "planted").exists()
    assert (data_dir / "runs/mine/c").read_text() == "y\n"


def test_without_the_sandbox_the_same_task_reads_everything(data_dir: Path) -> None:
    """What the sandbox is for: the same commands, started plainly, read the secrets."""
    body = "cat jwt-secret odin.db git/repo/config runs/other/secret"
    out = subprocess.run(["/bin/sh", "-c", body], cwd=data_dir, capture_output=True, text=True, check=True)
    assert out.stdout == "keydb[core]theirs"


def test_only_the_starting_thread_is_restricted(sandbox_of: SandboxOf, data_dir: Path) -> None:
    """Odin itself keeps its access: the restriction dies with the thread that started the task."""
    sandbox = sandbox_of(data_dir, ABI)
    started_on: list[str] = []

    def start() -> subprocess.Popen[bytes]:
        started_on.append(threading.current_thread().name)
        return subprocess.Popen(["/bin/true"])

    assert sandbox.spawn([], start).wait(30) == 0
    assert started_on == ["odin-sandboxed-start"]
    assert (data_dir / "jwt-secret").read_text() == "key"
    (data_dir / "written-after").write_text("ok")


def test_what_start_raises_reaches_the_caller_and_no_descriptor_is_left(sandbox_of: SandboxOf, data_dir: Path) -> None:
    sandbox = sandbox_of(data_dir, ABI)
    before = len(os.listdir("/proc/self/fd"))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(data_dir / "no-such-program")])

    with pytest.raises(FileNotFoundError):
        sandbox.spawn(grants(data_dir), start)
    sandbox.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_symbolic_link_beside_the_way_does_not_open_the_data_directory(sandbox_of: SandboxOf, data_dir: Path) -> None:
    """`<parent>/alias -> data` is an entry beside the way: following it would allow the whole data directory."""
    (data_dir.parent / "alias").symlink_to(data_dir)
    codes = run(sandbox_of(data_dir, ABI), "via_alias cat ../alias/jwt-secret\nmine echo > runs/mine/f", data_dir,
                grants(data_dir))  # fmt: skip
    assert codes == {"via_alias": 1, "mine": 0}


def test_the_task_cannot_signal_odin(sandbox_of: SandboxOf, data_dir: Path) -> None:
    if ABI < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    codes = run(sandbox_of(data_dir, ABI), f"odin kill -0 {os.getpid()}\nself kill -0 $$", data_dir, [])
    assert codes == {"odin": 1, "self": 0}


def test_the_rights_follow_the_kernels_abi() -> None:
    assert Access.REFER not in landlock.handled(1) and Access.TRUNCATE not in landlock.handled(2)
    assert Access.TRUNCATE in landlock.handled(3) and Access.IOCTL_DEV not in landlock.handled(4)
    assert Access.IOCTL_DEV in landlock.handled(5) and landlock.handled(7) == landlock.handled(5)
    assert landlock.handled(0) == Access(0)


def test_the_setting_chooses_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_sandbox(SandboxMode.OFF, tmp_path) == (None, "")
    for mode in (SandboxMode.AUTO, SandboxMode.LANDLOCK):
        sandbox, why = resolve_sandbox(mode, tmp_path)
        assert sandbox is not None and sandbox.abi == ABI and why == ""
        sandbox.close()
    # A kernel without Landlock (the one adapter boundary faked: this machine has it).
    monkeypatch.setattr(landlock, "abi_version", lambda: (0, "this kernel (5.4.0) has no Landlock"))
    assert resolve_sandbox(SandboxMode.AUTO, tmp_path) == (None, "this kernel (5.4.0) has no Landlock")
    with pytest.raises(SandboxUnavailable, match=r"ODIN_LOCAL_SANDBOX=landlock, but this kernel \(5.4.0\) has no"):
        resolve_sandbox(SandboxMode.LANDLOCK, tmp_path)


def test_entries_made_beside_the_way_between_starts_are_the_next_tasks(sandbox_of: SandboxOf, data_dir: Path) -> None:
    """The entries beside the way are kept between starts while their directory is unchanged (here: its time set an
    hour back, as for `/var/lib` in production); a new entry changes it, and the next task has that entry too."""
    parent = data_dir.parent
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(parent, ns=(hour_ago, hour_ago))
    sandbox = sandbox_of(data_dir, ABI)
    before = len(os.listdir("/proc/self/fd"))
    assert run(sandbox, "neighbour cat ../neighbour/file", data_dir, []) == {"neighbour": 0}
    assert run(sandbox, "neighbour cat ../neighbour/file\nlater cat ../later/file", data_dir, []) == {
        "neighbour": 0, "later": 1,
    }  # fmt: skip
    (parent / "later").mkdir()
    (parent / "later/file").write_text("new")
    assert run(sandbox, "later cat ../later/file\nsecret cat jwt-secret", data_dir, []) == {"later": 0, "secret": 1}
    sandbox.close()
    assert len(os.listdir("/proc/self/fd")) == before, "descriptors left open"


def test_an_artifact_that_is_a_link_does_not_give_its_target(sandbox_of: SandboxOf, data_dir: Path) -> None:
    """A producer controls its `${OUTPUT_PATH}`: an artifact that is a link to `jwt-secret`, or a file below a
    directory link to the data directory, is no grant of what it points to."""
    artifacts = data_dir / "outputs/r0/a/1/artifacts"
    (artifacts / "key").symlink_to(data_dir / "jwt-secret")
    (artifacts / "all").symlink_to(data_dir)
    given = [Grant(str(artifacts / "key"), READ), Grant(str(artifacts / "all" / "odin.db"), READ)]
    codes = run(sandbox_of(data_dir, ABI), "key cat outputs/r0/a/1/artifacts/key\ndb cat odin.db", data_dir, given)
    assert codes == {"key": 1, "db": 1}


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """`<tmp>/etc/odin` as an operator leaves it: two secret files, a hard link and a link to one, and a file that
    is not a secret beside them."""
    etc = tmp_path / "etc" / "odin"
    etc.mkdir(parents=True)
    for name in ("jwt", "token"):
        (etc / name).write_text(f"{name}-value")
    (etc / "odin.conf").write_text("conf")
    os.link(etc / "jwt", etc / "jwt-hardlink")
    (tmp_path / "etc" / "jwt-link").symlink_to(etc / "jwt")
    return etc


SECRET_PROBES = """
jwt cat ../etc/odin/jwt
token cat ../etc/odin/token
hardlink cat ../etc/odin/jwt-hardlink
link cat ../etc/jwt-link
remove rm -f ../etc/odin/jwt
replace mv -f ../etc/odin/odin.conf ../etc/odin/token
conf cat ../etc/odin/odin.conf
conf_write echo more >> ../etc/odin/odin.conf
etc_write touch ../etc/new
etc_odin_write touch ../etc/odin/new
neighbour cat ../neighbour/file
usr ls /usr/bin
"""


def test_secret_files_outside_the_data_directory_are_closed_and_their_neighbours_are_not(
    sandbox_of: SandboxOf, data_dir: Path, secrets: Path
) -> None:
    """Every file the sandbox is told holds a secret is closed, by its name, a hard link beside it, or a symbolic
    link elsewhere; it cannot be removed or replaced. Its directory is not closed: the other files in it are read
    and written as before. The price, as on the way to the data directory: nothing is created or removed directly
    in a directory on the way (`etc`, `etc/odin`)."""
    named = [str(secrets / "jwt"), str(secrets / "token"), str(secrets / "not-there-yet")]
    sandbox = sandbox_of(data_dir, ABI, lambda: named)
    codes = run(sandbox, SECRET_PROBES, data_dir, grants(data_dir))
    assert codes == {
        "jwt": 1, "token": 1, "hardlink": 1, "link": 1, "remove": 1, "replace": 1,
        "etc_write": 1, "etc_odin_write": 1, "conf": 0, "conf_write": 0, "neighbour": 0, "usr": 0,
    }  # fmt: skip
    assert (secrets / "jwt").read_text() == "jwt-value" and (secrets / "token").read_text() == "token-value"
    assert sandbox.closes_entries_in(str(secrets)) and sandbox.closes_entries_in(str(secrets.parent))
    assert not sandbox.closes_entries_in(str(data_dir.parent / "neighbour"))
    assert run(sandbox_of(data_dir, ABI), "jwt cat ../etc/odin/jwt", data_dir, []) == {"jwt": 0}, "told of none"


def test_a_secret_file_named_while_odin_runs_is_closed_to_the_tasks_started_after(
    sandbox_of: SandboxOf, data_dir: Path, secrets: Path
) -> None:
    """The sandbox asks which files are secrets at every start (a repository registered through the API adds its
    `file:` references), also when the directories on the way are unchanged and their reading is kept."""
    hour_ago = time.time_ns() - 3600 * 10**9
    for directory in (data_dir.parent, secrets.parent, secrets):
        os.utime(directory, ns=(hour_ago, hour_ago))
    named = [str(secrets / "jwt")]
    sandbox = sandbox_of(data_dir, ABI, lambda: named)
    before = len(os.listdir("/proc/self/fd"))
    assert run(sandbox, "jwt cat ../etc/odin/jwt\ntoken cat ../etc/odin/token", data_dir, []) == {"jwt": 1, "token": 0}
    named.append(str(secrets / "token"))
    assert run(sandbox, "jwt cat ../etc/odin/jwt\ntoken cat ../etc/odin/token", data_dir, []) == {"jwt": 1, "token": 1}
    (secrets / "jwt").unlink()  # gone: nothing to close, and no error
    (secrets / "jwt-hardlink").unlink()
    assert run(sandbox, "token cat ../etc/odin/token\nconf cat ../etc/odin/odin.conf", data_dir, []) == {
        "token": 1, "conf": 0,
    }  # fmt: skip
    sandbox.close()
    assert len(os.listdir("/proc/self/fd")) == before, "descriptors left open"


def test_a_secret_file_inside_a_grant_is_given_around(sandbox_of: SandboxOf, data_dir: Path) -> None:
    """A secret file put where tasks are given everything (a run's directory, `${ROOT_PATH}`) stays closed: the
    grant is given around it, as `/` is around the data directory, and a grant that is the file itself is none."""
    (data_dir / "runs/mine/sub").mkdir()
    (data_dir / "runs/mine/key").write_text("k")
    (data_dir / "runs/mine/notes").write_text("n")
    named = [str(data_dir / "runs/mine/key")]
    given = [Grant(str(data_dir / "runs/mine"), EVERYTHING), Grant(str(data_dir / "runs/mine/key"), READ)]
    script = """
key cat runs/mine/key
notes cat runs/mine/notes
sub_write echo x > runs/mine/sub/out
jwt cat jwt-secret
"""
    codes = run(sandbox_of(data_dir, ABI, lambda: named), script, data_dir, given)
    assert codes == {"key": 1, "notes": 0, "sub_write": 0, "jwt": 1}
