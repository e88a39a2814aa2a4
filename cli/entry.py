"""The console scripts' first module: `odinctl results` and `odin run` on their short paths, the rest through typer.

`odinctl results` answers in 100 ms or less (issue 11), and importing typer alone takes a third of that, its
pydantic validation of the command line more than half. So a well-formed `results` command line never imports the
typer application (`odin.cli.results`, standard library only); everything else, `odinctl results --help` and its
usage errors included, is `odin.cli.odinctl.main` as before.

`odin run` does the same for its 300 ms budget (issue 15 item 2): the `odin` script is `odin.cli.entry:odin`, which
gives a well-formed `odin run` line to `odin.cli.run_line` (run without typer or pydantic) and everything else to
`odin.cli.admin.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """The `odinctl` script."""
    if sys.argv[1:2] == ["results"]:
        from odin.cli import results

        options = results.parse(sys.argv[2:])
        if options is not None:
            sys.exit(results.run(options))
    from odin.cli.odinctl import main as odinctl

    odinctl()


def odin() -> None:
    """The `odin` script."""
    if sys.argv[1:2] == ["run"]:
        from odin.cli import run_line

        options = run_line.parse(sys.argv[2:])
        if options is not None:
            try:
                code = run_line.run(options)
            except KeyboardInterrupt:  # before the run started (it handles its own): as click answers it
                print("\nAborted!", file=sys.stderr)
                code = 1
            sys.exit(code)
    from odin.cli.admin import main as admin

    admin()
