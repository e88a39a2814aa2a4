"""`--param key=value` options, parsed one way for both command lines (`odin run`, `odinctl run` and `rerun`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

EXIT_USAGE = 2


def parse_params(items: Iterable[str] | None, console: Console) -> dict[str, str]:
    """`["lr=0.1", "name=a=b"]` -> `{"lr": "0.1", "name": "a=b"}`: split at the first `=`, key stripped, value kept
    as typed (an empty value is a value); a later repeat of a key wins. Anything else is a usage error: the message
    goes to `console` and the command exits 2."""
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            console.print(f"[red]error:[/] parameter {item!r} must look like key=value", markup=True)
            raise typer.Exit(EXIT_USAGE)
        params[key.strip()] = value
    return params
