"""`odinctl`: the client. Find runs by commit, inspect them, start, rerun, stop and watch them; manage tokens.

Every command talks to the server through `odin.api.client` (the same clients Python users get). The server comes
from `--server`, then `ODIN_SERVER`, then the last server logged in to, then http://127.0.0.1:9003; the token from
`ODIN_TOKEN` (an API token, for CI), then the credentials file written by `odinctl login` (mode 0600).

Output is a human table by default, as kubectl's: `-o wide` adds columns where there are more to show, `-o name`
prints one identifier a line (run ids, commit SHAs, pipeline names...) to pipe into another command, and `-o json` /
`-o yaml` print the API's objects for scripts.

Exit codes (a CI job can rely on them):
  0  success (for `run --wait`, `rerun --wait`, `watch`: the run succeeded)
  1  what was asked about failed: the run failed, was cancelled or errored; the pipeline is invalid; the server
     refused the request as asked (404, 409, 422...)
  2  usage error (unknown option, bad key=value)
  3  server or authentication problem: unreachable, not logged in, token rejected (401/403), server error (5xx)
Shell completion: `odinctl --install-completion` (bash, zsh, fish, PowerShell).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from odin.cli import credentials
from odin.cli.consoles import lazy_console
from odin.cli.params import parse_params

if TYPE_CHECKING:
    from rich.console import Console

# Lazy imports: `odinctl --help` and the commands that do not print through rich, YAML or msgspec must not import
# them (start-up time; docs/architecture.md, "Start-up"). Heavy modules are imported inside the command that uses them.

app = typer.Typer(
    name="odinctl",
    help="Find, inspect, start, rerun and stop Odin runs by commit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
users_app = typer.Typer(help="Manage users (admin).", no_args_is_help=True)
tokens_app = typer.Typer(help="Your API tokens, for CI jobs and tools.", no_args_is_help=True)
repos_app = typer.Typer(help="Followed repositories and their branch patterns (admin).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(repos_app, name="repos")
app.add_typer(tokens_app, name="tokens")

out = lazy_console(highlight=False, soft_wrap=False)
err = lazy_console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILED, EXIT_USAGE, EXIT_SERVER = 1, 2, 3
T = TypeVar("T")


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    NAME = "name"
    JSON = "json"
    YAML = "yaml"

    @property
    def human(self) -> bool:
        """A table for people (`table`, `wide`): progress and explanations may go to stdout."""
        return self in (Output.TABLE, Output.WIDE)


ServerOpt = Annotated[str | None, typer.Option("--server", "-s", metavar="URL", help="API URL [env: ODIN_SERVER]")]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table, wide (more columns), name (identifiers only), json or yaml")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="KEY=VALUE", help="Parameter as key=value; repeatable"),
]
WaitOpt = Annotated[bool, typer.Option("--wait", "-w", help="Follow the run to its end; exit 1 unless it succeeds")]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Run tasks with `cache: true` instead of reusing earlier outputs")
]
TimeoutOpt = Annotated[float | None, typer.Option(help="With --wait: give up after this many seconds (exit 1)")]


# -- plumbing -------------------------------------------------------------------------------------------------------
def resolve_server(server: str | None) -> str:
    from odin.api.client import DEFAULT_SERVER

    return (server or os.environ.get("ODIN_SERVER") or credentials.default_server() or DEFAULT_SERVER).rstrip("/")


def token_for(url: str) -> str:
    token = os.environ.get("ODIN_TOKEN") or credentials.token_for(url)
    if not token:
        fail(EXIT_SERVER, f"not logged in to {url}: run `odinctl login` (or set ODIN_TOKEN)")
    return token


def client(server: str | None, *, authenticated: bool = True) -> Any:
    from odin.api.client import OdinClient

    url = resolve_server(server)
    return OdinClient(url, token_for(url) if authenticated else None)


def fail(code: int, message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a client call, turning transport and API errors into a message and an exit code."""
    from odin.api.client import ApiError, ServerUnreachable

    try:
        return fn(*args, **kwargs)
    except ServerUnreachable as e:
        fail(EXIT_SERVER, str(e))
    except ApiError as e:
        report_api_error(e)


def report_api_error(e: Any) -> NoReturn:
    hint = " (log in again: `odinctl login`)" if e.status == 401 else ""
    err.print(f"[red]error:[/] {e.detail}{hint}", markup=True, highlight=False)
    if isinstance(e.extra, list):
        for p in e.extra:
            if isinstance(p, dict) and {"file", "line", "column", "message"} <= p.keys():
                err.print(f"  {p['file']}:{p['line']}:{p['column']}: {p['message']}", markup=False)
    raise typer.Exit(EXIT_SERVER if e.status in (401, 403) or e.status >= 500 else EXIT_FAILED)


