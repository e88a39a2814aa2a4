"""Rich consoles made on first use, so that the command lines can name them at module level without importing rich.

`odinctl --help` and `odin --help` must not pay for rich (about a fifth of `odinctl --help`'s start-up; typer itself
needs it only for its rich help, which both command lines turn off): every command writes through `out` or `err`,
but only the command that runs ever prints. `lazy_console(**options)` stands in for `rich.console.Console(**options)`
and builds it on the first attribute read (`out.print`, `err.is_terminal`...). The guard test
(tests/cli/test_lazy_imports.py) keeps rich out of `--help`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """Forwards every attribute to the `Console` it builds on first use (with the options it was given)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this object lacks: everything a Console has.
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


def lazy_console(**options: Any) -> Console:
    """A `Console(**options)` built when first used; typed as the console it stands for."""
    return cast("Console", _LazyConsole(options))
