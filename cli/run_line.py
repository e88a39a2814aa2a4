"""`odin run`'s command line read without typer, and the command itself, shared by both ways in.

`odin run` of a one-task pipeline has a 300 ms budget for the whole process (issue 15 item 2), and typer with the
pydantic it validates every command line through is about a fifth of what the command imports. So the `odin`
script (`cli/entry.py`) gives a well-formed `odin run` line to `parse` here, and runs it with `run` without ever
importing typer or pydantic; any line `parse` is not sure of (`--help`, an unknown or malformed option, a missing
directory, a parameter without `=`) returns None and goes through the typer application (`cli/admin.py`), which
answers it as it always did, usage errors included. Both ways end in `run`, and `tests/cli/test_run_line.py`
checks that `parse` knows exactly the options the typer command declares.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from odin.cli.params import split_param

# The typer command's options (cli/admin.py, `run_once`), each taking one value, by the spellings click accepts:
# `--name VALUE`, `--name=VALUE`, `-p VALUE` and `-pVALUE`.
OPTIONS = {
    "--param": "param",
    "-p": "param",
    "--parallelism": "parallelism",
    "--data-dir": "data_dir",
    "--log-level": "log_level",
}
SHORT = {"-p": "param"}
_COUNT = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class RunOptions:
    directory: Path
    params: dict[str, str] = field(default_factory=dict)
    parallelism: int | None = None
    data_dir: Path | None = None
    log_level: str = "WARNING"


def parse(argv: Sequence[str]) -> RunOptions | None:
    """The options of `odin run ARGV...`, or None for anything typer should answer (help, errors, the unusual)."""
    values: dict[str, list[str]] = {"param": [], "parallelism": [], "data_dir": [], "log_level": []}
    positional: list[str] = []
    args = list(argv)
    while args:
        token = args.pop(0)
        if token == "--":
            positional += args
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, sep, inline = token.partition("=")
        if name in OPTIONS and name.startswith("--") and sep:
            value = inline
        elif token in OPTIONS:
            if not args:
                return None  # an option without its value: typer's usage error
            name, value = token, args.pop(0)
        elif token[:2] in SHORT and len(token) > 2:
            name, value = token[:2], token[2:]
        else:
            return None  # --help, an option `odin run` does not have, a misspelling
        if value.startswith("-"):
            return None  # click would take it as the value; rare enough to leave to it
        values[OPTIONS[name]].append(value)
    if len(positional) != 1 or not positional[0]:
        return None
    pairs = [split_param(item) for item in values["param"]]
    if None in pairs:
        return None  # parse_params reports it, on typer's way
    params = dict(pair for pair in pairs if pair is not None)  # a later repeat of a key wins, as there
    parallelism = values["parallelism"][-1] if values["parallelism"] else None  # click: the last one counts
    if parallelism is not None and not _COUNT.fullmatch(parallelism):
        return None  # typer's integer check answers anything else
    data_dir = values["data_dir"][-1] if values["data_dir"] else None
    if data_dir == "":
        return None
    return RunOptions(
        directory=Path(positional[0]),
        params=params,
        parallelism=int(parallelism) if parallelism is not None else None,
        data_dir=Path(data_dir) if data_dir is not None else None,
        log_level=values["log_level"][-1] if values["log_level"] else "WARNING",
    )


def run(options: RunOptions) -> int:
    """Run the pipeline as `odin run` does and return the exit code (both ways in end here)."""
    from odin.cli.importing import gc_paused
    from odin.cli.logs import setup_logging

    setup_logging(options.log_level)
    with gc_paused():
        from odin.cli.embedded_output import run_and_report

    return run_and_report(options.directory, options.params, options.parallelism, options.data_dir)
