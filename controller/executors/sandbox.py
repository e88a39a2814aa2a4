"""`ODIN_LOCAL_SANDBOX`: a local task cannot read Odin's data directory, nor any file Odin reads a secret from, even
as Odin's own user (issue 8 item 2).

The data directory holds what a task must never read: `odin.db` (users, token hashes, every run), `jwt-secret` (with
it anyone forges an admin token), the git mirror of every followed repository, and the files of every other run. A
task running as Odin's user passes every permission check on them, so file modes cannot keep it out; Landlock can.

Landlock is an allow-list of hierarchies: what no rule allows is denied. To leave the rest of the machine as it was
and close only the data directory, the rules walk from `/` down to it and, at each level, allow every entry except
the next component on the way (`/` allows `/usr`, `/etc`, ... but not `/var`; `/var` allows `/var/log`, ... but not
`/var/lib`; and so on); inside the data directory only what the task is given is allowed: its working tree (read
only), `${RUN_PATH}`, `${ROOT_PATH}`, its attempt's `${OUTPUT_PATH}`/`${RESULTS_PATH}`, its ephemeral volumes, the
artifacts of earlier tasks it references (read only, wherever they are: a cache hit's are another run's), and the
attempt's state files that its wrapper writes. The price of the walk: the directories *on* the way (`/`, `/var`,
`/var/lib` for `/var/lib/odin`) are not listed and nothing is created or removed directly in them, since any rule
on one of them would cover the data directory too. Existing entries in them, and everything below those, are as
before. Landlock also stops a task from signalling (ABI 6) or ptracing processes outside its domain, Odin included.

Secret files outside the data directory (`ODIN_JWT_SECRET_FILE`, `ODIN_ADMIN_PASSWORD_FILE`, every `file:/path`
reference: `odin.controller.secret_files` keeps the list) are closed the same way: the walk goes down to each of
them too, links resolved, and allows every entry beside each way but the file itself, so the other files in
`/etc/odin` stay as they were; a hard link to a secret among those entries, or a directory on a way mounted again
elsewhere in them, is left out as well. The list is asked again at every start, so a `file:` reference registered
while Odin runs is closed to every task started after it. A secret file inside a grant (in `${ROOT_PATH}`, say) is
given around in the same way.

Where it is applied: the rules are prepared (paths opened `O_PATH`) in the launcher thread; a fresh thread restricts
itself (Landlock restricts the calling thread) and starts the task's wrapper with `subprocess.Popen`, which the
child inherits, and then ends. So no code runs between fork and exec (no `preexec_fn`: unsafe with threads, and it
would cost `vfork`: 44 ms a start for a 150 MB process, against a few ms here, `benchmarks/bench_sandbox.py`), and
Odin's own threads are never restricted. The thread runs nothing but `Popen`; should Python collect garbage there,
a finalizer touching the data directory would be refused (closing a file never is).
"""

from __future__ import annotations

import enum
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from odin.controller.executors import landlock
from odin.controller.executors.landlock import Access

T = TypeVar("T")

READ = landlock.READ
"""A working tree or a referenced artifact: read and run, nothing changed."""
STATE_FILES = Access.MAKE_REG | Access.WRITE_FILE | Access.TRUNCATE
"""The attempt's state directory (`<data>/tasks/<run>/`): the wrapper creates `.pid` and `.exit` there, and a task
that reopens `/dev/stdout` or `/dev/stderr` opens its log there. Nothing is read or removed."""
RECENT_NS = 2_000_000_000
"""A directory on the way modified this recently (ns) is read again at the next start (see `_beside_the_way`)."""
EVERYTHING = Access(~0 & 0xFFFF)
"""Whatever the kernel knows (cut to the handled rights when the rules are made)."""


class SandboxMode(enum.StrEnum):
    AUTO = "auto"  # Landlock when the kernel has it, else a warning at start
    LANDLOCK = "landlock"  # Landlock or no start
    OFF = "off"


class SandboxUnavailable(RuntimeError):
    """`ODIN_LOCAL_SANDBOX=landlock` on a machine without Landlock: a start-up error, with the reason."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A path a task is given, and how: `READ`, `STATE_FILES`, or `EVERYTHING`."""

    path: str
    access: Access


