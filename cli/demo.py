"""`odin demo`: a running Odin following a local git repository seeded from `sample-pipelines/`.

Everything lives under one directory (default ./.odin-demo): the bare repository Odin follows (`remote.git`), a
working clone to edit and push from (`workspace`), and Odin's state (`state`). The admin password is taken from
`ODIN_ADMIN_PASSWORD` or generated once into `admin-password` (0600) — never a default.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from rich.console import Console

from odin.controller.git.seed import seed_repository
from odin.controller.settings import Settings


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


def run_demo(directory: Path, *, port: int, poll_interval: float, samples: Path | None = None) -> int:
    from odin.cli.server import run_server

    console = Console(stderr=True, soft_wrap=True)
    try:
        source = samples_dir(samples)
    except SamplesMissing as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    seeded = seed_repository(directory / "remote.git", directory / "workspace", source)
    password = admin_password(directory)
    settings = Settings(
        repo=str(seeded.remote),
        branch="main",
        data_dir=directory / "state",
        poll_interval=poll_interval,
        port=port,
        admin_password=password,
    )
    server = f"http://127.0.0.1:{port}"
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
