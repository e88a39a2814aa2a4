"""Landlock, the Linux security module that lets an unprivileged process give up filesystem access (Linux ≥ 5.13).

Why by hand: Landlock is three system calls (`landlock_create_ruleset`, `landlock_add_rule`,
`landlock_restrict_self`) and a `prctl`; the Python bindings on PyPI are young (pre-releases or 0.x, single
maintainers), so a small ctypes layer that Odin owns is the safer dependency.

What this module knows is the kernel's interface: the access rights, which ABI version introduced which (a right the
running kernel does not know must not be asked for), and how to restrict the calling thread. *What* to allow is
`sandbox.py`'s business. A restriction applies to the calling thread and everything it starts afterwards, and can
never be lifted: callers restrict a short-lived thread that only starts the task (`sandbox.Sandbox.spawn`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import os
import sys
from collections.abc import Sequence
from functools import cache

SYS_LANDLOCK_CREATE_RULESET = 444  # the same numbers on every architecture Odin runs on (x86_64, aarch64)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38


class Access(enum.IntFlag):
    """`LANDLOCK_ACCESS_FS_*`: what a rule allows beneath a directory (or on a file)."""

    EXECUTE = 1 << 0
    WRITE_FILE = 1 << 1
    READ_FILE = 1 << 2
    READ_DIR = 1 << 3
    REMOVE_DIR = 1 << 4
    REMOVE_FILE = 1 << 5
    MAKE_CHAR = 1 << 6
    MAKE_DIR = 1 << 7
    MAKE_REG = 1 << 8
    MAKE_SOCK = 1 << 9
    MAKE_FIFO = 1 << 10
    MAKE_BLOCK = 1 << 11
    MAKE_SYM = 1 << 12
    REFER = 1 << 13  # ABI 2: link or rename a file into another directory
    TRUNCATE = 1 << 14  # ABI 3
    IOCTL_DEV = 1 << 15  # ABI 5: ioctl on character and block devices (GPUs)


SCOPE_SIGNAL = 1 << 1
"""`LANDLOCK_SCOPE_SIGNAL` (ABI 6): a restricted process cannot signal processes outside its domain."""

_ABI1 = Access(0x1FFF)
_BY_ABI = {1: _ABI1, 2: _ABI1 | Access.REFER, 3: _ABI1 | Access.REFER | Access.TRUNCATE}
FILE_RIGHTS = Access.EXECUTE | Access.WRITE_FILE | Access.READ_FILE | Access.TRUNCATE | Access.IOCTL_DEV
"""The rights that mean something on a file (a rule on a file may name no others)."""
READ = Access.EXECUTE | Access.READ_FILE | Access.READ_DIR
"""Read and run what is there; nothing created, changed or removed."""


class LandlockError(OSError):
    """A Landlock call failed: the message names the call and the kernel's reason."""


def handled(abi: int) -> Access:
    """Every filesystem right the kernel of `abi` knows (all of them are handled: what no rule allows is denied)."""
    if abi <= 0:
        return Access(0)
    if abi in _BY_ABI:
        return _BY_ABI[abi]
    return _BY_ABI[3] | Access.IOCTL_DEV if abi >= 5 else _BY_ABI[3]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in <linux/landlock.h>: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> tuple[int, str]:
    """(ABI version, "") when this kernel enforces Landlock, else (0, why not) in words a user can act on."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is a Linux feature (this is {sys.platform})"
    libc = _libc()
    version = int(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION))
    if version > 0:
        return version, ""
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        return 0, f"this kernel ({os.uname().release}) has no Landlock (Linux 5.13 or later, built with it)"
    if code == errno.EOPNOTSUPP:
        return 0, "Landlock is built into this kernel but not enabled (add `landlock` to the `lsm=` boot parameter)"
    return 0, f"landlock_create_ruleset: {os.strerror(code)}"


def restrict_thread(rules: Sequence[tuple[int, Access]], abi: int, *, scope_signals: bool = True) -> None:
    """Restrict the calling thread (and what it starts from now on) to `rules`, each (an O_PATH descriptor of a
    file or directory, the rights allowed beneath it); every other access to the filesystem is denied. Sets
    no_new_privs first (the kernel requires it of a process without CAP_SYS_ADMIN: a setuid program must not run
    with rights its author did not expect). Raises `LandlockError`; the descriptors stay the caller's to close."""
    libc = _libc()
    everything = handled(abi)
    attr = _RulesetAttr(int(everything), 0, SCOPE_SIGNAL if scope_signals and abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64)  # older kernels: fs only
    ruleset = int(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        raise _error("landlock_create_ruleset")
    try:
        for fd, access in rules:
            allowed = access & everything
            if not allowed:
                continue
            beneath = _PathBeneathAttr(int(allowed), fd)
            if libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(beneath), 0):
                raise _error(f"landlock_add_rule(fd {fd}, {allowed!r})")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _error("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise _error("landlock_restrict_self")
    finally:
        os.close(ruleset)


def _error(call: str) -> LandlockError:
    code = ctypes.get_errno()
    return LandlockError(code, f"{call}: {os.strerror(code)}")
