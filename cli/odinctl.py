"""`odinctl`: the client. Find runs by commit, inspect them, validate pipelines offline.

Every command talks to the server through `odin.api.client` (the same client Python users get). The server comes
from `--server`, then `ODIN_SERVER`, then the last server logged in to, then http://127.0.0.1:9003. Output is a
human table by default; `-o json` / `-o yaml` print the API's objects for scripts. Exit codes: 0 success, 1 the
thing asked about failed (invalid pipeline, failed run), 2 usage error, 3 server/auth error.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import msgspec
import typer
import yaml
from rich.console import Console
from rich.table import Table

from odin.cli import credentials

app = typer.Typer(
    name="odinctl",
    help="Query, start and inspect Odin runs by commit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILED, EXIT_USAGE, EXIT_SERVER = 1, 2, 3


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


ServerOpt = Annotated[str | None, typer.Option("--server", "-s", help="API URL [env: ODIN_SERVER]")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]


def resolve_server(server: str | None) -> str:
    from odin.api.client.http import DEFAULT_SERVER

    return (server or os.environ.get("ODIN_SERVER") or credentials.default_server() or DEFAULT_SERVER).rstrip("/")


def client(server: str | None, *, authenticated: bool = True) -> Any:
    from odin.api.client.http import OdinClient

    url = resolve_server(server)
    token = os.environ.get("ODIN_TOKEN") or credentials.token_for(url)
    if authenticated and not token:
        err.print(f"[red]error:[/] not logged in to {url}: run `odinctl login` (or set ODIN_TOKEN)")
        raise typer.Exit(EXIT_SERVER)
    return OdinClient(url, token if authenticated else None)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a client call, turning transport and API errors into a message and an exit code."""
    from odin.api.client.http import ApiError, ServerUnreachable

    try:
        return fn(*args, **kwargs)
    except ServerUnreachable as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(EXIT_SERVER) from None
    except ApiError as e:
        hint = " (log in again: `odinctl login`)" if e.status == 401 else ""
        err.print(f"[red]error:[/] {e.detail}{hint}")
        raise typer.Exit(EXIT_SERVER if e.status in (401, 403) or e.status >= 500 else EXIT_FAILED) from None


def emit(obj: Any, output: Output) -> bool:
    """Print `obj` as JSON/YAML when asked; False means the caller prints its human form."""
    if output == Output.TABLE:
        return False
    data = msgspec.to_builtins(obj)
    if output == Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return True


STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "error": "red",
    "running": "cyan",
    "starting": "cyan",
    "pending": "dim",
    "retrying": "yellow",
    "skipped": "yellow",
    "cancelled": "yellow",
}


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


# -- commands -------------------------------------------------------------------------------------------------------
@app.command()
def login(
    server: ServerOpt = None,
    username: Annotated[str, typer.Option("--username", "-u", help="User name")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
) -> None:
    """Log in and keep the token in ~/.config/odin/credentials.json (mode 0600)."""
    url = resolve_server(server)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {username}: ")
    with client(url, authenticated=False) as c:
        token = call(c.login, username, password)
    credentials.store_token(url, token.access_token, username, token.expires_in)
    out.print(f"logged in to {url} as {username} ({token.role})")


@app.command()
def logout(server: ServerOpt = None) -> None:
    """Forget the token for a server."""
    url = resolve_server(server)
    out.print(f"logged out of {url}" if credentials.forget(url) else f"was not logged in to {url}")


@app.command()
def runs(
    commit: Annotated[str | None, typer.Option("--commit", "-c", help="Commit SHA or prefix (>= 7)")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Pipeline name")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Run status")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs")] = 50,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List runs, newest first; filter by commit to see what a commit started."""
    with client(server) as c:
        page = call(c.runs, commit=commit, pipeline=pipeline, status=status, limit=limit)
    if emit(page, output):
        return
    if not page.items:
        err.print("no runs" + (f" for commit {commit}" if commit else ""))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("RUN", "PIPELINE", "COMMIT", "TRIGGER", "STATUS", "CREATED"):
        table.add_column(col)
    for r in page.items:
        table.add_row(
            r.id,
            r.pipeline,
            (r.commit_sha or "-")[:12],
            r.trigger,
            styled(r.status),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """One run: its commit, parameters and every task's state."""
    with client(server) as c:
        run = call(c.run, run_id)
    if emit(run, output):
        return
    out.print(f"[bold]{run.id}[/]  {styled(run.status)}  {run.message or ''}")
    out.print(
        f"pipeline {run.pipeline}  commit {run.commit_sha or '-'}  trigger {run.trigger}  by {run.triggered_by or '-'}"
    )
    if run.params:
        out.print("params " + " ".join(f"{k}={v}" for k, v in sorted(run.params.items())))
    table = Table(box=None, pad_edge=False)
    for col in ("TASK", "STATUS", "ATTEMPT", "EXIT", "REASON", "MESSAGE"):
        table.add_column(col)
    for t in run.tasks:
        exit_code = "-" if t.exit_code is None else str(t.exit_code)
        table.add_row(t.name, styled(t.status), str(t.attempt), exit_code, t.reason or "", t.message or "")
    out.print(table)
    if run.status in ("failed", "error"):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def validate(
    paths: Annotated[list[str], typer.Argument(help="main.yml files, pipeline directories or a repository")],
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """Validate pipelines offline (no server). Exit 0 when valid, 1 on problems: usable as a pre-commit hook."""
    from odin.schema.cli import validate_main

    raise typer.Exit(validate_main(paths, output=output))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
