"""Real git repositories for tests: a bare "remote" plus a working clone that commits and pushes, all via pygit2.

Tests across Odin (the poller, webhooks, the API) need repositories that behave like GitHub's: commits arrive by
push, branches get force-pushed and deleted, tags move. `GitRemote` does exactly that on local disk, quickly and
deterministically (commit times advance by one second per commit, so shas are stable across runs):

    remote = GitRemote.create(tmp_path / "repo")
    first = remote.commit({"train/main.yml": "steps: []", "train/run.sh": Executable("#!/bin/sh\\n")})
    remote.commit({"train/run.sh": None, "train/link": Symlink("../shared")}, message="tidy")
    remote.reset_hard(first)
    remote.push(force=True)
    mirror = Mirror(remote.url, tmp_path / "cache")

Files are given as a mapping of posix paths to content: `bytes`/`str` (a regular file), `Executable(...)`,
`Symlink(target)`, `Submodule(sha)` (a gitlink entry) or `None` (delete; empty directories disappear).

Also here: loopback-only helpers for failure paths (`closed_port`, `FakeGitHttpServer`), never any outside address.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileMode, ObjectType

__all__ = [
    "Executable",
    "FakeGitHttpServer",
    "FileContent",
    "GitRemote",
    "Submodule",
    "Symlink",
    "closed_port",
    "commits_with_shared_prefix",
    "self_signed_certificate",
]

DEFAULT_AUTHOR = ("Odin Test", "test@odin.invalid")
_EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z; commit times count up from here


@dataclass(frozen=True)
class Symlink:
    """A symbolic link entry (git mode 120000) whose content is `target`."""

    target: str


@dataclass(frozen=True)
class Executable:
    """A regular file with the executable bit (git mode 100755)."""

    content: bytes | str


@dataclass(frozen=True)
class Submodule:
    """A gitlink entry (git mode 160000) pointing at a commit of some other repository."""

    sha: str


FileContent = bytes | str | Executable | Symlink | Submodule | None


def _to_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


class GitRemote:
    """A bare repository playing the remote (`url`, `file_url`) and a working clone that commits and pushes to it.

    Branch operations name the branch; "main" is the default everywhere. Methods return full shas.
    """

    def __init__(self, root: Path, *, default_branch: str = "main") -> None:
        self.root = Path(root)
        self.default_branch = default_branch
        self.bare_path = self.root / "remote.git"
        self.work_path = self.root / "work"
        self.bare = pygit2.init_repository(str(self.bare_path), bare=True, initial_head=default_branch)
        self.work = pygit2.init_repository(str(self.work_path), initial_head=default_branch)
        self.work.remotes.create("origin", str(self.bare_path))
        self._clock = _EPOCH

    @classmethod
    def create(cls, root: Path, *, default_branch: str = "main") -> GitRemote:
        return cls(root, default_branch=default_branch)

    # --- addresses ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The remote as a plain local path."""
        return str(self.bare_path)

    @property
    def file_url(self) -> str:
        """The remote as a file:// URL."""
        return self.bare_path.as_uri()

    # --- state -------------------------------------------------------------------------------------------------------

    @property
    def head(self) -> str:
        """The working clone's tip of the default branch (what was last committed or reset there)."""
        tip = self.local_tip(self.default_branch)
        if tip is None:
            raise LookupError("nothing committed yet")
        return tip

    def local_tip(self, branch: str = "main") -> str | None:
        ref = self.work.references.get(f"refs/heads/{branch}")
        return None if ref is None else str(ref.target)

    def remote_tip(self, branch: str = "main") -> str | None:
        """What the remote has for `branch` (None when it has no such branch)."""
        ref = self.bare.references.get(f"refs/heads/{branch}")
        return None if ref is None else str(ref.target)

    def files(self, sha: str | None = None) -> dict[str, bytes]:
        """Every regular file (path -> content) at `sha` (default: head): handy for assertions."""
        commit = self.work[sha or self.head].peel(pygit2.Commit)
        out: dict[str, bytes] = {}

        def walk(tree: pygit2.Tree, prefix: str) -> None:
            for entry in tree:
                if entry.type == ObjectType.TREE:
                    walk(entry.peel(pygit2.Tree), f"{prefix}{entry.name}/")
                elif entry.type == ObjectType.BLOB and int(entry.filemode) != FileMode.LINK:
                    out[f"{prefix}{entry.name}"] = entry.peel(pygit2.Blob).data

        walk(commit.tree, "")
        return out

    # --- writing history ---------------------------------------------------------------------------------------------

    def commit(
        self,
        files: Mapping[str, FileContent],
        message: str = "change",
        *,
        branch: str = "main",
        author: tuple[str, str] = DEFAULT_AUTHOR,
        parents: list[str] | None = None,
        push: bool = True,
    ) -> str:
        """Commit `files` (changes on top of the branch's current tree) to `branch` in the working clone and, by
        default, push it. `parents` overrides the parent list (e.g. `[]` for a new root, two shas for a merge)."""
        ref_name = f"refs/heads/{branch}"
        current = self.work.references.get(ref_name)
        if parents is None:
            parent_ids = [current.target] if current is not None else []
        else:
            parent_ids = [pygit2.Oid(hex=p) for p in parents]
        base_tree = None
        if parent_ids:
            base_tree = self.work[parent_ids[0]].peel(pygit2.Commit).tree
        tree_id = self._apply(base_tree, dict(files)) or self.work.TreeBuilder().write()
        self._clock += 1
        author_sig = pygit2.Signature(author[0], author[1], self._clock, 0)
        committer = pygit2.Signature(DEFAULT_AUTHOR[0], DEFAULT_AUTHOR[1], self._clock, 0)
        oid = self.work.create_commit(None, author_sig, committer, message, tree_id, parent_ids)
        self.work.references.create(ref_name, oid, force=True)
        self._sync_worktree(branch)
        if push:
            self.push(branch, force=parents is not None)
        return str(oid)

    def _apply(self, base: pygit2.Tree | None, changes: dict[str, FileContent]) -> pygit2.Oid | None:
        """Write the tree `base` + `changes`; None when the result is empty (so empty directories vanish)."""
        builder = self.work.TreeBuilder(base) if base is not None else self.work.TreeBuilder()
        direct: dict[str, FileContent] = {}
        nested: dict[str, dict[str, FileContent]] = {}
        for path, content in changes.items():
            parts = [p for p in path.split("/") if p and p != "."]
            if not parts:
                raise ValueError(f"bad path {path!r}")
            if len(parts) == 1:
                direct[parts[0]] = content
            else:
                nested.setdefault(parts[0], {})["/".join(parts[1:])] = content
        for name, content in direct.items():
            if content is None:
                if builder.get(name) is not None:
                    builder.remove(name)
                continue
            oid, mode = self._object_for(content)
            builder.insert(name, oid, mode)
        for name, sub_changes in nested.items():
            existing = builder.get(name)
            sub_base = existing.peel(pygit2.Tree) if existing is not None and existing.type == ObjectType.TREE else None
            sub_tree = self._apply(sub_base, sub_changes)
            if sub_tree is None:
                if existing is not None:
                    builder.remove(name)
            else:
                builder.insert(name, sub_tree, FileMode.TREE)
        if len(builder) == 0:
            return None
        return builder.write()

    def _object_for(self, content: bytes | str | Executable | Symlink | Submodule) -> tuple[pygit2.Oid, int]:
        if isinstance(content, Symlink):
            return self.work.create_blob(content.target.encode("utf-8")), FileMode.LINK
        if isinstance(content, Executable):
            return self.work.create_blob(_to_bytes(content.content)), FileMode.BLOB_EXECUTABLE
        if isinstance(content, Submodule):
            return pygit2.Oid(hex=content.sha), FileMode.COMMIT
        return self.work.create_blob(_to_bytes(content)), FileMode.BLOB

    def _sync_worktree(self, branch: str) -> None:
        # Keep the working directory showing the checked-out branch, like a developer's clone would.
        if self.work.head_is_unborn or self.work.head.name == f"refs/heads/{branch}":
            self.work.checkout_head(strategy=CheckoutStrategy.FORCE)  # type: ignore[no-untyped-call] # untyped in pygit2

    def push(self, branch: str = "main", *, force: bool = False) -> None:
        """Push `branch` to the remote. Without `force`, a non-fast-forward push fails (RuntimeError)."""
        self._push(f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}")

    def _push(self, spec: str) -> None:
        rejected: list[str] = []

        class Callbacks(pygit2.RemoteCallbacks):
            def push_update_reference(self, refname: str, message: str | None) -> None:
                if message:
                    rejected.append(f"{refname}: {message}")

        try:
            self.work.remotes["origin"].push([spec], callbacks=Callbacks())
        except pygit2.GitError as e:
            raise RuntimeError(f"push rejected: {e}") from e
        if rejected:
            raise RuntimeError(f"push rejected: {'; '.join(rejected)}")

    def pull(self, branch: str = "main") -> str:
        """Bring the working clone's `branch` to the remote's tip (commits others pushed, e.g. through Odin's API).
        Returns the tip."""
        self.work.remotes["origin"].fetch([f"+refs/heads/{branch}:refs/remotes/origin/{branch}"])
        tip = self.remote_tip(branch)
        if tip is None:
            raise LookupError(f"the remote has no branch {branch!r}")
        self.work.references.create(f"refs/heads/{branch}", pygit2.Oid(hex=tip), force=True)
        self._sync_worktree(branch)
        return tip

    def reset_hard(self, sha: str, *, branch: str = "main") -> None:
        """Point the working clone's `branch` at `sha` (like `git reset --hard`); follow with `push(force=True)`."""
        self.work.references.create(f"refs/heads/{branch}", pygit2.Oid(hex=sha), force=True)
        self._sync_worktree(branch)

    def create_branch(self, name: str, sha: str | None = None, *, push: bool = True) -> None:
        self.work.references.create(f"refs/heads/{name}", pygit2.Oid(hex=sha or self.head), force=True)
        if push:
            self.push(name, force=True)

    def publish(self, branch: str, ref: str) -> str:
        """Set the remote's `ref` to the working clone's `branch`, as a provider keeps a pull request's head
        (`refs/pull/7/head`, `refs/merge-requests/7/head`). Returns the commit."""
        self._push(f"+refs/heads/{branch}:{ref}")
        tip = self.local_tip(branch)
        assert tip is not None
        return tip

    def delete_remote_branch(self, name: str) -> None:
        """Delete `name` on the remote (the working clone keeps its copy, so it can be pushed back)."""
        self._push(f":refs/heads/{name}")

    def tag(self, name: str, sha: str | None = None, *, message: str | None = None, push: bool = True) -> str:
        """Tag `sha` (default: head): lightweight, or annotated with `message`. Moves an existing tag."""
        target = pygit2.Oid(hex=sha or self.head)
        ref_name = f"refs/tags/{name}"
        if self.work.references.get(ref_name) is not None:
            self.work.references.delete(ref_name)
        if message is None:
            self.work.references.create(ref_name, target)
        else:
            self._clock += 1
            tagger = pygit2.Signature(DEFAULT_AUTHOR[0], DEFAULT_AUTHOR[1], self._clock, 0)
            self.work.create_tag(name, target, ObjectType.COMMIT, tagger, message)
        if push:
            self._push(f"+{ref_name}:{ref_name}")
        return str(target)

    def delete_tag(self, name: str, *, push: bool = True) -> None:
        self.work.references.delete(f"refs/tags/{name}")
        if push:
            self._push(f":refs/tags/{name}")

    def commits_sharing_prefix(self, length: int = 7) -> tuple[str, str]:
        """Two real commits whose ids share their first `length` hex digits, tagged `prefix-a`/`prefix-b` and
        pushed: for testing how abbreviated ids are resolved. Takes ~0.1 s for length 7 (a birthday search)."""
        empty_tree = self.work.TreeBuilder().write()
        bodies = commits_with_shared_prefix(str(empty_tree), length)
        shas = []
        for suffix, body in zip("ab", bodies, strict=True):
            oid = self.work.odb.write(ObjectType.COMMIT, body)
            self.tag(f"prefix-{suffix}", str(oid))
            shas.append(str(oid))
        return shas[0], shas[1]

    # --- failure injection -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def unavailable(self) -> Iterator[None]:
        """The remote's directory is gone inside the block (as if a disk was unmounted), then comes back."""
        away = self.bare_path.with_name(self.bare_path.name + ".away")
        self.bare_path.rename(away)
        try:
            yield
        finally:
            away.rename(self.bare_path)

    def destroy(self) -> None:
        """Remove the remote for good."""
        shutil.rmtree(self.bare_path)


