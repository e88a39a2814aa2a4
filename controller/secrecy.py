"""Keep the server's secrets out of reach of the tasks it runs (docs/local-executor.md, "What a task can reach").

A local task runs on the same machine as `odin serve`, often as the same user. What stands between it and the
server's secrets, all applied once at start, before the first task exists:

- The server marks itself non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`). Its `/proc/<pid>/environ`, `/mem`, `/maps`,
  `/fd` are then owned by root and closed to processes of the same uid, and so is `ptrace` attach; only a process
  with CAP_SYS_PTRACE (root) can still look. The kernel resets the flag at `exec`, so tasks are ordinary processes.
- Secret-bearing variables (`ODIN_*` names with SECRET, PASSWORD, TOKEN, KEY or CREDENTIAL in them, the database
  URL, and the variables that `env:NAME` secret references name) are read into `Settings`, then moved out of
  `os.environ` into this module: a child started without an explicit environment inherits none of them, while
  `env:NAME` references still resolve (`withheld`). `/proc/<pid>/environ` shows the environment the process was
  *started* with, whatever `os.environ` becomes later; the non-dumpable flag is what closes that file.
- The data directory is 0700 (0711 when tasks run as another user, see `executors.task_user`), and the files directly
  in it (the SQLite database, `jwt-secret`) are 0600; looser modes left by older versions are tightened with a
  warning.

File modes cannot keep out a task of the server's own uid: the Landlock sandbox does (`executors.sandbox`,
`ODIN_LOCAL_SANDBOX`), for the data directory and for every secret file outside it (`secret_files`), and so do
`ODIN_LOCAL_TASK_USER` (tasks as another user) and the Kubernetes executor.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import stat
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

SECRET_ENV_NAME = re.compile(r"^ODIN_(?:.*(?:SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL).*|DATABASE_URL)$", re.I)
"""`ODIN_*` variables that carry a secret (or say where one is): never left in the environment after start."""

_withheld: dict[str, str] = {}
_lock = threading.Lock()


def mark_undumpable() -> bool:
    """Close this process's /proc files and ptrace to other processes of its uid. False where it cannot be done."""
    if not sys.platform.startswith("linux"):
        log.info("not on Linux: the process cannot be marked non-dumpable; tasks of the same user can inspect it")
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        log.warning("prctl(PR_SET_DUMPABLE, 0) failed: %s; tasks of the same user can inspect Odin", os.strerror(errno))
        return False
    return True


def is_undumpable() -> bool:
    """True when this process is marked non-dumpable (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) == 0


def secret_env_names(environ: Iterable[str], references: Iterable[str | None] = ()) -> list[str]:
    """The secret-bearing names among `environ`: `SECRET_ENV_NAME` matches and the targets of `env:NAME` references."""
    referenced = {ref.strip()[4:] for ref in references if ref and ref.strip().startswith("env:")}
    return sorted(name for name in environ if SECRET_ENV_NAME.match(name) or name in referenced)


def withhold_secrets(references: Iterable[str | None] = ()) -> list[str]:
    """Move secret-bearing variables out of `os.environ` into this module; the names moved (never the values)."""
    names = secret_env_names(list(os.environ), references)
    with _lock:
        for name in names:
            value = os.environ.pop(name, None)
            if value is not None:
                _withheld[name] = value
    return names


def withheld(name: str) -> str | None:
    """A variable `withhold_secrets` took out of the environment (for `env:NAME` secret references)."""
    with _lock:
        return _withheld.get(name)


def secure_data_dir(data_dir: Path, *, traversable: bool = False) -> None:
    """Create `data_dir` private to this user (0700; 0711 with `traversable`, so that tasks running as another user
    reach their own directories in it), and make every file directly in it 0600. Loose modes are fixed, with a
    warning, because they mean the secrets in there were readable by others until now."""
    wanted = 0o711 if traversable else 0o700
    data_dir.mkdir(mode=wanted, parents=True, exist_ok=True)
    _tighten(data_dir, wanted, exact=True)
    if traversable:  # other users may now pass through: what they need not reach is closed one level down
        for private in ("git",):
            (data_dir / private).mkdir(mode=0o700, exist_ok=True)
            _tighten(data_dir / private, 0o700, exact=True)
    for entry in data_dir.iterdir():
        try:
            st = entry.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            _tighten(entry, 0o600)


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (SQLite gives its -wal/-shm files the database's mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _tighten(path, 0o600)


def _tighten(path: Path, wanted: int, *, exact: bool = False) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    loose = mode != wanted if exact else bool(mode & ~wanted & 0o777)
    if not loose:
        return
    new = wanted if exact else mode & wanted
    path.chmod(new)
    if mode & 0o077 & ~wanted:
        log.warning("%s had mode %03o (readable by other users); changed to %03o", path, mode, new)
