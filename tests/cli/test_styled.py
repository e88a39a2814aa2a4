"""`odin run`'s lines without rich (cli/styled.py) are the bytes rich's console wrote for them, on a terminal or not,
whatever the environment says about colour; and text is written as it is, never read as markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from odin.cli.styled import Piece, StyledLines, styling


class Stream(io.StringIO):
    """A text stream that is a terminal or not, as a test says."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


# Each line as `odin run` writes it (cli/embedded_output.py), and as it wrote it through rich's markup before.
LINES: list[tuple[tuple[Piece, ...], str]] = [
    ((("✓", "green"), " say  succeeded  ", ("Completed", "dim")), "[green]✓[/] say  succeeded  [dim]Completed[/]"),
    ((("✗", "red"), " train  failed  ", ("exit 3", "dim")), "[red]✗[/] train  failed  [dim]exit 3[/]"),
    ((("↻", "yellow"), " train  retrying  ", ("", "dim")), "[yellow]↻[/] train  retrying  [dim][/]"),
    (("run ", ("hello-1", "bold"), ": ", ("succeeded", "green")), "run [bold]hello-1[/]: [green]succeeded[/]"),
    (("run ", ("hello-local-1", "bold"), ": ", ("failed", "red")), "run [bold]hello-local-1[/]: [red]failed[/]"),
    ((("outputs: /tmp/odin-run-x/runs/hello-1", "dim"),), "[dim]outputs: /tmp/odin-run-x/runs/hello-1[/]"),
    ((("a\rb\x07c\x08d\x0be\x0cf", "dim"),), "[dim]a\rb\x07c\x08d\x0be\x0cf[/]"),  # what rich leaves out of text
]

ENVIRONMENTS = [
    {},
    {"TERM": "xterm-256color"},
    {"TERM": "xterm-256color", "COLORTERM": "truecolor"},
    {"TERM": "dumb"},
    {"TERM": "unknown"},
    {"TERM": "xterm", "NO_COLOR": "1"},
    {"TERM": "xterm", "NO_COLOR": ""},
    {"TERM": "xterm", "FORCE_COLOR": "1"},
    {"TERM": "xterm", "FORCE_COLOR": ""},
    {"TERM": "xterm", "FORCE_COLOR": "1", "NO_COLOR": "1"},
    {"TERM": "xterm", "TTY_COMPATIBLE": "1"},
    {"TERM": "xterm", "TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
    {"TERM": "dumb", "FORCE_COLOR": "1"},
]


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "-")
def test_the_bytes_rich_wrote(tty: bool, environ: dict[str, str]) -> None:
    ours, theirs = Stream(tty), Stream(tty)
    lines = StyledLines(ours, environ)
    console = Console(file=theirs, highlight=False, soft_wrap=True, _environ=environ)
    for pieces, markup in LINES:
        lines.line(*pieces)
        console.print(markup)
    assert ours.getvalue() == theirs.getvalue()


def test_text_is_written_as_it_is() -> None:
    """Rich read a task's message as markup (`[/x]` ended the run with a MarkupError) and `:name:` as an emoji."""
    stream = Stream(False)
    StyledLines(stream, {}).line(("✗", "red"), " t  failed  ", ("bad [/x] [bold]thing[/] :warning:", "dim"))
    assert stream.getvalue() == "✗ t  failed  bad [/x] [bold]thing[/] :warning:\n"


class ClosedStream(Stream):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def test_a_closed_stream_is_no_terminal() -> None:
    assert styling(ClosedStream(True), {"TERM": "xterm"}) == (False, False)