def commits_with_shared_prefix(tree_sha: str, length: int = 7) -> tuple[bytes, bytes]:
    """Raw bodies of two commit objects (on `tree_sha`) whose ids share `length` leading hex digits."""
    seen: dict[str, bytes] = {}
    i = 0
    while True:
        body = (
            f"tree {tree_sha}\nauthor A <a@odin.invalid> {_EPOCH} +0000\n"
            f"committer A <a@odin.invalid> {_EPOCH} +0000\n\nprefix collision {i}\n"
        ).encode()
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body, usedforsecurity=False).hexdigest()
        prefix = sha[:length]
        other = seen.get(prefix)
        if other is not None:
            return other, body
        seen[prefix] = body
        i += 1


# --- loopback network helpers -----------------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback TCP port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class FakeGitHttpServer:
    """A loopback HTTP(S) server that answers every request with `status` (401 asks for Basic auth), recording the
    Authorization headers it received. Not a git server: it exists to exercise failure paths.

        with FakeGitHttpServer.start(status=401) as server:
            Mirror(server.url("org/repo.git"), cache, credentials=..., allow_insecure_http=True).fetch()
    """

    status: int
    tls: tuple[Path, Path] | None = None  # (certificate, key)
    authorizations: list[str | None] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, status: int = 401, tls: tuple[Path, Path] | None = None) -> Iterator[FakeGitHttpServer]:
        fake = cls(status=status, tls=tls)
        outer = fake

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.authorizations.append(self.headers.get("Authorization"))
                self.send_response(outer.status)
                if outer.status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="odin-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        fake._server = server
        # A short poll interval: shutdown() waits for the next poll.
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="fake-git-http", daemon=True)
        thread.start()
        try:
            yield fake
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    def url(self, path: str = "org/repo.git") -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/{path}"

    def basic_credentials(self) -> list[tuple[str, str]]:
        """The (user, password) pairs received in Basic Authorization headers."""
        out = []
        for header in self.authorizations:
            if header and header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                out.append((user, password))
        return out


def self_signed_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for 127.0.0.1 (cert, key), made with the openssl tool; None when it is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
