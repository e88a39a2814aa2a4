"""`ODIN_LOCAL_TASK_USER`: local tasks run as another user than Odin, so that files only Odin's user can read (the
database, the JWT secret) are out of their reach. Switching user needs root; anything else is a start-up error, not
a silent fallback to running tasks as Odin's user.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


class TaskUserError(ValueError):
    """`ODIN_LOCAL_TASK_USER` cannot be used; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TaskUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups: the user's own, never Odin's
    home: str


def resolve_task_user(spec: str | None) -> TaskUser | None:
    """The user named (or numbered) by `spec`; None when unset. Raises `TaskUserError`."""
    if spec is None or not spec.strip():
        return None
    spec = spec.strip()
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except (KeyError, OverflowError):
        raise TaskUserError(f"ODIN_LOCAL_TASK_USER={spec}: no such user on this machine") from None
    if entry.pw_uid == 0:
        raise TaskUserError(f"ODIN_LOCAL_TASK_USER={spec} is root: name an unprivileged user, or unset it")
    euid = os.geteuid()
    if euid != 0:
        raise TaskUserError(
            f"ODIN_LOCAL_TASK_USER={spec} needs Odin to run as root to switch users (it runs as uid {euid}): "
            "start Odin as root, or unset ODIN_LOCAL_TASK_USER to run tasks as Odin's own user"
        )
    groups = tuple(sorted({entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem)}))
    return TaskUser(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def check_reachable(user: TaskUser, directory: Path) -> None:
    """Tasks work inside the data directory: every directory above it must let the task user pass. Raises
    `TaskUserError` naming the first one that does not (rather than every task failing with "Permission denied")."""
    for parent in reversed(directory.parents):
        st = parent.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == user.uid:
            allowed = bool(mode & stat.S_IXUSR)
        elif st.st_gid in user.groups:
            allowed = bool(mode & stat.S_IXGRP)
        else:
            allowed = bool(mode & stat.S_IXOTH)
        if not allowed:
            raise TaskUserError(
                f"ODIN_LOCAL_TASK_USER={user.name} cannot reach the data directory: {parent} (mode {mode:03o}) "
                "does not let it pass; allow it (chmod o+x) or choose a data directory it can reach"
            )
