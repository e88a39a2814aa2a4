"""The three PATCH formats the official client sends, applied to plain JSON documents.

* ``application/merge-patch+json``: RFC 7386, exact.
* ``application/json-patch+json``: RFC 6902 (add/remove/replace/move/copy/test, ``-`` appends), exact.
* ``application/strategic-merge-patch+json``: **approximated**.  A real apiserver consults the Go struct tags of each
  built-in type (``patchStrategy``/``patchMergeKey``).  The fake applies JSON merge patch, except that lists under the
  well-known field names in ``_MERGE_KEYS`` are merged element-by-element on their merge key (``conditions`` by
  ``type``, ``containers``/``env``/``volumes`` by ``name``, ``ownerReferences`` by ``uid`` ...), ``finalizers`` is
  merged as a set, and the ``$patch: replace|delete`` and ``$deleteFromPrimitiveList/<field>`` directives are honoured
  (``$setElementOrder``/``$retainKeys`` are ignored).  The table is keyed by field name, not by type, so a custom field
  that happens to be called ``conditions`` inside a built-in object would also merge by ``type`` -- harmless for
  Odin's use.  This matters because the kubelet and executors patch ``status.conditions`` with strategic merge, and
  on a real cluster that *adds* a condition rather than replacing the list.

Why here and not a library: the repo pins no JSON-patch dependency, and the semantics needed are small and testable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied; the server answers 422 (or 400 for a malformed document)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new document."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ------------------------------------------------------------------------------------------------------ RFC 6902
def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, allow_end=False)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return current


def _index(container: list[Any], token: str, path: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r} in {path}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index out of bounds in {path}")
    return index


def _get(doc: Any, path: str, op: str) -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, allow_end=False)]
    raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _resolve_parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), copy.deepcopy(value))
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve_parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; returns a new document."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            result = _add(result, path, operation.get("value"))
        elif op == "remove":
            _remove(result, path)
        elif op == "replace":
            _get(result, path, "replace")  # must exist
            tokens = _split_pointer(path)
            if not tokens:
                result = copy.deepcopy(operation.get("value"))
            else:
                parent = _resolve_parent(result, tokens, "replace", path)
                if isinstance(parent, list):
                    parent[_index(parent, tokens[-1], path, allow_end=False)] = copy.deepcopy(operation.get("value"))
                else:
                    parent[tokens[-1]] = copy.deepcopy(operation.get("value"))
        elif op == "move":
            value = _remove(result, operation["from"], "move")
            result = _add(result, path, value, "move")
        elif op == "copy":
            result = _add(result, path, _get(result, operation["from"], "copy"), "copy")
        elif op == "test":
            if _get(result, path, "test") != operation.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind of JSON patch operation: {op!r}")
    return result


# -------------------------------------------------------------------------------------------- strategic merge patch
_MERGE_KEYS: dict[str, str] = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
}
_SET_LISTS = frozenset({"finalizers"})


def _ports_key(items: list[Any]) -> str:
    return "containerPort" if any(isinstance(i, Mapping) and "containerPort" in i for i in items) else "port"


def _merge_key_for(field: str, patch_list: list[Any], target_list: list[Any]) -> str | None:
    if field == "ports":
        return _ports_key(patch_list + target_list)
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, target: Any, patch: list[Any]) -> list[Any]:
    target_list = list(copy.deepcopy(target)) if isinstance(target, list) else []
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    if field in _SET_LISTS:
        merged = list(target_list)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return merged
    key = _merge_key_for(field, patch, target_list)
    if key is None or not all(isinstance(i, Mapping) for i in patch):
        return copy.deepcopy(patch)
    merged = target_list
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {dict(item)!r} does not contain declared merge key: {key}")
        index = next(
            (
                n
                for n, existing in enumerate(merged)
                if isinstance(existing, Mapping) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
            continue
        if index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Approximate strategic merge patch (see the module docstring for exactly what is and is not modelled)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result: dict[str, Any] = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, Mapping):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    return result
