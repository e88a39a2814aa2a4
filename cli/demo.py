"""`odin demo`: a running Odin following a local git repository seeded from `sample-pipelines/`.

Everything lives under one directory (default ./.odin-demo): the bare repository Odin follows (`remote.git`), a
working clone to edit and push from (`workspace`), and Odin's state (`state`). The admin password is taken from
`ODIN_ADMIN_PASSWORD` or generated once into `admin-password` (0600) — never a default.

The samples point editors at the schema with `# yaml-language-server: $schema=../../schema/...`, a path that holds in
the Odin checkout. The demo repository is seeded with the schema file at its root (`schema/pipeline.schema.json`) and
each comment rewritten to reach it, so completion and checks work in the workspace the user edits.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from odin.controller.git.seed import seed_repository
from odin.controller.settings import Settings
from odin.schema.schemafile import SCHEMA_FILE, schema_path

SCHEMA_COMMENT = re.compile(r"^(# yaml-language-server: \$schema=).*$", re.MULTILINE)


class SamplesMissing(Exception):
    pass


def samples_dir(given: Path | None) -> Path:
    """The pipelines to seed the demo repository with: `--samples`, else ./sample-pipelines of the checkout."""
    candidate = given or Path.cwd() / "sample-pipelines"
    if not candidate.is_dir() or not any(candidate.glob("*/main.yml")):
        raise SamplesMissing(
            f"{candidate} holds no pipelines: run `odin demo` from the Odin checkout, or pass --samples DIR"
        )
    return candidate


def admin_password(directory: Path) -> str:
    if os.environ.get("ODIN_ADMIN_PASSWORD"):
        return os.environ["ODIN_ADMIN_PASSWORD"]
    path = directory / "admin-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    directory.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(password + "\n")
    return password


def stage_samples(source: Path, staging: Path) -> Path:
    """A copy of `source` with the schema file at `schema/` and every main.yml's schema comment pointing at it."""
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (staging / "schema").mkdir(exist_ok=True)
    shutil.copyfile(schema_path(), staging / "schema" / SCHEMA_FILE)
    for main in staging.rglob("main.yml"):
        target = "../" * (len(main.relative_to(staging).parts) - 1) + f"schema/{SCHEMA_FILE}"
        text = main.read_text(encoding="utf-8")
        main.write_text(SCHEMA_COMMENT.sub(rf"\g<1>{target}", text), encoding="utf-8")
    return staging


HOST = "127.0.0.1"


class PortTaken(Exception):
    pass


def check_port(port: int, host: str = HOST) -> None:
    """Fail before anything is seeded or printed when the demo's port cannot be bound: otherwise the user copies a
    password and commands for a server that never starts (or that is another program on that port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closing socket is no obstacle
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortTaken(
                    f"port {port} on {host} is in use (another `odin demo` or `odin serve`?): "
                    f"stop it, or pass --port with a free one"
                ) from None
            raise PortTaken(f"cannot listen on {host}:{port}: {e.strerror}") from None


def run_demo(directory: Path, *, port: int, poll_interval: float, samples: Path | None = None) -> int:
    from odin.cli.server import run_server

    console = Console(stderr=True, soft_wrap=True)
    try:
        source = samples_dir(samples)
        check_port(port)
    except (SamplesMissing, PortTaken) as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    with tempfile.TemporaryDirectory(prefix="odin-demo-") as tmp:
        seeded = seed_repository(
            directory / "remote.git", directory / "workspace", stage_samples(source, Path(tmp) / "pipelines")
        )
    password = admin_password(directory)
    settings = Settings(
        repo=str(seeded.remote),
        branch="main",
        data_dir=directory / "state",
        poll_interval=poll_interval,
        port=port,
        admin_password=password,
    )
    server = f"http://{HOST}:{port}"
    bin_dir = Path(sys.argv[0]).resolve().parent
    # Plain lines, never a box: these are commands to copy, and a box would crop them in a narrow or piped output.
    console.print(
        "\n[bold]Odin demo[/]\n"
        f"Odin follows [bold]{seeded.remote}[/] (branch main) and serves [bold]{server}[/]\n"
        f"Admin password: [bold]{password}[/]  (also in {directory / 'admin-password'})\n\n"
        "In another terminal:\n"
        f"  export PATH={bin_dir}:$PATH ODIN_SERVER={server}\n"
        f"  echo '{password}' | odinctl login --username admin --password-stdin\n"
        f"  cd {seeded.workspace}\n"
        "  sed -i 's/Hello/Hello again/' hello/main.yml && git commit -qam 'Say hello again' && git push -q\n"
        "  odinctl runs --commit $(git rev-parse HEAD)     # the run appears within a few seconds\n"
        "  odinctl show <RUN-ID>\n"
        "  odinctl gpus                                    # this machine's GPUs, and which run holds each\n\n"
        "Or run a pipeline once, without the server:  odin run sample-pipelines/train\n",
        highlight=False,
    )
    return run_server(settings)
