"""Human output of `odinctl`: tables and the DAG view. Scripts use `-o json|yaml`, which bypasses all of this."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from odin.api.schemas import (
    ApiTokenOut,
    ArtifactItem,
    CommitDetail,
    CommitSummary,
    EventOut,
    GpuUsageOut,
    PipelineDetail,
    PipelineSummary,
    ProblemOut,
    RunDetail,
    RunSummary,
    ScheduleOut,
    TaskOut,
    UserOut,
)
from odin.api.schemas.repos import RepoOut

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "error": "red",
    "invalid": "red",
    "running": "cyan",
    "starting": "cyan",
    "pending": "dim",
    "queued": "magenta",
    "retrying": "yellow",
    "skipped": "yellow",
    "cancelled": "yellow",
    "valid": "green",
}

MARKS = {
    "succeeded": "✓",
    "failed": "✗",
    "error": "✗",
    "running": "▶",
    "starting": "…",
    "pending": "·",
    "queued": "⧗",
    "retrying": "↻",
    "skipped": "-",
    "cancelled": "⊘",
}


def problem_line(p: ProblemOut) -> str:
    """`file:line:col: message`, or `file:line:col: warning: message` for a warning (as `odinctl validate` prints
    offline): plain text, printed with `markup=False`."""
    prefix = "warning: " if p.severity == "warning" else ""
    return f"{p.file}:{p.line}:{p.column}: {prefix}{p.message}"


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def when(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    seconds = int(((end or datetime.now(UTC)) - start).total_seconds())
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


# Identifiers a person copies into the next command: never wrapped, whatever the terminal's width (the other
# columns give way; a narrow terminal scrolls rather than split an id over two lines).
IDENTIFIER_COLUMNS = frozenset({"RUN", "COMMIT", "ID", "PARENT"})


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, highlight=False)
    for col in columns:
        if col in IDENTIFIER_COLUMNS:
            table.add_column(col, no_wrap=True, overflow="ignore")
        else:
            table.add_column(col, overflow="fold")
    return table


def names(obj: Any) -> list[str]:
    """`-o name`: one identifier per object of a listing (an object with `items`) or of one object -- the id of a
    run, event or token, the SHA of a commit, the name of a pipeline, user or node, `node/index` of a GPU."""
    items = obj.items if hasattr(obj, "items") and isinstance(obj.items, list) else [obj]
    return [_name(item) for item in items]


def _name(item: Any) -> str:
    if hasattr(item, "node") and hasattr(item, "index"):
        return f"{item.node}/{item.index}"
    for attr in ("id", "sha", "username", "name", "node"):
        value = getattr(item, attr, None)
        if value is not None:
            return str(value)
    return str(item)


def runs_table(runs: Iterable[RunSummary], *, wide: bool = False) -> Table:
    """Runs, one a row; `wide` adds the branch, the pull request and the message, and shows commits whole."""
    extra = ("BRANCH", "PR", "MESSAGE") if wide else ()
    table = _table("RUN", "PIPELINE", "COMMIT", "TRIGGER", "BY", "STATUS", "CREATED", "DURATION", *extra)
    for r in runs:
        more = (r.branch or "-", pull_request_label(r), Text(r.message or "")) if wide else ()
        table.add_row(
            r.id,
            r.pipeline,
            (r.commit_sha or "-") if wide else (r.commit_sha or "-")[:12],
            r.trigger,
            r.triggered_by or "-",
            styled(r.status),
            when(r.created_at),
            duration(r.started_at, r.finished_at),
            *more,
        )
    return table


def pull_request_label(run: RunSummary) -> str:
    """The pull request a run ran for as its provider writes it: `#7`, GitLab's merge request `!7`; `-` for none."""
    if run.pull_request is None:
        return "-"
    return f"{'!' if run.pr_provider == 'gitlab' else '#'}{run.pull_request}"


