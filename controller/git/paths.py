"""Path rules for repository content: normalising user-given paths, finding the pipeline a path belongs to, and
deciding whether a symbolic link stays inside its pipeline directory.

Pure functions (no pygit2), because they are the security boundary between a repository's content and the
controller's disk: they are tested on their own, exhaustively, and reused by whatever else needs the same rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping

from odin.controller.git.errors import PathEscapes

__all__ = [
    "PIPELINE_FILE",
    "PIPELINE_FILES",
    "TEMPLATE_FILE",
    "ancestors",
    "is_hidden",
    "normalize_repo_path",
    "symlink_problem",
    "valid_entry_name",
]

PIPELINE_FILE = "main.yml"
TEMPLATE_FILE = "main.yml.jinja2"
"""The original Odin's templated pipeline: a directory holding it (and no `main.yml`) is a pipeline too, rendered
with its own defaults to be validated (`odin.controller.pipelines`)."""
PIPELINE_FILES = (PIPELINE_FILE, TEMPLATE_FILE)

# Linux gives up after 40 symlink hops (ELOOP); so do we.
_MAX_SYMLINK_HOPS = 40


def normalize_repo_path(path: str) -> str:
    """`./a//b/` -> `a/b`; `""`, `.` and `/`-free input stay as they are. The result may be `""` (the root).

    Raises `PathEscapes` for absolute paths, `..` components and NUL bytes: a repository-relative path that
    needs any of those is not one.
    """
    if "\0" in path:
        raise PathEscapes(f"path {path!r} contains a NUL byte")
    if path.startswith("/"):
        raise PathEscapes(f"path {path!r} is absolute; paths are relative to the repository root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathEscapes(f"path {path!r} contains '..'; paths must stay inside the repository")
    return "/".join(parts)


def ancestors(path: str) -> Iterator[str]:
    """The directories containing `path`, nearest first, never the root: `a/b/c` -> `a/b`, `a`."""
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        yield "/".join(parts[:end])


def is_hidden(path: str) -> bool:
    """A path under a dot-directory (`.github/...`, `a/.cache/...`): never a pipeline."""
    return any(part.startswith(".") for part in path.split("/"))


def valid_entry_name(name: str) -> bool:
    """A tree entry name that is safe to create on disk. git itself refuses the others, but a crafted tree object
    can contain them, and a repository's content is untrusted input."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def symlink_problem(link: str, target: str, links: Mapping[str, str]) -> str | None:
    """Why the symbolic link at `link` (relative to the pipeline directory) would lead outside that directory, or
    None when it stays inside.

    `links` maps every symbolic link in the directory (relative path -> target) so that chains are followed the
    way the kernel will follow them once materialized: a purely textual check is not enough, since with `d -> .`
    the target `d/../x` is `x` textually but `../x` on disk. Dangling links are fine (they resolve to nothing).
    """
    if not target:
        return "has an empty target"
    if "\0" in target:
        return "has a target containing a NUL byte"
    if target.startswith("/"):
        return f"points to an absolute path ({target})"
    current = link.split("/")[:-1]  # a link's target is relative to the directory containing the link
    pending = deque(target.split("/"))
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return f"points outside the pipeline directory ({target})"
            current.pop()
            continue
        candidate = "/".join([*current, part])
        hop_target = links.get(candidate)
        if hop_target is None:
            current.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            return f"is part of a symbolic link loop ({target})"
        if not hop_target or hop_target.startswith("/"):
            return f"leads through {candidate} to an absolute or empty target ({hop_target})"
        # Resolve the linked component in place: its target is relative to `current`, the link's directory.
        pending.extendleft(reversed(hop_target.split("/")))
    return None
