"""The contract between a task and the engine about what the task produced: where outputs are written, how a result
file is read, and how a value is written into the command of a task that references it.

A task writes each declared artifact at `${OUTPUT_PATH}/<path>` and each declared result either to
`${RESULTS_PATH}/<name>` (the file's whole text) or as a key of `${RESULTS_PATH}/results.json` (one JSON object);
when both exist, the per-name file wins. Both directories are the task attempt's own, created empty by the executor.
These helpers are pure (no file access): the engine reads the files and calls them, so every executor agrees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .model import TaskSpec

RESULTS_FILE = "results.json"
"""The one-file form of results: `{"accuracy": 0.93, "loss": 0.2}` at `${RESULTS_PATH}/results.json`."""
MAX_RESULT_BYTES = 64 * 1024
"""A result is a value for a command line or a condition, not a file: larger ones belong in an artifact."""


def artifact_path(path: str) -> str | tuple[str]:
    """An artifact's path normalised (`./a//b/` → `a/b`), or a 1-tuple holding the problem: it must be relative,
    stay inside `${OUTPUT_PATH}` (no `..`), name something (not `.`), and be literal (no `${...}`)."""
    if "${" in path:
        return (f"artifact path `{path}` is relative to `${{OUTPUT_PATH}}` and literal: variables are not substituted",)
    if path.startswith("/"):
        return (f"artifact path `{path}` must be relative to `${{OUTPUT_PATH}}`, not absolute",)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return (f"artifact path `{path}` must stay inside `${{OUTPUT_PATH}}` (no `..`)",)
    if not parts:
        return (f"artifact path `{path}` names no file or directory under `${{OUTPUT_PATH}}`",)
    return "/".join(parts)


def parse_result(text: str) -> Any:
    """A result file's value: its text read as JSON when it parses (`0.93`, `true`, `"a"`, `[1, 2]`), else the
    text itself without surrounding whitespace (`hello\\n` → `"hello"`), so `echo 0.93 > $RESULTS_PATH/accuracy` and
    a `json.dump` both work."""
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def value_text(value: Any) -> str:
    """A resolved value as it is substituted into a command, an argument or an environment variable: a string as is
    (an artifact's path or URI, a string result), anything else as compact JSON (`0.93`, `true`, `[...]`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sweep_value(members: Sequence[tuple[TaskSpec, Any]]) -> list[dict[str, Any]]:
    """The value of a reference to a whole sweep (`${tasks.train.results.accuracy}` with `train` a `matrix`): one
    entry per member, in expansion order, `{"task": member name, "matrix": {key: value}, "value": member's value}`.
    `value_text` turns it into the JSON list the dependent sees; a member that was skipped or did not produce the
    output is left out (the list can be shorter than the sweep)."""
    return [{"task": task.name, "matrix": dict(task.matrix), "value": value} for task, value in members]


def results_from(files: Mapping[str, str], results_json: str | None) -> dict[str, Any]:
    """Every result a task wrote: `files` maps a declared result's name to the text of `${RESULTS_PATH}/<name>` (for
    those that exist), `results_json` is the text of `results.json` if any. Raises ValueError for a `results.json`
    that is not a JSON object."""
    found: dict[str, Any] = {}
    if results_json is not None:
        data = json.loads(results_json)
        if not isinstance(data, dict):
            raise ValueError(f"{RESULTS_FILE} must hold a JSON object, not {type(data).__name__}")
        found.update(data)
    for name, text in files.items():
        found[name] = parse_result(text)
    return found