def depths(spec_tasks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each task's depth in the DAG: 0 for tasks without dependencies, else 1 + the deepest dependency."""
    deps = {str(t["name"]): [str(d) for d in t.get("depends") or ()] for t in spec_tasks}
    out: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in out:
            return out[name]
        if name in seen:  # a cycle cannot be valid; do not recurse forever on a corrupt spec
            return 0
        value = 1 + max((depth(d, seen | {name}) for d in deps.get(name, ()) if d in deps), default=-1)
        out[name] = value
        return value

    for name in deps:
        depth(name)
    return out


def dag_table(run: RunDetail, tasks: Mapping[str, TaskOut] | None = None) -> Table:
    """The run's tasks in pipeline order, indented by depth, with their state: the view `watch` keeps live."""
    spec_tasks = list(run.spec.get("tasks") or [])
    level = depths(spec_tasks)
    deps = {str(t["name"]): list(t.get("depends") or []) for t in spec_tasks}
    current = tasks if tasks is not None else {t.name: t for t in run.tasks}
    table = _table("TASK", "STATUS", "ATTEMPT", "EXIT", "TIME", "AFTER", "MESSAGE")
    names = [str(t["name"]) for t in spec_tasks] or list(current)
    for name in names:
        t = current.get(name)
        status = t.status if t else "pending"
        label = Text("  " * level.get(name, 0) + f"{MARKS.get(status, '?')} {name}")
        table.add_row(
            label,
            styled(status),
            str(t.attempt) if t and t.attempt else "-",
            "-" if t is None or t.exit_code is None else str(t.exit_code),
            duration(t.started_at, t.finished_at) if t else "-",
            ", ".join(deps.get(name, [])) or "-",
            Text(("IDLE GPU  " if t and t.gpu_idle else "") + ((t.message or t.reason or "") if t else "")),
        )
    return table


def gpu_usage_line(u: GpuUsageOut) -> str:
    """One attempt's GPU usage for people, on one line: how many GPUs of which model, GPU-seconds, utilisation
    mean and peak, peak memory (e.g. `2x H100 80GB HBM3  GPU-s 1234  util mean 73% peak 99%  mem peak 61.2 GiB`,
    printed with a multiplication sign and a middle dot)."""
    models = sorted({g.model.removeprefix("NVIDIA ") for g in u.gpus})
    parts = [f"{len(u.gpus)}× {', '.join(models) or 'GPU'}", f"GPU·s {u.gpu_seconds:.0f}"]  # noqa: RUF001
    if u.utilization_mean_percent is not None:
        parts.append(f"util mean {u.utilization_mean_percent:.0f}% peak {u.utilization_peak_percent}%")
    if u.memory_peak_bytes is not None:
        parts.append(f"mem peak {size(u.memory_peak_bytes)}")
    return "  ".join(parts)


def gpu_usage_table(run: RunDetail) -> Table | None:
    """What each task's latest sampled attempt used of its GPUs, with the idle flag. None when no task was sampled."""
    table = _table("TASK", "ATTEMPT", "GPU USAGE", "FLAG")
    rows = 0
    for t in run.tasks:
        u = t.gpu_usage
        if u is None:
            continue
        flag = ""
        if u.idle is not None:
            flag = f"IDLE GPU since {when(u.idle.since)}" + ("" if u.idle.active else " (busy again)")
        line = gpu_usage_line(u) + ("  (sampling)" if u.running else "")
        table.add_row(t.name, str(u.attempt), Text(line), Text(flag, style="bold yellow" if flag else ""))
        rows += 1
    return table if rows else None


def outputs_table(run: RunDetail) -> Table | None:
    """What the run's tasks produced: each result's value, each artifact's size, digest and location (issue 11).
    None when no task recorded any output."""
    table = _table("TASK", "OUTPUT", "VALUE / SIZE", "DIGEST", "LOCATION")
    rows = 0
    for t in run.tasks:
        for name, value in t.results.items():
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            table.add_row(t.name, f"results.{name}", Text(text if len(text) <= 60 else text[:59] + "…"), "", "")
            rows += 1
        for name, a in t.artifacts.items():
            digest = a.digest.split(":", 1)[-1][:12]
            table.add_row(t.name, f"artifacts.{name}", f"{a.type} {size(a.size)}", digest, Text(a.location))
            rows += 1
    return table if rows else None


def artifacts_table(items: Iterable[ArtifactItem]) -> Table:
    """A run's artifacts: where each came from, what it is, and the digest that names its content."""
    table = _table("TASK", "ARTIFACT", "TYPE", "SIZE", "DIGEST")
    for a in items:
        table.add_row(a.task, a.name, a.type, size(a.size), a.digest.split(":", 1)[-1][:12])
    return table


def size(n: int) -> str:
    """Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def run_header(run: RunDetail) -> list[str]:
    lines = [
        f"[bold]{run.id}[/]  {styled(run.status)}  {run.message or ''}",
        f"pipeline {run.pipeline}  commit {run.commit_sha or '-'}  branch {run.branch or '-'}"
        + (f"  pull request {pull_request_label(run)} on {run.pr_provider or '-'}" if run.pull_request else ""),
        f"trigger {run.trigger}  by {run.triggered_by or '-'}  created {when(run.created_at)}"
        + (f"  rerun of {run.parent_run}" if run.parent_run else ""),
    ]
    if run.params:
        lines.append("params " + " ".join(f"{k}={v}" for k, v in sorted(run.params.items())))
    if run.no_cache:
        lines.append("[dim]started with --no-cache: tasks with `cache: true` ran without reusing earlier outputs[/]")
    for c in run.conditions:
        if c.get("type") == "Rerun":
            lines.append(f"[dim]{c.get('message')}[/]")
    return lines + tracking_lines(run)


def tracking_lines(run: RunDetail) -> list[str]:
    """Where the run and its tasks are tracked in MLflow (issue 11, item 7): links when the server knows the UI's
    URL, run ids otherwise. Nothing for a run that is not tracked."""
    if run.tracking is None:
        return []
    lines = [f"mlflow {escape(run.tracking.url or 'run ' + run.tracking.run_id)}"]
    for t in run.tasks:
        if t.tracking is not None:
            lines.append(f"  {escape(t.name)}: {escape(t.tracking.url or 'run ' + t.tracking.run_id)}")
    return lines


def commits_table(commits: Iterable[CommitSummary], *, wide: bool = False) -> Table:
    """Commits, one a row; `wide` adds the author's e-mail and the absorbing commit, and shows SHAs whole."""
    extra = ("EMAIL", "ABSORBED BY") if wide else ()
    table = _table("COMMIT", "BRANCH", "VALIDATION", "PIPELINES", "AUTHOR", "SEEN", "SUBJECT", *extra)
    for c in commits:
        more = (c.author_email, c.absorbed_by or "-") if wide else ()
        table.add_row(
            c.sha if wide else c.sha[:12],
            c.branch or "-",
            styled(c.validation) + (f" ({c.problem_count})" if c.problem_count else ""),
            ", ".join(c.pipelines_changed[:5]) + (" …" if len(c.pipelines_changed) > 5 else ""),
            c.author_name,
            when(c.seen_at),
            Text(c.subject),
            *more,
        )
    return table


def commit_lines(c: CommitDetail) -> list[str]:
    lines = [
        f"[bold]{c.sha}[/]  {styled(c.validation)}  {c.branch or ''}",
        f"author {c.author_name} <{c.author_email}>  committed {when(c.committed_at)}  seen {when(c.seen_at)}",
        f"pipelines changed: {', '.join(c.pipelines_changed) or '-'}",
    ]
    if c.absorbed_by:
        lines.append(f"absorbed by {c.absorbed_by} (its runs cover this commit)")
    return lines


def no_runs_lines(c: CommitDetail) -> list[str]:
    """Why a commit Odin recorded has no runs, in plain lines (`odinctl runs --commit`): its validation problems, the
    commit that absorbed it, or the marker that skipped it."""
    sha = c.sha[:12]
    if c.validation == "invalid":
        errors = sum(1 for p in c.problems if p.severity != "warning")
        found = f"{errors} problem" + ("s" if errors != 1 else "")
        lines = [f"no runs: commit {sha} is invalid ({found}); nothing was started:"]
        lines += [f"  {problem_line(p)}" for p in c.problems]
        return lines
    if c.validation == "absorbed" or c.absorbed_by:
        by = c.absorbed_by or "a later commit"
        return [
            f"no runs: commit {sha} was absorbed by {by} (pushed together; the runs of the newest commit cover it)",
            f"  see them: odinctl runs --commit {by}",
        ]
    if c.validation == "skipped":
        return [f"no runs: commit {sha} asked to be skipped ([skip ci] or [skip odin] in its message)"]
    if c.validation == "baseline":
        return [f"no runs: commit {sha} is where Odin started following the branch; it runs commits after it"]
    if not c.pipelines_changed:
        return [f"no runs: commit {sha} changed no pipeline"]
    return [f"no runs for commit {sha} (pipelines changed: {', '.join(c.pipelines_changed)})"]


def schedule_label(schedule: ScheduleOut) -> str:
    """`0 3 * * * (Europe/Berlin) epochs=10 [.odin.yml]`: when, with which parameters, and where it is written."""
    label = schedule.cron + ("" if schedule.timezone == "UTC" else f" ({schedule.timezone})")
    if schedule.params:
        label += " " + " ".join(f"{name}={value}" for name, value in sorted(schedule.params.items()))
    return label + (f" [{schedule.source}]" if schedule.source != "main.yml" else "")


def pipelines_table(items: Iterable[PipelineSummary]) -> Table:
    table = _table("PIPELINE", "VALID", "TASKS", "PROBLEMS", "SCHEDULE", "NEXT", "LAST")
    for p in items:
        schedule = "\n".join(schedule_label(s) for s in p.schedules)
        next_ = "\n".join(when(s.next_slot) for s in p.schedules)
        last = "\n".join(when(s.last_slot) for s in p.schedules)
        table.add_row(
            p.name,
            styled("valid" if p.valid else "invalid"),
            str(p.task_count),
            str(p.problem_count),
            schedule or "-",
            next_ or "-",
            last or "-",
        )
    return table


def pipeline_table(p: PipelineDetail) -> Table:
    level = depths([{"name": t.name, "depends": t.depends} for t in p.tasks])
    table = _table("TASK", "AFTER", "IMAGE", "TYPE", "GPUS", "RETRIES")
    for t in p.tasks:
        table.add_row(
            "  " * level.get(t.name, 0) + t.name,
            ", ".join(t.depends) or "-",
            t.image or "-",
            t.resource_type,
            str(t.num_gpus),
            str(t.retries),
        )
    return table


def events_table(events: Iterable[EventOut]) -> Table:
    table = _table("ID", "TIME", "KIND", "TASK", "DETAIL")
    for e in events:
        data = dict(e.data)
        status = data.pop("status", None)
        detail = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", [], {}))
        table.add_row(str(e.id), when(e.time), e.kind, e.task or "-", Text((f"{status} " if status else "") + detail))
    return table


def tokens_table(tokens: Iterable[ApiTokenOut]) -> Table:
    table = _table("ID", "NAME", "USER", "ROLE", "PREFIX", "ACTIVE", "CREATED", "EXPIRES", "LAST USED")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.username,
            t.role,
            t.prefix + "…",
            "[green]yes[/]" if t.active else "[red]no[/]",
            when(t.created_at),
            when(t.expires_at) if t.expires_at else "never",
            when(t.last_used_at),
        )
    return table


