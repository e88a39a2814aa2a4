"""The published JSON Schema for `main.yml`, and the validators compiled from it once per process.

The schema file is package data so that editors (yaml-language-server, VS Code) and `odinctl` read the very same
document the controller enforces. Loading and compiling it costs milliseconds, so it happens on first use and is cached.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib.metadata import entry_points
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
    found: list[str] = []
    for ep in entry_points(group=RESOURCE_HANDLER_GROUP):
        if ep.name not in RESOURCE_TYPES and ep.name not in found and _KIND_NAME.match(ep.name):
            found.append(ep.name)
    return tuple(found)


@cache
def _schema() -> dict[str, Any]:
    """The published schema, with the `resource_type` values of installed plugins added to its enum: the file
    (what editors read) lists the built-in kinds; the controller also accepts the kinds it can run."""
    loaded: dict[str, Any] = json.loads(files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
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
    """A compiled yes/no check that agrees with `validator()` and is ~10x faster (see `fastcheck`)."""
    return compile_schema(_schema())
