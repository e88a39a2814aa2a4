"""`odinctl watch` (and `run --wait`, `rerun --wait`): follow a run until it ends, then report its outcome.

Live state comes over the WebSocket: subscribe to the run first, then read its current state over HTTP, then apply
every event that follows — subscribing first means no change can fall between the snapshot and the stream. If the
WebSocket cannot be opened or drops, the watch carries on by polling the HTTP API, so a CI job never hangs on a
proxy that does not pass WebSockets. In a terminal the DAG is redrawn in place, at least every `TICK` seconds so that
running tasks' durations count up, with the last lines of each running task's log under it (read over HTTP at most
every `TICK` seconds, for at most `LOG_TASKS` tasks); otherwise (CI logs) each task change is printed as one line.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import msgspec
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from odin.api.client import TERMINAL, ApiError, AsyncOdinClient, ConnectionLost, OdinWebSocket, ServerUnreachable
from odin.api.schemas import EventOut, RunDetail, TaskOut
from odin.cli.failure import last_lines
from odin.cli.render import MARKS, dag_table, run_header, styled

POLL_INTERVAL = 2.0
SAFETY_REFRESH = 30.0  # re-read the run this often even while events flow, in case one was lost
LIVE_SAFETY_REFRESH = 5.0  # the same for a person watching the live view: a lost event must not freeze it long
TICK = 1.0  # the live view is redrawn at least this often: durations tick, log tails move
LOG_LINES = 5  # the live view's tail of each running task's log
LOG_TASKS = 3  # at most this many running tasks' logs are read (and shown) at once

# Within one attempt a task only moves forward; a later attempt starts again from `starting`.
_RANK = {"pending": 0, "starting": 1, "running": 2, "retrying": 3}
_RANK.update(dict.fromkeys(("succeeded", "failed", "skipped", "cancelled"), 4))


class _State:
    def __init__(self, run: RunDetail) -> None:
        self.run = run
        self.tasks: dict[str, TaskOut] = {t.name: t for t in run.tasks}
        self.tails: dict[str, list[str]] = {}  # running task -> its log's last lines (live view only)

    def running(self) -> list[str]:
        return [name for name, t in self.tasks.items() if t.status == "running"][:LOG_TASKS]

    async def read_tails(self, client: AsyncOdinClient) -> None:
        """The last lines of each running task's log; a task whose log cannot be read keeps what it had."""
        tails: dict[str, list[str]] = {}
        for name in self.running():
            try:
                tails[name] = last_lines(await client.logs(self.run.id, name, tail=LOG_LINES), LOG_LINES)
            except (ApiError, ServerUnreachable):
                tails[name] = self.tails.get(name, [])
        self.tails = tails

    def reset(self, run: RunDetail) -> list[TaskOut]:
        """Take a fresh snapshot; returns the tasks whose status changed."""
        changed = [t for t in run.tasks if (old := self.tasks.get(t.name)) is None or old.status != t.status]
        self.run = run
        self.tasks = {t.name: t for t in run.tasks}
        return changed

    def apply(self, event: EventOut) -> TaskOut | None:
        """Fold an event in; returns the task when a task's status changed (or it was flagged as holding idle GPUs)."""
        if event.kind == "run.status" and "status" in event.data:
            self.run = msgspec.structs.replace(
                self.run, status=str(event.data["status"]), message=event.data.get("message", self.run.message)
            )
            return None
        if event.kind == "task.gpu_idle" and event.task in self.tasks:
            flagged = self.tasks[event.task]
            if flagged.gpu_idle or int(event.data.get("attempt") or 0) != flagged.attempt:
                return None
            self.tasks[event.task] = flagged = msgspec.structs.replace(flagged, gpu_idle=True)
            return flagged
        if event.kind != "task.status" or event.task is None:
            return None
        data = event.data
        old = self.tasks.get(event.task)
        status = str(data.get("status"))
        attempt = int(data.get("attempt") or 0)
        if old is None or (attempt, _RANK.get(status, 0)) <= (old.attempt, _RANK.get(old.status, 0)):
            return None  # already known from the snapshot (events may predate it), or older than it
        running = status in ("running", "starting")
        new = msgspec.structs.replace(
            old,
            status=status,
            attempt=attempt or old.attempt,
            reason=data.get("reason"),
            message=data.get("message"),
            exit_code=data.get("exit_code", old.exit_code),
            started_at=event.time if running and old.status not in ("running", "starting") else old.started_at,
            finished_at=None if running else event.time,
            gpu_idle=old.gpu_idle and (attempt or old.attempt) == old.attempt,  # a new attempt is not flagged yet
        )
        self.tasks[event.task] = new
        return new