def emit(obj: Any, output: Output) -> bool:
    """Print `obj` as JSON/YAML, or its identifiers (`-o name`), when asked; False means the caller prints its human
    form (`table` or `wide`)."""
    if output.human:
        return False
    if output == Output.NAME:
        from odin.cli.render import names

        sys.stdout.writelines(name + "\n" for name in names(obj))
        return True
    import msgspec

    data = msgspec.to_builtins(obj)
    if output == Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return True


# -- session --------------------------------------------------------------------------------------------------------
@app.command()
def login(
    server: ServerOpt = None,
    username: Annotated[str, typer.Option("--username", "-u", help="User name")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    token_stdin: Annotated[bool, typer.Option(help="Store an API token read from standard input instead")] = False,
) -> None:
    """Log in and keep the token in ~/.config/odin/credentials.json (mode 0600)."""
    url = resolve_server(server)
    if token_stdin:
        from odin.api.client import OdinClient

        token = sys.stdin.readline().strip()
        with OdinClient(url, token) as c:
            me = call(c.whoami)
        credentials.store_token(url, token, me.username, None)
        out.print(f"stored the API token for {url}: {me.username} ({me.role})")
        return
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {username}: ")
    with client(url, authenticated=False) as c:
        answer = call(c.login, username, password)
    credentials.store_token(url, answer.access_token, username, answer.expires_in)
    out.print(f"logged in to {url} as {username} ({answer.role})")


@app.command()
def logout(
    server: ServerOpt = None,
    everywhere: Annotated[bool, typer.Option(help="End every session of yours on the server, on every device")] = False,
) -> None:
    """End this login session on the server and forget its token (an API token is only forgotten)."""
    url = resolve_server(server)
    token = credentials.token_for(url)
    if token is not None and not token.startswith("odin_"):
        from odin.api.client import ApiError, OdinClient, ServerUnreachable

        try:
            with OdinClient(url, token) as c:
                c.logout(everywhere=everywhere)
        except ServerUnreachable as e:
            err.print(f"[yellow]warning:[/] {e}; the session ends when it expires", markup=True, highlight=False)
        except ApiError as e:
            if e.status != 401:  # 401: the session had already ended
                err.print(f"[yellow]warning:[/] {e.detail}", markup=True, highlight=False)
    out.print(f"logged out of {url}" if credentials.forget(url) else f"was not logged in to {url}")


@app.command()
def whoami(server: ServerOpt = None, output: OutputOpt = Output.TABLE) -> None:
    """Who the current token authenticates as."""
    with client(server) as c:
        me = call(c.whoami)
    if not emit(me, output):
        expiry = f", expires {me.expires_at.astimezone():%Y-%m-%d %H:%M}" if me.expires_at else ""
        out.print(f"{me.username} ({me.role}) on {resolve_server(server)}, {me.token_kind} token{expiry}")


# -- pipelines and commits --------------------------------------------------------------------------------------------
@app.command()
def validate(
    paths: Annotated[list[str], typer.Argument(help="main.yml files, pipeline directories or a repository")],
    output: OutputOpt = Output.TABLE,
    remote: Annotated[
        bool, typer.Option(help="Validate with the server (POST /v1/validate) instead of locally")
    ] = False,
    server: ServerOpt = None,
) -> None:
    """Validate pipelines (offline by default). Exit 0 when valid, 1 on problems: usable as a pre-commit hook.
    `-o name` prints the files with problems."""
    if not remote:
        from odin.schema.cli import validate_main

        raise typer.Exit(validate_main(paths, output=output.value))
    import msgspec

    ok = True
    results = []
    with client(server) as c:
        for raw in paths:
            path = Path(raw)
            file = path / "main.yml" if path.is_dir() else path
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as e:
                fail(EXIT_USAGE, f"cannot read {file}: {e.strerror}")
            answer = call(c.validate, text, str(file))
            ok = ok and answer.valid
            results.append({"file": str(file), "ok": answer.valid, "problems": msgspec.to_builtins(answer.problems)})
            if output == Output.NAME and not answer.valid:
                sys.stdout.write(f"{file}\n")
            elif output.human:
                from odin.cli.render import problem_line

                for p in answer.problems:  # warnings included, as `warning:` lines; only errors fail
                    out.print(problem_line(p), markup=False)
    if output in (Output.JSON, Output.YAML):
        emit({"pipelines": results}, output)
    raise typer.Exit(0 if ok else EXIT_FAILED)


@app.command()
def pipelines(
    name: Annotated[str | None, typer.Argument(help="A pipeline: show its DAG")] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", "-r", help="Branch, tag or commit (default: followed branch)")
    ] = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """The pipelines at a ref, or one pipeline's DAG, parameters and problems."""
    from odin.cli.render import pipeline_table, pipelines_table, problem_line, styled

    with client(server) as c:
        if name is None:
            listing = call(c.pipelines, ref)
            if not emit(listing, output):
                out.print(f"[dim]{listing.ref} = {listing.sha[:12]}[/]")
                out.print(pipelines_table(listing.items))
            raise typer.Exit(0 if all(p.valid for p in listing.items) else EXIT_FAILED)
        detail = call(c.pipeline, name, ref)
    if not emit(detail, output):
        out.print(
            f"[bold]{detail.name}[/] ({detail.title or '-'}) at {detail.ref} = {detail.sha[:12]}  "
            + styled("valid" if detail.valid else "invalid")
        )
        for p in detail.params:
            default = "required" if p.required else f"default {p.default}"
            out.print(f"  param {p.name}: {p.type}, {default}" + (f", one of {p.choices}" if p.choices else ""))
        out.print(pipeline_table(detail))
        for prob in detail.problems:
            out.print(problem_line(prob), markup=False)
    raise typer.Exit(0 if detail.valid else EXIT_FAILED)


@app.command()
def commits(
    sha: Annotated[str | None, typer.Argument(help="A commit (SHA or prefix >= 7): its problems and runs")] = None,
    branch: Annotated[str | None, typer.Option(help="Only this branch")] = None,
    validation: Annotated[str | None, typer.Option(help="valid, invalid, skipped, absorbed, baseline")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Commits that changed it")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 20,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Commits Odin has seen, or one commit with its validation problems and runs."""
    from odin.cli.render import commit_lines, commits_table, problem_line, runs_table

    with client(server) as c:
        if sha is None:
            page = call(c.commits, branch=branch, validation=validation, pipeline=pipeline, limit=limit)
            if not emit(page, output):
                wide = output == Output.WIDE
                out.print(commits_table(page.items, wide=wide) if page.items else "no commits recorded")
            return
        detail = call(c.commit, sha)
    if emit(detail, output):
        raise typer.Exit(EXIT_FAILED if detail.validation == "invalid" else 0)
    for line in commit_lines(detail):
        out.print(line)
    for p in detail.problems:
        out.print(f"  {problem_line(p)}", markup=False)
    out.print(runs_table(detail.runs, wide=output == Output.WIDE) if detail.runs else "[dim]no runs[/]")
    raise typer.Exit(EXIT_FAILED if detail.validation == "invalid" else 0)


# -- nodes and GPUs (Midgard) ----------------------------------------------------------------------------------------
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Redraw every --interval seconds until Ctrl-C")]
IntervalOpt = Annotated[float, typer.Option(min=0.2, help="With --watch: seconds between refreshes")]


def show_repeatedly(
    fetch: Callable[[], Any], render: Callable[[Any], Any], output: Output, *, watch: bool, interval: float
) -> None:
    """Print once, or with --watch redraw in place (a terminal) or print again (a pipe, -o json|yaml) until Ctrl-C."""
    import time

    from rich.live import Live

    if not watch:
        data = call(fetch)
        if not emit(data, output):
            out.print(render(data))
        return
    try:
        if not output.human or not out.is_terminal:
            while True:
                data = call(fetch)
                if not emit(data, output):
                    out.print(render(data))
                sys.stdout.flush()
                time.sleep(interval)
        with Live(render(call(fetch)), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(call(fetch)), refresh=True)
    except KeyboardInterrupt:
        return


@app.command()
def nodes(
    node: Annotated[str | None, typer.Argument(help="Only this node")] = None,
    watch: WatchOpt = False,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Every node of the cluster: reachable or not (with the age of its last reading), GPUs free, CPU, memory."""
    from odin.cli.gpu_render import nodes_table

    with client(server) as c:
        show_repeatedly(lambda: c.nodes(node), nodes_table, output, watch=watch, interval=interval)


@app.command()
def gpus(
    free: Annotated[bool, typer.Option("--free", help="Only free GPUs")] = False,
    node: Annotated[str | None, typer.Option("--node", "-n", help="Only this node")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only models containing this, e.g. H100")] = None,
    run: Annotated[str | None, typer.Option("--run", "-r", help="Only GPUs held by this run")] = None,
    watch: WatchOpt = False,
    interval: IntervalOpt = 2.0,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Every GPU of the cluster, nvidia-smi style: free or used, memory, utilisation, temperature, and the
    run/task/commit holding it."""
    from odin.cli.gpu_render import gpus_table

    with client(server) as c:
        show_repeatedly(
            lambda: c.gpus(free=True if free else None, node=node, model=model, run=run),
            gpus_table,
            output,
            watch=watch,
            interval=interval,
        )


# -- runs -------------------------------------------------------------------------------------------------------------
@app.command()
def runs(
    commit: Annotated[str | None, typer.Option("--commit", "-c", help="Commit SHA or prefix (>= 7)")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Pipeline name")] = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="Run status; repeatable")] = None,
    branch: Annotated[str | None, typer.Option(help="Branch")] = None,
    trigger: Annotated[list[str] | None, typer.Option(help="poll, webhook, manual, rerun, api; repeatable")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs")] = 50,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List runs, newest first; filter by commit to see what a commit started (and, when it started nothing, why).

    Finding nothing is not an error: exit 0, whatever the reason printed."""
    from odin.cli.render import runs_table

    with client(server) as c:
        page = call(
            c.runs, commit=commit, pipeline=pipeline, status=status, branch=branch, trigger=trigger, limit=limit
        )
        if emit(page, output):
            return
        if not page.items:
            for line in _why_no_runs(c, commit):
                err.print(line, markup=False, highlight=False)
            return
    out.print(runs_table(page.items, wide=output == Output.WIDE))


def _why_no_runs(c: Any, commit: str | None) -> list[str]:
    """What a person needs when a commit started nothing: that Odin never saw it, or its validation verdict."""
    from odin.api.client import ApiError
    from odin.cli.render import no_runs_lines

    if commit is None:
        return ["no runs"]
    try:
        detail = c.commit(commit)
    except ApiError as e:
        if e.status != 404:
            report_api_error(e)
        return [
            f"no runs: Odin has not recorded commit {commit} (not fetched yet, or not on a followed branch; "
            "`odinctl commits` lists the commits it has seen)"
        ]
    return no_runs_lines(detail)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """One run: its commit, parameters, every task's state, what it produced and what it used of its GPUs (with
    the IDLE GPU flag). Exit 1 when the run failed."""
    from odin.cli.render import dag_table, gpu_usage_table, outputs_table, run_header

    with client(server) as c:
        run = call(c.run, run_id)
    if not emit(run, output):
        for line in run_header(run):
            out.print(line)
        out.print(dag_table(run))
        produced = outputs_table(run)
        if produced is not None:
            out.print(produced)
        used = gpu_usage_table(run)
        if used is not None:
            out.print(used)
    if run.status in ("failed", "error", "cancelled", "skipped"):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    task: Annotated[str, typer.Argument(help="Task name")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the attempt ends")] = False,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines")] = None,
    attempt: Annotated[int | None, typer.Option(help="This attempt (default: the latest)")] = None,
    server: ServerOpt = None,
) -> None:
    """A task's log."""
    with client(server) as c:
        if follow:

            def stream() -> None:
                for line in c.follow_logs(run_id, task, tail=tail, attempt=attempt):
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()

            call(stream)
        else:
            sys.stdout.write(call(c.logs, run_id, task, tail=tail, attempt=attempt))


@app.command()
def events(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task; adds platform events")] = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """A run's events (state changes), oldest first; with --task, also the platform's (Kubernetes) events."""
    from odin.cli.render import events_table

    with client(server) as c:
        if task is None:
            page = call(c.events, run_id)
            if not emit(page, output):
                out.print(events_table(page.items))
            return
        found = call(c.task_events, run_id, task)
    if emit(found, output):
        return
    out.print(events_table(found.events))
    for e in found.platform:
        line = f"{e.get('time', '-')} {e.get('type', '')} {e.get('reason', '')} {e.get('object', '')}: "
        out.print(line + str(e.get("message", "")), markup=False)


def _follow(server: str | None, run_id: str, output: Output, timeout: float | None) -> NoReturn:
    """Watch a run to its end; exit 0 if it succeeded, 1 otherwise."""
    import asyncio

    from rich.console import Console

    from odin.api.client import ApiError, ServerUnreachable
    from odin.cli.render import styled
    from odin.cli.watch import watch_run

    url = resolve_server(server)
    console = Console(highlight=False, stderr=not output.human)
    try:
        final = asyncio.run(
            watch_run(
                url,
                token_for(url),
                run_id,
                console=console,
                live=console.is_terminal and output.human,
                timeout=timeout,
            )
        )
    except TimeoutError as e:
        fail(EXIT_FAILED, str(e))
    except ServerUnreachable as e:
        fail(EXIT_SERVER, str(e))
    except ApiError as e:
        report_api_error(e)
    except KeyboardInterrupt:
        err.print(f"stopped watching; the run goes on (odinctl cancel {run_id} stops it)")
        raise typer.Exit(130) from None
    if not emit(final, output):
        out.print(f"run [bold]{final.id}[/]: {styled(final.status)}  {final.message or ''}")
    if final.status == "succeeded":
        raise typer.Exit(0)
    _report_failure(server, final, console if output.human else err)
    raise typer.Exit(EXIT_FAILED)


def _report_failure(server: str | None, run: Any, console: Console) -> None:
    """The failing tasks' last log lines and the command for the rest (on stderr when stdout carries -o json|yaml)."""
    from odin.api.client import ApiError, ServerUnreachable
    from odin.cli.failure import FAILED, LAST_LINES, FailedTask, failure_report

    failed = [
        FailedTask(t.name, t.attempt, t.exit_code, t.message or t.reason) for t in run.tasks if t.status in FAILED
    ]
    if not failed:
        return
    with client(server) as c:

        def read_log(task: str) -> str | None:
            try:
                return str(c.logs(run.id, task, tail=LAST_LINES))
            except (ApiError, ServerUnreachable):
                return None

        for line in failure_report(failed, read_log, lambda task: f"odinctl logs {run.id} {task}"):
            console.print(line)


@app.command()
def watch(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    timeout: TimeoutOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Follow a run live (its DAG's task states) until it ends; exit 0 if it succeeded, 1 otherwise."""
    _follow(server, run_id, output, timeout)


@app.command("run")
def run_pipeline(
    pipeline: Annotated[str, typer.Argument(help="Pipeline (its directory in the repository)")],
    ref: Annotated[
        str | None, typer.Option("--ref", "-r", help="Branch, tag or commit (default: followed branch)")
    ] = None,
    param: ParamOpt = None,
    no_cache: NoCacheOpt = False,
    repo: Annotated[str | None, typer.Option(help="Followed repository (default: ODIN_REPO's)")] = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Start a pipeline at a ref with parameters. With --wait, follow it and exit with its outcome."""
    params = parse_params(param, err)
    with client(server) as c:
        started = call(c.start, pipeline, ref=ref, params=params, no_cache=no_cache, repository=repo)
    if wait:
        if output.human:
            out.print(f"started [bold]{started.id}[/] at {(started.commit_sha or '-')[:12]}")
        _follow(server, started.id, output, timeout)
    if not emit(started, output):
        out.print(f"started [bold]{started.id}[/] at {(started.commit_sha or '-')[:12]}  (odinctl watch {started.id})")


@app.command()
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to run again")],
    failed_only: Annotated[bool, typer.Option("--failed-only", help="Reuse the tasks that succeeded")] = False,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Rerun this task and its descendants")] = None,
    latest: Annotated[bool, typer.Option(help="At the branch's newest commit instead of the run's own")] = False,
    param: ParamOpt = None,
    no_cache: NoCacheOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Run a finished run again: its commit and parameters by default."""
    params = parse_params(param, err) or None
    with client(server) as c:
        started = call(
            c.rerun, run_id, latest=latest, failed_only=failed_only, task=task, params=params, no_cache=no_cache
        )
    if wait:
        if output.human:
            out.print(f"started [bold]{started.id}[/] (rerun of {run_id})")
        _follow(server, started.id, output, timeout)
    if not emit(started, output):
        out.print(f"started [bold]{started.id}[/] (rerun of {run_id})  (odinctl watch {started.id})")


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Stop a run: running tasks are killed, pending ones skipped."""
    with client(server) as c:
        run = call(c.cancel, run_id)
    if not emit(run, output):
        out.print(f"cancelling [bold]{run.id}[/] (was {run.status})")


# -- what runs produced -----------------------------------------------------------------------------------------------
@app.command()
def artifacts(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Every task's artifacts of a run: name, type, size, digest (`odinctl get RUN TASK/NAME` downloads one)."""
    from odin.cli.render import artifacts_table

    with client(server) as c:
        listed = call(c.artifacts, run_id)
    if emit(listed, output):
        return
    if not listed.items:
        err.print(f"run {run_id} recorded no artifacts")
        return
    out.print(artifacts_table(listed.items))


@app.command("get")
def get_artifact(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    what: Annotated[str, typer.Argument(help="TASK/NAME, or TASK/NAME/PATH for one file of a directory artifact")],
    to: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write ('-': standard output). Default: NAME, or NAME.tar"),
    ] = None,
    server: ServerOpt = None,
) -> None:
    """Download an artifact, streamed to a file: a directory comes as a tar. A partial file left by an interrupted
    download is continued (HTTP Range), and a whole file is checked against the artifact's digest."""
    from odin.api.client.http import DigestMismatch

    task, _, rest = what.partition("/")
    name, _, inner = rest.partition("/")
    if not task or not name:
        fail(EXIT_USAGE, f"expected TASK/NAME (e.g. train/model), not {what!r}")
    with client(server) as c:
        listed = call(c.artifacts, run_id)
        item = next((a for a in listed.items if a.task == task and a.name == name), None)
        if item is None:
            have = ", ".join(f"{a.task}/{a.name}" for a in listed.items) or "none"
            fail(EXIT_FAILED, f"run {run_id} has no artifact {task}/{name} (it has: {have})")
        if inner and item.type != "directory":
            fail(EXIT_USAGE, f"{task}/{name} is a {item.type}; only a directory artifact has files to pick from")
        whole_file = item.type == "file" and not inner
        default = inner.rsplit("/", 1)[-1] if inner else name if whole_file else f"{name}.tar"
        if to == "-":
            _to_stdout(c, run_id, task, name, inner or None)
            return
        dest = Path(to or default)
        try:
            done = call(
                c.download,
                run_id,
                task,
                name,
                dest,
                file=inner or None,
                etag=f'"{item.digest}"' if whole_file else None,
                digest=item.digest if whole_file else None,
            )
        except DigestMismatch as e:
            fail(EXIT_FAILED, f"{e}; delete it and run the command again")
        except OSError as e:
            fail(EXIT_FAILED, f"cannot write {dest}: {e.strerror}")
    from odin.cli.render import size

    how = f"resumed, {size(done.received)} received" if done.resumed else "downloaded"
    err.print(f"{dest}: {size(done.size)} ({how})" + (f", {item.digest}" if whole_file else ""))


def _to_stdout(c: Any, run_id: str, task: str, name: str, inner: str | None) -> None:
    """Stream an artifact to standard output (for a pipe: `odinctl get RUN train/data -o - | tar -x`)."""

    def stream() -> None:
        for chunk in c.iter_artifact(run_id, task, name, file=inner):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    call(stream)


class ResultsOutput(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"


@app.command()
def results(
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Pipeline (its directory)")],
    since: Annotated[str | None, typer.Option(help="30d, 12h, 2w, 90m, or a time like 2024-05-01T12:00:00Z")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many runs, newest first")] = 50,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every run since --since, streamed page by page (ignores --limit)")
    ] = False,
    server: ServerOpt = None,
    output: Annotated[ResultsOutput, typer.Option("--output", "-o", help="table, json, yaml or csv")] = (
        ResultsOutput.TABLE
    ),
) -> None:
    """Results per commit of a pipeline's runs, newest first: one column per result (did this commit improve
    accuracy?)."""
    # The same code as the short path odin.cli.entry takes for a well-formed command line (standard library only).
    from odin.cli.results import Options, run

    code = run(Options(pipeline, since, limit, all_runs, server, output.value))
    if code:
        raise typer.Exit(code)


# -- users ------------------------------------------------------------------------------------------------------------
@users_app.command("list")
def users_list(server: ServerOpt = None, output: OutputOpt = Output.TABLE) -> None:
    """Every user."""
    from odin.cli.render import users_table

    with client(server) as c:
        found = call(c.users)
    if not emit(found, output):
        out.print(users_table(found.items))


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option(help="admin, member or viewer")] = "viewer",
    email: Annotated[str | None, typer.Option(help="Author e-mail of their commits made through Odin")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create a user."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {username}: ")
    with client(server) as c:
        user = call(c.create_user, username, password, role=role, email=email)
    if not emit(user, output):
        out.print(f"created {user.role} {user.username!r}")


@users_app.command("update")
def users_update(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str | None, typer.Option(help="admin, member or viewer")] = None,
    disable: Annotated[bool | None, typer.Option("--disable/--enable", help="Disable (or enable) the user")] = None,
    email: Annotated[str | None, typer.Option(help="Author e-mail")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Set a new password read from standard input")] = False,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Change a user's role, e-mail or password, or disable them."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with client(server) as c:
        user = call(c.update_user, username, role=role, disabled=disable, password=password, email=email)
    if not emit(user, output):
        out.print(f"{user.username}: {user.role}{' (disabled)' if user.disabled else ''}")


# -- repositories ---------------------------------------------------------------------------------------------------
BranchOpt = Annotated[
    list[str] | None,
    typer.Option("--branch", "-b", metavar="PATTERN", help="Branch or fnmatch pattern (release/*); repeatable"),
]
TagOpt = Annotated[
    list[str] | None,
    typer.Option("--tag", "-t", metavar="PATTERN",
                 help="Tag or fnmatch pattern (v*): a new or moved tag runs its commit's pipelines; repeatable"),
]  # fmt: skip
PullRequestsOpt = Annotated[
    str | None,
    typer.Option("--pull-requests", metavar="off|same-repo|all",
                 help="Run pull requests' pipelines: off, same-repo (head in this repository) or all (forks too, "
                 "never with secrets)"),
]  # fmt: skip
ApproverOpt = Annotated[
    list[str] | None,
    typer.Option("--pr-approver", metavar="LOGIN",
                 help="A provider login whose /retest comments are obeyed; repeatable (update: '' clears)"),
]  # fmt: skip
DefaultBranchOpt = Annotated[
    str | None, typer.Option(help="The branch manual runs and schedules use (default: the first without wildcards)")
]
PollOpt = Annotated[float | None, typer.Option(help="Seconds between fetches")]
PolicyOpt = Annotated[str | None, typer.Option(help="latest (the tip of a push) or each (every commit)")]
NamespaceOpt = Annotated[str | None, typer.Option(help="Kubernetes namespace of its runs")]
CredentialsOpt = Annotated[
    str | None, typer.Option(help="Git credentials by reference: env:NAME or file:/path (a token, or an SSH key)")
]
WebhookSecretOpt = Annotated[str | None, typer.Option(help="Webhook secret by reference: env:NAME or file:/path")]
KeepRunsOpt = Annotated[
    int | None, typer.Option(min=0, help="Artifact retention: the newest N finished runs keep their artifacts (0: all)")
]
KeepDaysOpt = Annotated[
    float | None, typer.Option(min=0, help="Artifact retention: runs of the last D days keep their artifacts (0: all)")
]


@repos_app.command("add")
def repos_add(
    url: Annotated[str, typer.Argument(help="Remote URL (https, ssh, git@host:org/repo, or a path)")],
    name: Annotated[str, typer.Option(help="Name of the repository in Odin")],
    branch: BranchOpt = None,
    default_branch: DefaultBranchOpt = None,
    tag: TagOpt = None,
    pull_requests: PullRequestsOpt = None,
    pr_approver: ApproverOpt = None,
    poll_interval: PollOpt = None,
    run_policy: PolicyOpt = None,
    namespace: NamespaceOpt = None,
    credentials_ref: CredentialsOpt = None,
    webhook_secret_ref: WebhookSecretOpt = None,
    keep_runs: KeepRunsOpt = None,
    keep_days: KeepDaysOpt = None,
    disabled: Annotated[bool, typer.Option(help="Register it without following it yet")] = False,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Follow a repository: its branches (patterns too), credentials and webhook secret by reference."""
    fields: dict[str, Any] = {"branches": branch or None, "default_branch": default_branch, "tags": tag or None}
    fields.update(poll_interval=poll_interval, run_policy=run_policy, namespace=namespace)
    fields.update(credentials_ref=credentials_ref, webhook_secret_ref=webhook_secret_ref, enabled=not disabled)
    fields.update(keep_runs=keep_runs or None, keep_days=keep_days or None)
    fields.update(pull_requests=pull_requests, pr_approvers=pr_approver or None)
    with client(server) as c:
        repo = call(c.add_repo, name, url, **fields)
    if not emit(repo, output):
        out.print(f"following {repo.name}: {repo.url} ({', '.join(repo.branches)})", markup=False)


@repos_app.command("list")
def repos_list(
    removed: Annotated[bool, typer.Option(help="Include removed repositories")] = False,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Every followed repository (and the removed ones with --removed)."""
    from odin.cli.render import repos_table

    with client(server) as c:
        found = call(c.repos, removed=removed)
    if not emit(found, output):
        out.print(repos_table(found.items, wide=output == Output.WIDE))


@repos_app.command("show")
def repos_show(
    name: Annotated[str, typer.Argument(help="Repository name")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """One repository: its settings and conditions (why it is not ready)."""
    from odin.cli.render import repo_detail

    with client(server) as c:
        repo = call(c.repo, name)
    if not emit(repo, output):
        out.print(repo_detail(repo), markup=False, highlight=False)


@repos_app.command("update")
def repos_update(
    name: Annotated[str, typer.Argument(help="Repository name")],
    url: Annotated[str | None, typer.Option(help="New remote URL")] = None,
    branch: BranchOpt = None,
    default_branch: DefaultBranchOpt = None,
    tag: TagOpt = None,
    pull_requests: PullRequestsOpt = None,
    pr_approver: ApproverOpt = None,
    poll_interval: PollOpt = None,
    run_policy: PolicyOpt = None,
    namespace: NamespaceOpt = None,
    credentials_ref: CredentialsOpt = None,
    webhook_secret_ref: WebhookSecretOpt = None,
    keep_runs: KeepRunsOpt = None,
    keep_days: KeepDaysOpt = None,
    disable: Annotated[bool | None, typer.Option("--disable/--enable", help="Stop (or resume) following it")] = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Change a repository's settings; --branch and --tag replace its patterns (--tag '' follows no tag), and
    --pr-approver the logins ('' for none). An empty reference ('') clears it."""
    given: dict[str, Any] = {"url": url, "branches": branch or None, "default_branch": default_branch}
    given.update(poll_interval=poll_interval, run_policy=run_policy, namespace=namespace)
    given.update(credentials_ref=credentials_ref, webhook_secret_ref=webhook_secret_ref)
    given.update(enabled=None if disable is None else not disable)
    changes = {k: (None if v == "" else v) for k, v in given.items() if v is not None}
    for field, value in (("keep_runs", keep_runs), ("keep_days", keep_days)):
        if value is not None:
            changes[field] = value or None  # 0: keep every run's artifacts again
    if tag is not None:
        changes["tags"] = [t for t in tag if t]
    if pull_requests is not None:
        changes["pull_requests"] = pull_requests
    if pr_approver is not None:
        changes["pr_approvers"] = [login for login in pr_approver if login]
    if not changes:
        fail(EXIT_USAGE, "nothing to change: give at least one option (odinctl repos update --help)")
    with client(server) as c:
        repo = call(c.update_repo, name, **changes)
    if not emit(repo, output):
        out.print(f"{repo.name}: {repo.url} ({', '.join(repo.branches)}){'' if repo.enabled else ' (disabled)'}",
                  markup=False)  # fmt: skip


@repos_app.command("remove")
def repos_remove(
    name: Annotated[str, typer.Argument(help="Repository name")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Stop following a repository for good; its runs, commits and events stay readable."""
    with client(server) as c:
        repo = call(c.remove_repo, name)
    if not emit(repo, output):
        out.print(f"removed {repo.name}; its history stays (odinctl repos list --removed)", markup=False)


# -- API tokens -------------------------------------------------------------------------------------------------------
@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. ci")],
    role: Annotated[str | None, typer.Option(help="admin, member or viewer (at most yours)")] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after this many days (default: never)")] = None,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create an API token. It is printed once: store it as a CI secret (ODIN_TOKEN)."""
    with client(server) as c:
        created = call(c.create_token, name, role=role, expires_in_days=expires_in_days)
    if emit(created, output):
        return
    err.print(f"API token {created.id} ({created.name}, {created.role}); shown once, keep it secret:")
    sys.stdout.write(created.token + "\n")


@tokens_app.command("list")
def tokens_list(
    all_users: Annotated[bool, typer.Option("--all", help="Every user's tokens (admin)")] = False,
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Your API tokens (never the tokens themselves)."""
    from odin.cli.render import tokens_table

    with client(server) as c:
        found = call(c.tokens, all_users=all_users)
    if not emit(found, output):
        out.print(tokens_table(found.items) if found.items else "no API tokens")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (from `odinctl tokens list`)")],
    server: ServerOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Revoke an API token; it stops working at once."""
    with client(server) as c:
        revoked = call(c.revoke_token, token_id)
    if not emit(revoked, output):
        out.print(f"revoked API token {revoked.id} ({revoked.name})")


def main() -> None:
    from odin.cli.help_style import run

    run(app)


if __name__ == "__main__":
    main()
