"""Custom objects checked against their CRD's structural schema, as a real apiserver checks them.

Why: a real kube-apiserver prunes fields a CRD's schema does not declare (with a ``Warning`` header, or a 400 under
``fieldValidation=Strict``), drops ``null`` where the schema does not allow it, and refuses an object that breaks the
schema (a missing required field, a wrong type, a value outside an enum) with 422 ``Invalid``.  A fake that accepts
anything lets a handler that builds a broken object pass its tests and fail on the first cluster (issue 14).

What is modelled: pruning by the structural-schema rules (``properties``, ``additionalProperties``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-embedded-resource``), ``nullable``, and validation of what is
left with the schema's JSON Schema keywords (``required``, ``type``, ``enum``, ``minimum``, ``pattern``, ...).  Not
modelled: defaults (``default``), CEL rules (``x-kubernetes-validations``), ``format`` checks, list-type/map-type
uniqueness, ``metadata`` beyond what the store checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

JsonObj = dict[str, Any]
FIELD_VALIDATIONS = ("Ignore", "Warn", "Strict")
_TOP_LEVEL = ("apiVersion", "kind", "metadata")


class SchemaProblem(Exception):
    """The object breaks its schema: unknown fields under ``Strict`` (400), or ``causes`` (422, field/reason/msg)."""

    def __init__(self, *, unknown: list[str] | None = None, causes: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__("schema")
        self.unknown = unknown or []
        self.causes = causes or []


def check(schema: Mapping[str, Any], obj: JsonObj, field_validation: str | None) -> list[str]:
    """Prune ``obj`` in place and validate it; return the warnings to send (``unknown field "spec.x"``).

    Raises ``SchemaProblem``.  ``field_validation``: the request's ``fieldValidation`` (``Warn`` when absent, as the
    apiserver defaults it).
    """
    unknown: list[str] = []
    _prune(schema, obj, "", unknown, top=True)
    mode = field_validation or "Warn"
    if unknown and mode == "Strict":
        raise SchemaProblem(unknown=unknown)
    body = {k: v for k, v in obj.items() if k != "metadata"}
    errors = sorted(jsonschema.Draft7Validator(_without_metadata(schema)).iter_errors(body), key=_error_order)
    if errors:
        raise SchemaProblem(causes=[_cause(e) for e in errors])
    return [f'unknown field "{path}"' for path in unknown] if mode == "Warn" else []


def _without_metadata(schema: Mapping[str, Any]) -> JsonObj:
    out = dict(schema)
    out["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"}
    return out


def _prune(schema: Mapping[str, Any], value: Any, path: str, unknown: list[str], *, top: bool = False) -> None:
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            child_path = f"{path}.{key}" if path else key
            if top and key in _TOP_LEVEL:
                continue
            if key in props:
                sub = props[key]
            elif isinstance(extra, dict):
                sub = extra
            elif keep_unknown or (embedded and key in _TOP_LEVEL):
                continue
            else:
                unknown.append(child_path)
                del value[key]
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]  # the apiserver drops nulls the schema does not allow
                continue
            _prune(sub, value[key], child_path, unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune(schema["items"], item, f"{path}[{index}]", unknown)


def _error_order(error: jsonschema.ValidationError) -> str:
    return json.dumps(list(error.absolute_path), default=str)


def _field(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _cause(error: jsonschema.ValidationError) -> tuple[str, str, str]:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else ""
        return _field([*path, missing]), "FieldValueRequired", "Required value"
    field = _field(path)
    shown = json.dumps(error.instance)
    if error.validator == "type":
        expected = error.validator_value
        return field, "FieldValueTypeInvalid", f"Invalid value: {shown}: {field} in body must be of type {expected}"
    if error.validator == "enum":
        values: Any = error.validator_value
        supported = ", ".join(json.dumps(v) for v in values)
        return field, "FieldValueNotSupported", f"Unsupported value: {shown}: supported values: {supported}"
    return field, "FieldValueInvalid", f"Invalid value: {shown}: {error.message}"
