"""Validation of generated manifests: core kinds with kubernetes-validate, custom kinds against their CRDs.

Why strict: the apiserver prunes fields a structural schema does not declare, so a misspelt field in a generated
PyTorchJob would be dropped silently on a real cluster. The CRD schemas are made strict here (`additionalProperties:
false` wherever a schema lists `properties` and neither preserves unknown fields nor declares additional ones), so a
typo fails the test instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).parent / "crds"  # package data (pyproject), so an installed wheel has them
KUBERNETES_VERSION = "1.31"  # the oldest release Odin's manifests must be valid for (podFailurePolicy GA)


@cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of that version."""
    return {key: _strict(copy.deepcopy(schema)) for key, schema in structural_schemas().items()}


@cache
def structural_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the openAPIV3Schema of that version, as published (what the fake API server enforces).

    Shared and cached: treat the schemas as read-only.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (safe)
        out.update(crd_versions(crd))
    return out


def crd_versions(crd: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for each version of one CustomResourceDefinition (v1 or v1beta1)."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for version in spec.get("versions") or [{"name": spec.get("version")}]:
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or (spec.get("validation") or {}).get(
            "openAPIV3Schema"
        )
        if schema:
            out[(f"{group}/{version['name']}", kind)] = schema
    return out


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        for value in schema.values():
            _strict(value)
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _strict(item)
    return schema


def validate_custom(obj: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `obj` is valid for its CRD (which must be in `CRD_DIR`)."""
    key = (obj["apiVersion"], obj["kind"])
    schema = _crds().get(key)
    if schema is None:
        raise LookupError(f"no CRD for {key} in {CRD_DIR}")
    body = {k: v for k, v in obj.items() if k != "metadata"} | {"metadata": {}}
    jsonschema.Draft7Validator(schema).validate(body)


def validate_core(obj: dict[str, Any]) -> None:
    """Raise unless `obj` (a Pod, Job, ConfigMap) is valid for Kubernetes `KUBERNETES_VERSION`, strictly.

    Needs `kubernetes-validate` (Odin's `test` extra), imported here so the rest of the package does not.
    """
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def validate_manifest(obj: dict[str, Any]) -> None:
    if "/" in obj["apiVersion"] and not obj["apiVersion"].startswith(("batch/", "apps/")):
        validate_custom(obj)
    else:
        validate_core(obj)