class Sandbox:
    """Starts tasks with Odin's data directory closed to them except the paths each is granted."""

    def __init__(self, data_dir: Path, abi: int, secret_files: Callable[[], Iterable[str]] = tuple) -> None:
        """`secret_files`: the files Odin reads secrets from (`odin.controller.secret_files.paths`), asked again at
        every start, so that a reference registered while Odin runs is closed to the tasks started after it."""
        self.data_dir = Path(os.path.realpath(data_dir))
        self.abi = abi
        self._handled = landlock.handled(abi)
        parents = list(reversed(self.data_dir.parents))  # `/` first
        if not parents:
            raise ValueError("the data directory cannot be `/`")
        self._chain = [*parents, self.data_dir]
        self._secret_files = secret_files
        self._levels: dict[Path, _Level] = {}  # kept per directory on the way
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"Landlock (ABI {self.abi})"

    def closes_entries_in(self, directory: str) -> bool:
        """Whether a task could not create entries directly in `directory`: the data directory, a directory inside
        it, or one on the way to it or to a secret file (`/tmp` when the data directory is under `/tmp`, `~` for the
        default one, `/etc/odin` for `/etc/odin/jwt-secret`)."""
        path = Path(os.path.realpath(directory))
        if path in self._chain or self.data_dir in path.parents:
            return True
        return any(path in secret.parents for secret, _ in self.secret_targets())

    def secret_targets(self) -> list[tuple[Path, tuple[int, int]]]:
        """The secret files to close now, links resolved, with their (device, inode): each named one that is a
        regular file outside the data directory (inside it, it is closed with the rest unless a grant holds it:
        `_grant` sees to that). One that does not exist now is skipped: there is nothing to read."""
        found: dict[Path, tuple[int, int]] = {}
        for named in self._secret_files():
            path = Path(os.path.realpath(named))
            try:
                info = path.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[path] = (info.st_dev, info.st_ino)
        return sorted(found.items())

    def spawn(self, grants: Iterable[Grant], start: Callable[[], T]) -> T:
        """`start()` (which starts a process) on a fresh thread restricted to everything outside the data directory
        and `grants` inside it; its result, or its exception. Raises `landlock.LandlockError` (an `OSError`) when
        the restriction cannot be made: the task is never started without it."""
        rules = self.rules(grants)
        outcome: list[T] = []
        failure: list[BaseException] = []

        def restricted() -> None:
            try:
                landlock.restrict_thread(rules, self.abi)
                outcome.append(start())
            except BaseException as e:  # handed to the launcher thread, which reports it
                failure.append(e)

        try:
            thread = threading.Thread(target=restricted, name="odin-sandboxed-start", daemon=True)
            thread.start()
            thread.join()
        finally:
            _close(rules)
        if failure:
            raise failure[0]
        return outcome[0]

    def rules(self, grants: Iterable[Grant]) -> list[tuple[int, Access]]:
        """(O_PATH descriptor, rights) for every entry beside the ways from `/` to the data directory and to each
        secret file, then for each grant inside the data directory. The caller closes the descriptors."""
        secrets = self.secret_targets()
        outside = [(path, ids) for path, ids in secrets if not path.is_relative_to(self.data_dir)]
        rules = self._beside_the_way(outside)
        try:
            for grant in grants:
                self._grant(grant, secrets, rules)
        except BaseException:
            _close(rules)
            raise
        return rules

    def close(self) -> None:
        """Close the descriptors kept between starts."""
        with self._lock:
            for level in self._levels.values():
                _close(level.rules)
            self._levels.clear()

    def _beside_the_way(self, secrets: list[tuple[Path, tuple[int, int]]]) -> list[tuple[int, Access]]:
        """The entries beside the ways to the data directory and to `secrets`, as copies (`dup`) of descriptors kept
        per directory on the way: a directory is read again only when it changed (its identity or modification
        time) or the names closed in it did, so a start costs a few `stat`s and `dup`s rather than an `open` per
        entry. A directory modified within `RECENT_NS` of being read may change again unseen within the
        filesystem's timestamp granularity: its reading is used once and not kept."""
        ways = _ways([self.data_dir, *(path for path, _ in secrets)])
        stamps = {directory: _stamp(directory) for directory in ways}
        closed = {(dev, ino) for dev, ino, _ in stamps.values()} | {ids for _, ids in secrets}
        closed.add(_stamp(self.data_dir)[:2])
        now = time.time_ns()
        copies: list[tuple[int, Access]] = []
        with self._lock:
            try:
                for directory, skip in ways.items():
                    stamp = stamps[directory]
                    kept = self._levels.pop(directory, None)
                    if kept is not None and kept.stamp == stamp and kept.skip == skip:
                        copies += [(os.dup(fd), access) for fd, access in kept.rules]
                        self._levels[directory] = kept
                        continue
                    if kept is not None:
                        _close(kept.rules)
                    fresh = self._siblings(directory, skip, closed, EVERYTHING)
                    if now - stamp[2] < RECENT_NS:
                        copies += fresh  # handed over, not kept
                        continue
                    self._levels[directory] = _Level(stamp, skip, fresh)
                    copies += [(os.dup(fd), access) for fd, access in fresh]
                for directory in set(self._levels) - set(ways):  # a way no longer taken (a secret file removed)
                    _close(self._levels.pop(directory).rules)
            except BaseException:
                _close(copies)
                raise
        return copies

    def _siblings(
        self, directory: Path, skip: frozenset[str], closed: set[tuple[int, int]], access: Access
    ) -> list[tuple[int, Access]]:
        """Everything in `directory` but the names in `skip`, with `access`. Symbolic links are left out (their
        targets are allowed or not where they are), and so is any entry that *is* a directory on a way or a secret
        file (a bind mount of `/` at `/host`, a hard link to a secret: a rule on it would open what is closed)."""
        found: list[tuple[int, Access]] = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in skip:
                        continue
                    try:
                        fd = os.open(entry.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
                    except OSError:  # gone since it was listed, or not ours to open: left closed
                        continue
                    info = os.fstat(fd)
                    if stat.S_ISLNK(info.st_mode) or (info.st_dev, info.st_ino) in closed:
                        os.close(fd)
                        continue
                    found.append((fd, self._fit(info, access)))
        except BaseException:
            _close(found)
            raise
        return found

    def _grant(
        self, grant: Grant, secrets: list[tuple[Path, tuple[int, int]]], rules: list[tuple[int, Access]]
    ) -> None:
        """A path inside the data directory (one outside it is open already; one that holds it is never opened).
        Symbolic links are never followed: a task writes what its `${OUTPUT_PATH}` holds, so an artifact that is a
        link (or lies below one) to `jwt-secret` must not give its consumer `jwt-secret`. A grant that holds a
        secret file (`ODIN_JWT_SECRET_FILE` in `${ROOT_PATH}`, say) is given around it, as the data directory is."""
        path = Path(os.path.abspath(grant.path))  # noqa: PTH100 (normalises `..` without following links)
        if not path.is_relative_to(self.data_dir) or path == self.data_dir:
            return
        fd = os.open(self.data_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in path.relative_to(self.data_dir).parts:
                below = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = below
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    os.close(fd)
                    return
        except FileNotFoundError:  # an artifact since removed: the task finds it missing, as it is
            os.close(fd)
            return
        except BaseException:
            os.close(fd)
            raise
        info = os.fstat(fd)
        inside = [(secret, ids) for secret, ids in secrets if secret == path or path in secret.parents]
        if not inside:
            rules.append((fd, self._fit(info, grant.access)))
            return
        os.close(fd)
        if not stat.S_ISDIR(info.st_mode):  # the grant is a secret file itself
            return
        ways = _ways([secret for secret, _ in inside], top=path)
        closed = {_stamp(directory)[:2] for directory in ways} | {ids for _, ids in inside}
        for directory, skip in ways.items():
            rules += self._siblings(directory, skip, closed, grant.access)

    def _fit(self, info: os.stat_result, access: Access) -> Access:
        """`access` as the kernel takes it: only handled rights, and on a file only those that apply to a file."""
        allowed = access & self._handled
        return allowed if stat.S_ISDIR(info.st_mode) else allowed & landlock.FILE_RIGHTS


@dataclass(frozen=True, slots=True)
class _Level:
    """A directory on the way as last read: its stamp, the names closed in it, and the rules for the rest."""

    stamp: tuple[int, int, int]
    skip: frozenset[str]
    rules: list[tuple[int, Access]]


def _ways(targets: Iterable[Path], top: Path = Path("/")) -> dict[Path, frozenset[str]]:
    """Each directory from `top` down to each of `targets` (absolute, resolved, below `top`), with the names in it
    that are on a way or closed: every other entry of those directories is allowed."""
    ways: dict[Path, set[str]] = {}
    for target in targets:
        level = top
        for part in target.relative_to(top).parts:
            ways.setdefault(level, set()).add(part)
            level = level / part
    return {directory: frozenset(names) for directory, names in ways.items()}


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino, info.st_mtime_ns


def _close(rules: list[tuple[int, Access]]) -> None:
    for fd, _ in rules:
        os.close(fd)


def resolve_sandbox(
    mode: SandboxMode, data_dir: Path, secret_files: Callable[[], Iterable[str]] = tuple
) -> tuple[Sandbox | None, str]:
    """The sandbox `mode` asks for on this machine, or (None, why there is none: "" when off). `landlock` without
    Landlock raises `SandboxUnavailable` naming why."""
    if mode == SandboxMode.OFF:
        return None, ""
    abi, why = landlock.abi_version()
    if abi > 0:
        return Sandbox(data_dir, abi, secret_files), ""
    if mode == SandboxMode.LANDLOCK:
        raise SandboxUnavailable(
            f"ODIN_LOCAL_SANDBOX=landlock, but {why}; use a kernel with Landlock, or set ODIN_LOCAL_SANDBOX=auto "
            "(tasks can then read the data directory unless ODIN_LOCAL_TASK_USER is set)"
        )
    return None, why
