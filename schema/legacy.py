"""What the original Odin (Interactions-AI/odin) accepted in `main.yml` and Odin reads the same way.

Pipelines written for the original, by its generator or by hand with YAML anchors, carry three habits the strict
schema would reject:

* `null` for an optional field left unset (`inputs: null`, `num_workers: null`, `pull_policy: null`): the original
  read it as absent, and so does Odin. Only *known* fields are cleared, so a misspelt one (`depnds: null`) still gets
  its "did you mean" from the schema.
* a task `id`: the original let a generator write one; Odin names a task's run `<run-id>--<name>` (`${TASK_ID}`), so
  the field is dropped with a note rather than a problem.
* top-level keys that only hold anchors (`image: &gpu ...` above `tasks:`, used below as `*gpu`): the original
  ignored every key but `name` and `tasks`. Odin allows an unknown top-level key whose value holds an anchor that an
  alias uses; any other unknown key is still a problem (with its suggestion), as is one spelt like a known field.

The rewrite happens on the loaded document, before the schema sees it, and never changes a list's indices, so every
position the later checks report is still the one the user wrote. docs/migrating-from-odin.md maps every field.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .located import LocatedDocument
from .problems import Problem
from .schemafile import published_schema
from .suggest import did_you_mean

IGNORED_TASK_FIELDS = ("id",)
"""Task fields of the original format that Odin drops (with a note)."""


@cache
def _known_fields() -> tuple[frozenset[str], frozenset[str]]:
    """(top-level fields, task fields) the schema defines (plugins add kinds, never fields)."""
    schema = published_schema()
    return frozenset(schema["properties"]), frozenset(schema["$defs"]["task"]["properties"])


def accept_legacy(doc: LocatedDocument, file: str) -> list[Problem]:
    """Rewrite `doc.value` in place as the original Odin read it; returns notes (not problems) on what was dropped."""
    root = doc.value
    if not isinstance(root, dict):
        return []
    top_fields, task_fields = _known_fields()
    for key in [k for k, v in root.items() if v is None and k in top_fields]:
        del root[key]
    for key in [k for k in root if _anchor_holder(doc, k, top_fields)]:
        del root[key]
    notes: list[Problem] = []
    tasks = root.get("tasks")
    if not isinstance(tasks, list):
        return notes
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        for key in [k for k, v in task.items() if v is None and k in task_fields]:
            del task[key]
        for key in IGNORED_TASK_FIELDS:
            if key in task:
                line, column = doc.key_position(("tasks", index, key))
                notes.append(Problem(file, line, column, _id_note(task.pop(key))))
    return notes


def _anchor_holder(doc: LocatedDocument, key: str, top_fields: frozenset[str]) -> bool:
    """An unknown top-level key kept only for its anchors; `x-` keys are allowed by the schema anyway, and a key
    that looks like a misspelt field (`task: &t ...`) is left for the schema to report with its suggestion."""
    if key in top_fields or key.startswith("x-") or key not in doc.aliased_roots:
        return False
    return not did_you_mean(key, sorted(top_fields))


def _id_note(value: Any) -> str:
    shown = "" if value is None else f" `{value}`"
    return (
        f"task field `id`{shown} is ignored: Odin identifies a task of a run as `<run-id>--<name>` "
        "(`${TASK_ID}`); delete `id` to silence this note"
    )