def _line(console: Console, task: TaskOut, at: datetime | None = None) -> None:
    stamp = (at or datetime.now()).astimezone().strftime("%H:%M:%S")
    detail = task.message or task.reason or ""
    console.print(
        f"{stamp} {MARKS.get(task.status, '?')} {task.name} {styled(task.status)}"
        + (f" (attempt {task.attempt})" if task.attempt > 1 else "")
        + ("  [bold yellow]IDLE GPU[/]" if task.gpu_idle and task.status == "running" else "")
        + (f"  [dim]{detail}[/]" if detail else ""),
        highlight=False,
    )


async def watch_run(
    server: str,
    token: str,
    run_id: str,
    *,
    console: Console,
    live: bool,
    timeout: float | None = None,
    quiet: bool = False,
) -> RunDetail:
    """Follow `run_id` until it is finished; its final state. `TimeoutError` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    async with AsyncOdinClient(server, token) as client:
        ws: OdinWebSocket | None = None
        try:
            ws = await OdinWebSocket.connect(server, token)
            await ws.subscribe(run=run_id)
        except (ApiError, ServerUnreachable, ConnectionLost, TimeoutError, OSError) as e:
            if not quiet and not (isinstance(e, ApiError) and e.status == 404):  # no such run: the HTTP read says so
                console.print(f"[dim]live updates unavailable ({e}); polling every {POLL_INTERVAL:g}s[/]")
            ws = None
        try:
            state = _State(await client.run(run_id))
            if quiet:
                display: Live | None = None
            elif live:
                display = Live(_view(state), console=console, auto_refresh=False, transient=False)
                display.start()
            else:
                display = None
                for line in run_header(state.run):
                    console.print(line, highlight=False)
                for t in state.run.tasks:
                    if t.status != "pending":
                        _line(console, t, t.finished_at or t.started_at)
            try:
                refreshed = loop.time()
                drawn = loop.time()
                while state.run.status not in TERMINAL:
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"run {run_id} is still {state.run.status} after {timeout:g}s")
                    changed: list[TaskOut] = []
                    if display is not None and loop.time() - drawn >= TICK:
                        await state.read_tails(client)
                        display.update(_view(state), refresh=True)
                        drawn = loop.time()
                    safety = LIVE_SAFETY_REFRESH if display is not None else SAFETY_REFRESH
                    if ws is not None and loop.time() - refreshed < safety:
                        wait = safety if remaining is None else min(safety, remaining)
                        if display is not None:
                            wait = min(wait, max(TICK - (loop.time() - drawn), 0.05))
                        try:
                            event = await ws.next_event(timeout=wait)
                        except TimeoutError:
                            continue
                        except ConnectionLost:
                            ws = None
                            continue
                        task = state.apply(event)
                        if task is not None:
                            changed.append(task)
                        if state.run.status in TERMINAL:
                            state.reset(await client.run(run_id))
                    else:
                        if ws is None:
                            pause = POLL_INTERVAL if display is None else min(POLL_INTERVAL, TICK)
                            await asyncio.sleep(pause if remaining is None else min(pause, remaining))
                        changed = state.reset(await client.run(run_id))
                        refreshed = loop.time()
                    if display is not None:
                        display.update(_view(state), refresh=True)
                    elif not quiet:
                        for t in changed:
                            _line(console, t)
                final = await client.run(run_id)
                state.reset(final)
                if display is not None:
                    display.update(_view(state), refresh=True)
                return final
            finally:
                if display is not None:
                    display.stop()
        finally:
            if ws is not None:
                await ws.close()


def _view(state: _State) -> Group:
    header = Text.from_markup("\n".join(run_header(state.run)))
    parts: list[RenderableType] = [header, dag_table(state.run, state.tasks)]
    for name in state.running():
        lines = state.tails.get(name)
        if lines:
            parts.append(Text(f"── {name}: last lines of its log ──", style="dim"))
            parts.extend(Text("  " + line, no_wrap=True, overflow="ellipsis") for line in lines)
    return Group(*parts)
