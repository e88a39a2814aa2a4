"""Corrections to the OpenAPI document Litestar generates, for clients that validate strictly.

Litestar writes every Python union as `oneOf`. That is right for `str | None`, whose branches never both match, but
wrong for `str | int | float | bool` (a run's `params`): JSON Schema's `number` includes the integers, so `300`
matches both `integer` and `number`, and a strict validator rejects the documentation's own `{"epochs": 300}`
because `oneOf` demands exactly one match. Such unions are rewritten as `anyOf`, which says what the server accepts.

Litestar also leaves out that request bodies forbid unknown fields (msgspec's `forbid_unknown_fields`): their
schemas get `additionalProperties: false`, so a generated client or a validator refuses a misspelt field before the
server does.

Both corrections are applied where Litestar builds the document (`correct_when_built`), not after `create_app`: the
document takes about half of the app's construction (schemas of every struct of every route), so it is built on the
first request for /schema (or `odin openapi`), never on `odin serve`'s way to ready (issue 15, start-up).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import OpenAPI, OpenAPIType, Schema

from odin.api import schemas


def _types(branch: Any) -> set[OpenAPIType]:
    if not isinstance(branch, Schema) or branch.type is None:
        return set()
    return {branch.type} if isinstance(branch.type, OpenAPIType) else set(branch.type)


def _overlaps(branches: Any) -> bool:
    """True when some value can match two branches: here, one branch takes integers and another numbers."""
    seen: set[OpenAPIType] = set()
    for branch in branches:
        seen |= _types(branch)
    return {OpenAPIType.INTEGER, OpenAPIType.NUMBER} <= seen


def overlapping_unions_as_any_of(document: OpenAPI) -> OpenAPI:
    """Rewrite, in place, each `oneOf` whose branches overlap as `anyOf`; returns the document."""
    done: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) in done:
            return
        done.add(id(node))
        if isinstance(node, Schema) and node.one_of and _overlaps(node.one_of):
            node.any_of, node.one_of = list(node.one_of), None
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                visit(getattr(node, f.name))
        elif isinstance(node, dict):
            for value in node.values():
                visit(value)
        elif isinstance(node, list | tuple):
            for value in node:
                visit(value)

    visit(document)
    return document


def strict_bodies_closed(document: OpenAPI) -> OpenAPI:
    """Mark, in place, the component of each body struct that forbids unknown fields `additionalProperties: false`."""
    strict = {
        name
        for name, kind in vars(schemas).items()
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and kind.__struct_config__.forbid_unknown_fields
    }
    components = document.components.schemas if document.components else None
    for name, schema in (components or {}).items():
        if name in strict and isinstance(schema, Schema):
            schema.additional_properties = False
    return document


class _CorrectedOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's own OpenAPI plugin (which builds the document on first use and keeps it), with Odin's corrections
    applied to each document it builds."""

    __slots__ = ()

    def _build_openapi(self) -> OpenAPI:
        return strict_bodies_closed(overlapping_unions_as_any_of(super()._build_openapi()))


def correct_when_built(app: Litestar) -> None:
    """Make `app` apply both corrections whenever it builds its OpenAPI document (lazily: on the first read of
    `app.openapi_schema` or request for /schema). Litestar makes its plugin itself and has no hook after the build,
    so the plugin it made becomes the subclass above (no state of its own: the same slots, the same object)."""
    plugin = app.plugins.get(OpenAPIPlugin)
    if plugin._openapi is not None:
        raise RuntimeError("the OpenAPI document was built before its corrections were installed")
    plugin.__class__ = _CorrectedOpenAPIPlugin