def users_table(users: Iterable[UserOut]) -> Table:
    table = _table("USER", "ROLE", "DISABLED", "EMAIL", "CREATED")
    for u in users:
        table.add_row(u.username, u.role, "yes" if u.disabled else "no", u.email or "-", when(u.created_at))
    return table


def repos_table(repos: Iterable[RepoOut], *, wide: bool = False) -> Table:
    """Followed repositories, one a row; `wide` adds the poll interval, run policy and the branches followed now."""
    extra = ("POLL", "POLICY", "FOLLOWING") if wide else ()
    table = _table("NAME", "URL", "BRANCHES", "ENABLED", "READY", "LAST SEEN", *extra)
    for r in repos:
        state = "removed" if r.removed_at is not None else ("yes" if r.enabled else "no")
        ready = "-" if r.ready is None else ("True" if r.ready else "False")
        more = (f"{r.poll_interval:g}s", r.run_policy, ", ".join(r.followed_branches) or "-") if wide else ()
        table.add_row(r.name, r.url, ", ".join(r.branches), state, ready, (r.last_seen_sha or "-")[:12], *more)
    return table


def repo_detail(r: RepoOut) -> str:
    """One repository as `odinctl repos show` prints it: settings, then conditions (why it is not ready)."""
    lines = [
        f"name:         {r.name} ({'from ODIN_REPO' if r.origin == 'settings' else 'registered'})",
        f"url:          {r.url}",
        f"branch:       {r.default_branch}",
        f"branches:     {', '.join(r.branches)}",
        f"following:    {', '.join(r.followed_branches) or '-'}",
        f"tags:         {', '.join(r.tags) or '-'}",
        f"pull requests: {r.pull_requests}"
        + (f" (/retest also by {', '.join(r.pr_approvers)})" if r.pr_approvers else ""),
        f"poll:         every {r.poll_interval:g}s, run policy {r.run_policy}",
        f"namespace:    {r.namespace or '-'}",
        f"retention:    {_retention(r.keep_runs, r.keep_days)}",
        f"credentials:  {r.credentials_ref or '-'}",
        f"webhook:      {r.webhook_secret_ref or '-'}",
        f"enabled:      {'removed ' + when(r.removed_at) if r.removed_at else ('yes' if r.enabled else 'no')}",
        f"last seen:    {r.last_seen_sha or '-'}",
    ]
    for c in r.conditions:
        lines.append(f"condition:    {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}")
    for branch, conditions in r.branch_conditions.items():
        for c in conditions:
            lines.append(f"  {branch}: {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}")
    return "\n".join(lines)


def _retention(keep_runs: int | None, keep_days: float | None) -> str:
    """How long a repository's runs keep their artifacts, as `odinctl repos show` says it."""
    kept = [f"newest {keep_runs} runs"] if keep_runs else []
    kept += [f"last {keep_days:g} days"] if keep_days else []
    return " or ".join(kept) + " keep their artifacts" if kept else "every run keeps its artifacts"
