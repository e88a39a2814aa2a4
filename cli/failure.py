"""Why a run failed, where a person is already looking: the failing tasks' last log lines and the command for more.

`odinctl watch`, `odinctl run --wait` / `rerun --wait` (from the API) and `odin run` (from the log files on this
machine) end a failed run with this block, so nobody has to guess which task to ask `logs` about. Log text comes from
the task: control characters are escaped so that it cannot drive the terminal, and each block is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.text import Text

from odin.cli.logs import escape_controls

LAST_LINES = 20
FAILED = frozenset({"failed", "error"})


@dataclass(frozen=True)
class FailedTask:
    name: str
    attempt: int
    exit_code: int | None
    message: str | None


def last_lines(text: str, count: int = LAST_LINES) -> list[str]:
    """The last `count` lines of `text`, trailing newline and carriage returns dropped, controls escaped."""
    return [escape_controls(line.rstrip("\r")) for line in text.splitlines()[-count:]]


def failure_report(
    tasks: Iterable[FailedTask], read_log: Callable[[str], str | None], more: Callable[[str], str]
) -> list[Text]:
    """One block per failed task: its outcome, its log's last lines (`read_log(task)`, None when unreadable) and
    `more(task)`, the command that shows the rest."""
    blocks: list[Text] = []
    for t in tasks:
        outcome = f"attempt {t.attempt}" + (f", exit {t.exit_code}" if t.exit_code is not None else "")
        text = read_log(t.name)
        lines = last_lines(text) if text else []
        head = Text(f"✗ {t.name} failed ({outcome})", style="red")
        if t.message:
            head.append(f": {escape_controls(t.message)}", style="red")
        blocks.append(head)
        if text is None:
            blocks.append(Text("  (its log could not be read)", style="dim"))
        elif not lines:
            blocks.append(Text("  (its log is empty)", style="dim"))
        else:
            count = "last line" if len(lines) == 1 else f"last {len(lines)} lines"
            blocks.append(Text(f"  {count} of its log:", style="dim"))
            blocks.extend(Text("  │ " + line) for line in lines)
        blocks.append(Text(f"  more: {more(t.name)}", style="dim"))
    return blocks
