"""The published JSON Schema for `main.yml`, and the validators compiled from it once per process.

The schema file is package data so that editors (yaml-language-server, VS Code) and `odinctl` read the very same
document the controller enforces. Loading and compiling it costs milliseconds, so it happens on first use and is cached.

Installed resource-handler plugins widen one enum (`resource_type`), and finding them reads the entry points of every
installed distribution (about 20 ms of CPU, more than the rest of validating a small pipeline). A document valid
against the published schema is valid against the widened one, so `fast_check` tries the published schema first and
looks for plugins only when that fails (issue 15 item 2: `odin run` of a pipeline of built-in kinds never looks).
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

from .fastcheck import Check, compile_schema
from .model import RESOURCE_TYPES

SCHEMA_FILE = "pipeline.schema.json"
SCHEMA_ID = "https://odin.dev/schemas/pipeline.schema.json"
RESOURCE_HANDLER_GROUP = "odin.resource_handlers"
_KIND_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")


def schema_path() -> Path:
    """Filesystem path of the installed schema file (to point an editor at, or to copy)."""
    return Path(str(files(__package__).joinpath(SCHEMA_FILE)))


def plugin_resource_types() -> tuple[str, ...]:
    """`resource_type` values served by installed resource-handler plugins: the names of the entry points in the
    `odin.resource_handlers` group beyond the built-in kinds (see docs/kubernetes.md, "Adding a resource type")."""
    from importlib.metadata import entry_points

    found: list[str] = []
    for ep in entry_points(group=RESOURCE_HANDLER_GROUP):
        if ep.name not in RESOURCE_TYPES and ep.name not in found and _KIND_NAME.match(ep.name):
            found.append(ep.name)
    return tuple(found)


@cache
def published_schema() -> dict[str, Any]:
    """The schema file as published (the built-in kinds only), loaded once: shared, so callers must not modify it."""
    loaded: dict[str, Any] = json.loads(files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return loaded


@cache
def _schema() -> dict[str, Any]:
    """The published schema, with the `resource_type` values of installed plugins added to its enum: the file
    (what editors read) lists the built-in kinds; the controller also accepts the kinds it can run."""
    loaded = copy.deepcopy(published_schema())
    extra = plugin_resource_types()
    if extra:
        loaded["$defs"]["task"]["properties"]["resource_type"]["enum"].extend(extra)
    return loaded


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema as a dict (a copy: callers may modify it)."""
    return copy.deepcopy(_schema())


@cache
def validator() -> Draft202012Validator:
    """The reference validator; it explains why a document is invalid. `format` is not asserted (as in 2020-12).

    jsonschema (with attrs, referencing and rpds) is imported here, on the first invalid document: a valid one passes
    `fast_check` alone, so `odin run` and the server's sync of valid pipelines never load it (issue 15, start-up)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_schema(), format_checker=None)


@cache
def fast_check() -> Check:
    """A compiled yes/no check that agrees with `validator()` and is ~10x faster (see `fastcheck`): the published
    schema's, then, for a document that fails it, the one with the plugins' kinds (see the module's docstring)."""
    published = compile_schema(published_schema())

    def check(document: Any) -> bool:
        if published(document):
            return True
        return _names_other_kinds(document) and _with_plugins()(document)

    return check


def _names_other_kinds(document: Any) -> bool:
    """Whether a task of `document` names a `resource_type` that is not built in: the only way the plugins' kinds
    can change a verdict (they widen that enum alone, and `tasks` is the only place a task is)."""
    tasks = document.get("tasks") if isinstance(document, dict) else None
    if not isinstance(tasks, list):
        return False
    return any(isinstance(t, dict) and t.get("resource_type", "Pod") not in RESOURCE_TYPES for t in tasks)


@cache
def _with_plugins() -> Check:
    return compile_schema(_schema())
