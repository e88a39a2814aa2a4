"""`--param key=value` options, parsed one way for both command lines (`odin run`, `odinctl run` and `rerun`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

EXIT_USAGE = 2


def split_param(item: str) -> tuple[str, str] | None:
    """`"name=a=b"` -> `("name", "a=b")`: split at the first `=`, key stripped, value kept as typed (an empty value
    is a value). None when it is not `key=value` (no `=`, or a blank key)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        return None
    return key.strip(), value


def parse_params(items: Iterable[str] | None, console: Console) -> dict[str, str]:
    """`["lr=0.1", "name=a=b"]` -> `{"lr": "0.1", "name": "a=b"}` (each item as `split_param` reads it); a later
    repeat of a key wins. Anything else is a usage error: the message goes to `console` and the command exits 2."""
    params: dict[str, str] = {}
    for item in items or []:
        pair = split_param(item)
        if pair is None:
            import typer  # only to exit: `odin run`'s short path (cli/run_line.py) imports this module without typer

            console.print(f"[red]error:[/] parameter {item!r} must look like key=value", markup=True)
            raise typer.Exit(EXIT_USAGE)
        params[pair[0]] = pair[1]
    return params
