"""`odinctl validate`: check pipelines offline, before pushing (by hand, in CI, or as a pre-commit hook).

The typer command only forwards its arguments here, so the behaviour (output formats, exit codes) lives next to the
validator and is tested without a CLI framework.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from .report import format_problems, results_to_json, summary
from .validate import validate_path

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
# The names `odinctl -o` uses everywhere (kubectl's): `table` and `wide` are the text report, `name` the files with
# problems, one a line; `text` (the former name, and this function's default) is the same report.
OUTPUT_FORMATS = ("table", "wide", "name", "json", "yaml", "text")


def validate_main(
    paths: list[str], output: str = "text", *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Validate `paths` (main.yml files, pipeline directories or a repository; the current directory when empty).

    Text output (`table`, `wide`, `text`): one `file:line:col: message` per problem on stdout, then one
    `file:line:col: warning: message` per warning; `N pipelines, M problems` on stderr. `name`: the files with
    problems, one a line. JSON (YAML) output: `{"pipelines": [{"file", "ok", "problems": [...]}]}` on stdout, each
    problem with its `severity`.
    Returns 0 when every pipeline is valid (warnings alone never fail), 1 when any has problems, 2 for a usage error
    (unknown output format, a missing path, nothing to validate).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if output not in OUTPUT_FORMATS:
        print(
            f"odinctl validate: unknown output format {output!r} (expected one of: {', '.join(OUTPUT_FORMATS)})",
            file=err,
        )
        return EXIT_USAGE
    targets = [Path(p) for p in (paths or ["."])]
    missing = [str(p) for p in targets if not p.exists()]
    if missing:
        print(f"odinctl validate: no such file or directory: {', '.join(missing)}", file=err)
        return EXIT_USAGE
    results = validate_path(targets)
    if not results:
        print(f"odinctl validate: no main.yml found under {', '.join(str(p) for p in targets)}", file=err)
        return EXIT_USAGE
    if output == "json":
        json.dump(results_to_json(results), out, indent=2)
        out.write("\n")
    elif output == "yaml":
        import yaml

        out.write(yaml.safe_dump(results_to_json(results), sort_keys=False))
    elif output == "name":
        out.writelines(f"{path}\n" for path, result in results if not result.ok)
    else:
        for _, result in results:
            if result.shown:
                print(format_problems(result.shown), file=out)
            for note in result.notes:  # never a failure: what Odin ignored of the original Odin's format
                print(f"{note.file}:{note.line}:{note.column}: note: {note.message}", file=err)
        print(summary(results), file=err)
    return EXIT_OK if all(result.ok for _, result in results) else EXIT_PROBLEMS
