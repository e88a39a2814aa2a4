"""The `odinctl` console script: `odinctl results` on its short path, every other command through typer.

`odinctl results` answers in 100 ms or less (issue 11), and importing typer alone takes a third of that, its
pydantic validation of the command line more than half. So a well-formed `results` command line never imports the
typer application (`odin.cli.results`, standard library only); everything else, `odinctl results --help` and its
usage errors included, is `odin.cli.odinctl.main` as before.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["results"]:
        from odin.cli import results

        options = results.parse(sys.argv[2:])
        if options is not None:
            sys.exit(results.run(options))
    from odin.cli.odinctl import main as odinctl

    odinctl()
