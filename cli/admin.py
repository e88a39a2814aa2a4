"""`odin`: run the server, run a pipeline once, start the demo, manage users and the database.

Flags override `ODIN_*` environment variables, which override defaults (see `odin.controller.settings`).
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from odin.cli.consoles import lazy_console
from odin.cli.importing import gc_paused
from odin.cli.logs import setup_logging

app = typer.Typer(
    name="odin",
    help="Odin: a commit to a pipeline repository becomes a reproducible run.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
users_app = typer.Typer(help="Manage users (admin, member, viewer).", no_args_is_help=True)
app.add_typer(users_app, name="users")
# Built on first use: `odin --help` must not import rich (docs/architecture.md, "Start-up").
console = lazy_console(stderr=True, soft_wrap=True)
out = lazy_console(soft_wrap=True)


def _settings(**overrides: Any) -> Any:
    from odin.controller.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    repo: Annotated[str | None, typer.Option(help="Repository to follow (path or URL) [env: ODIN_REPO]")] = None,
    branch: Annotated[str | None, typer.Option(help="Branch to follow [env: ODIN_BRANCH]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [env: ODIN_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL [env: ODIN_DATABASE_URL]")] = None,
    executor: Annotated[str | None, typer.Option(help="local | kubernetes [env: ODIN_EXECUTOR]")] = None,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between fetches [env: ODIN_POLL_INTERVAL]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env: ODIN_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: ODIN_PORT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING [env: ODIN_LOG_LEVEL]")] = None,
    processes: Annotated[
        int | None,
        typer.Option(help="Processes answering on the port; more than 1 needs PostgreSQL [env: ODIN_SERVE_PROCESSES]"),
    ] = None,
) -> None:
    """Start the controller and the API (default http://127.0.0.1:9003)."""
    setup_logging(log_level)
    with gc_paused():
        settings = _settings(
            repo=repo,
            branch=branch,
            data_dir=data_dir,
            database_url=database_url,
            executor=executor,
            poll_interval=poll_interval,
            host=host,
            port=port,
            serve_processes=processes,
        )
        from odin.cli.server import run_server

    raise typer.Exit(run_server(settings))


@app.command("run")
def run_once(
    directory: Annotated[Path, typer.Argument(help="A pipeline directory, or its main.yml")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="Parameter as key=value; repeatable"),
    ] = None,
    parallelism: Annotated[int | None, typer.Option(help="Tasks running at once (default 8)")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where runs, logs and the run record go (default: a temp dir)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level of Odin itself")] = "WARNING",
) -> None:
    """Run one pipeline directory once on this machine, without a server or repository."""
    from odin.cli.params import parse_params
    from odin.cli.run_line import RunOptions, run

    # The `odin` script runs a well-formed line through cli/run_line.py without typer; this is the same command.
    options = RunOptions(directory, parse_params(param, console), parallelism, data_dir, log_level)
    raise typer.Exit(run(options))


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its repository and state")] = Path(
        ".odin-demo"
    ),
    port: Annotated[int, typer.Option(help="API port")] = 9003,
    poll_interval: Annotated[float, typer.Option(help="Seconds between fetches")] = 2.0,
    samples: Annotated[Path | None, typer.Option(help="Pipelines to seed with (default ./sample-pipelines)")] = None,
) -> None:
    """Seed a local git repository from sample-pipelines/ and serve Odin following it."""
    setup_logging("INFO")
    from odin.cli.demo import run_demo

    raise typer.Exit(run_demo(directory.resolve(), port=port, poll_interval=poll_interval, samples=samples))


@app.command()
def migrate(
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL [env: ODIN_DATABASE_URL]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [env: ODIN_DATA_DIR]")] = None,
) -> None:
    """Apply database migrations (also done on every start)."""
    setup_logging("INFO")
    from odin.controller.store.db import create_db_engine, redact_db_url
    from odin.controller.store.db import migrate as do_migrate

    settings = _settings(database_url=database_url, data_dir=data_dir)
    url = settings.effective_database_url()
    engine = create_db_engine(url)
    do_migrate(engine)
    out.print(f"database {redact_db_url(url)} is up to date")


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
) -> None:
    """Print the API's OpenAPI document (JSON): the contract, for client generators in any language."""
    import json

    from odin.api.app import openapi_document

    text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option(help="admin | member | viewer")] = "viewer",
    email: Annotated[str | None, typer.Option(help="Author e-mail of their commits made through Odin")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL [env: ODIN_DATABASE_URL]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [env: ODIN_DATA_DIR]")] = None,
) -> None:
    """Create a user (the first admin, typically)."""
    from odin.api.auth.passwords import WeakPassword
    from odin.api.auth.users import InvalidUsername, Role, UserExists, create_user
    from odin.controller.store.db import create_db_engine
    from odin.controller.store.db import migrate as do_migrate

    try:
        role_value = Role(role)
    except ValueError:
        console.print(f"[red]error:[/] unknown role {role!r} (admin, member, viewer)")
        raise typer.Exit(2) from None
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {username}: ")
    settings = _settings(database_url=database_url, data_dir=data_dir)
    engine = create_db_engine(settings.effective_database_url())
    do_migrate(engine)
    try:
        create_user(engine, username, password, role_value, email=email)
    except (UserExists, WeakPassword, InvalidUsername) as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    out.print(f"created {role_value.value} {username!r}")


def main() -> None:
    from odin.cli.help_style import run

    run(app)


if __name__ == "__main__":
    main()
