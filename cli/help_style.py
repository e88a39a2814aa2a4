"""One help style for `odin` and `odinctl`: plain text, and placeholders that name the value, not its Python type.

Typer writes an option's value as its annotation (`--status <list[str]>`, `--limit <int>`, `{run_id}`), which tells a
person nothing they can type. Walking the built click command tree once, before it runs, gives every option and
argument without an explicit metavar the click convention instead: `--status STATUS`, `RUN_ID`, and the choices of a
choice, `--output [table|wide|name|json|yaml]`. Commands added later get the same treatment without doing anything.
"""

from __future__ import annotations

from typing import Any

import typer


def plain_help(command: Any) -> Any:
    """`command` (and its subcommands) with a placeholder on every valued option and argument that has none."""
    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False) or param.name is None:
            continue
        descriptor = getattr(param, "type_descriptor", None)
        choices = getattr(descriptor, "choices", None) if getattr(descriptor, "is_choice", False) else None
        if choices:
            param.metavar = "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
        else:
            param.metavar = param.name.upper()
        if getattr(param, "param_type_name", "") == "argument":
            # An argument's help row repeats its type after the name (`RUN_ID <str>`): the name is the placeholder.
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():  # a group (typer carries its own click: duck-typed)
        plain_help(sub)
    return command


def run(app: typer.Typer, **kwargs: Any) -> Any:
    """Build `app`'s command tree, give it plain placeholders and run it (what `main()` of each command line does)."""
    return plain_help(typer.main.get_command(app))(**kwargs)
