"""jsonschema's errors, turned into one clear, located message per place in the file.

Raw jsonschema output is written for schema authors: an `anyOf` failure is a tree of every branch's complaints
("5 is not of type 'string'", "5 is not of type 'array'"), an unknown key is reported at its parent mapping, a bad
property name has no path at all. Here each error is reduced to the branch the user evidently meant (the one whose
type the value has), explained in the user's terms (field names relative to the task, "a list" rather than "array"),
and located at the node that must change: the value, the mapping for a missing field, the key itself for an unknown
field. The schema's `errorMessage` and `patternErrorMessage` annotations (which VS Code's YAML support also shows)
supply the wording where a keyword alone cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .located import JsonPath, LocatedDocument, field_label
from .notify import SECRET_REFERENCE_PATTERN, literal_secret_problem
from .problems import Problem
from .schemafile import validator
from .suggest import did_you_mean

if TYPE_CHECKING:
    from jsonschema import ValidationError  # only named: the errors come from `validator()`, which imports it

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}
_DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_ERRORS = 1000
"""Schema errors explained per file: ten times what is shown, so the first ones shown are the first in the file."""
_PRIORITY = {"type": 0, "anyOf": 0, "required": 1, "enum": 2, "const": 2, "pattern": 3}
"""When several errors hit one value, the most fundamental one is the only one shown (a wrong type makes the rest
noise)."""


def schema_problems(
    doc: LocatedDocument, file: str, *, max_errors: int = MAX_ERRORS
) -> tuple[list[Problem], set[JsonPath], bool]:
    """Validate `doc` with the reference validator. Returns the problems, the paths (truncated to a task or a
    parameter) that had errors, so later stages can skip parts that are not in the shape they expect, and whether
    it stopped early: after `max_errors` errors the rest of the document is not explained (jsonschema spends about
    0.1 ms on each), and the root is marked invalid so no later stage trusts its shape."""
    chosen: dict[tuple[JsonPath, bool], tuple[int, Problem]] = {}
    missing: dict[JsonPath, list[str]] = {}
    invalid: set[JsonPath] = set()
    truncated = False
    for count, error in enumerate(validator().iter_errors(doc.value)):
        if count >= max_errors:
            invalid.add(())
            truncated = True
            break
        for leaf in _leaves(error):
            path = tuple(leaf.absolute_path)
            if leaf.validator == "required":
                invalid.add(_scope(path))
                missing.setdefault(path, []).extend(_missing(leaf))
                continue
            for where, at_key, message in _explain(leaf, path):
                invalid.add(_scope(where))
                rank = _PRIORITY.get(str(leaf.validator), 4)
                slot = (where, at_key)
                if slot not in chosen or rank < chosen[slot][0]:
                    chosen[slot] = (rank, doc.problem(file, where, message, at_key=at_key))
    problems = [problem for _, problem in chosen.values()]
    for path, names in missing.items():
        if (path, False) in chosen and chosen[(path, False)][0] == 0:
            continue  # the value has the wrong type altogether: missing fields are beside the point
        unique = list(dict.fromkeys(names))
        fields = _join([f"`{name}`" for name in unique])
        noun = "field" if len(unique) == 1 else "fields"
        context = f" in {_where(path)}" if path else ""
        problems.append(doc.problem(file, path, f"missing required {noun} {fields}{context}"))
    return problems, invalid, truncated


def _scope(path: JsonPath) -> JsonPath:
    if len(path) >= 2 and path[0] in ("tasks", "params"):
        return path[:2]
    return path[:1]


def _leaves(error: ValidationError) -> list[ValidationError]:
    """Replace an `anyOf` failure by the errors of the branch the value was meant for, when one branch matches the
    value's type (a list given for "a mount or a list of mounts" is explained by the list branch's errors)."""
    if error.validator != "anyOf" or not error.context:
        return [error]
    fitting = [errors for errors in _branches(error) if not any(_is_shape_mismatch(e) for e in errors)]
    if not fitting:
        return [error]
    return [leaf for sub in fitting[0] for leaf in _leaves(sub)]


def _branches(error: ValidationError) -> list[list[ValidationError]]:
    grouped: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        grouped.setdefault(sub.relative_schema_path[0], []).append(sub)
    return list(grouped.values())


def _is_shape_mismatch(error: ValidationError) -> bool:
    """The value is not even of the kind this (sub)schema describes: a type error at the value itself, or an `anyOf`
    none of whose branches fits."""
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator == "anyOf":
        return all(any(_is_shape_mismatch(e) for e in errors) for errors in _branches(error))
    return False


def _missing(error: ValidationError) -> list[str]:
    instance = error.instance
    required = error.validator_value
    if isinstance(instance, dict) and isinstance(required, list):
        return [name for name in required if name not in instance]
    return []


def _explain(error: ValidationError, path: JsonPath) -> list[tuple[JsonPath, bool, str]]:
    """(where, at_key, message) for one leaf error."""
    schema: Any = error.schema
    schema = schema if isinstance(schema, dict) else {}
    keyword = error.validator
    value = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema reports a bad key at its mapping, with the key as the instance: point at the key itself.
        key = str(value)
        hint = schema.get("patternErrorMessage") or f"is not an allowed name here ({error.message})"
        return [((*path, key), True, f"`{key}` {hint}")]
    subject = _subject(path)
    if keyword == "additionalProperties":
        return [((*path, key), True, _unknown_field(path, key, schema)) for key in _extra_keys(value, schema)]
    if keyword == "anyOf":
        return [(path, False, f"{subject} {schema.get('errorMessage') or _types_from_branches(schema)}")]
    if keyword == "type":
        expected = _type_words(error.validator_value)
        if value is None:
            return [(path, False, f"{subject} is empty; it must be {expected}")]
        return [(path, False, f"{subject} must be {expected}, not {_describe(value)}")]
    if keyword == "pattern" and error.validator_value == SECRET_REFERENCE_PATTERN:
        return [(path, False, literal_secret_problem(subject, value))]
    if keyword == "pattern":
        hint = schema.get("patternErrorMessage") or f"does not match `{error.validator_value}`"
        return [(path, False, f"{subject}: `{value}` {hint}{_label_suggestion(error, value)}")]
    if keyword == "enum":
        options = [str(option) for option in cast("list[Any]", error.validator_value)]
        hint = did_you_mean(str(value), options)
        return [(path, False, f"{subject} must be one of {', '.join(options)}, not `{value}`{hint}")]
    if keyword in ("minLength", "minItems", "minProperties"):
        if error.validator_value == 1:
            return [(path, False, f"{subject} must not be empty")]
        unit = "characters" if keyword == "minLength" else "entries"
        return [(path, False, f"{subject} must have at least {error.validator_value} {unit}")]
    if keyword == "maxLength":
        length = len(value) if isinstance(value, str) else "?"
        return [(path, False, f"{subject} is too long ({length} characters; at most {error.validator_value})")]
    if keyword == "minimum":
        return [(path, False, f"{subject} must be at least {error.validator_value}, not {value}")]
    if keyword == "maximum":
        return [(path, False, f"{subject} must be at most {error.validator_value}, not {value}")]
    if keyword == "exclusiveMinimum":
        return [(path, False, f"{subject} must be more than {error.validator_value}, not {value}")]
    return [(path, False, f"{subject}: {error.message}")]


def _subject(path: Sequence[str | int]) -> str:
    if tuple(path) == ("name",):
        return "pipeline name"
    if len(path) == 3 and path[0] == "tasks" and path[2] == "name":
        return "task name"
    return f"`{field_label(path)}`"


def _where(path: JsonPath) -> str:
    if len(path) == 2 and path[0] == "tasks":
        return "task"
    return f"`{field_label(path)}`"


def _extra_keys(value: Any, schema: dict[str, Any]) -> list[str]:
    if not isinstance(value, dict):
        return []
    known = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return [key for key in value if key not in known and not any(p.search(key) for p in patterns)]


def _unknown_field(path: JsonPath, key: str, schema: dict[str, Any]) -> str:
    candidates = list(schema.get("properties", {}))
    if not path:
        hint = did_you_mean(key, candidates)
        extension = "" if hint else "; extension fields must start with `x-`"
        return f"unknown top-level field `{key}`{hint}{extension}"
    where = "task" if len(path) == 2 and path[0] == "tasks" else f"`{field_label(path)}`"
    hint = did_you_mean(key, candidates)
    if not hint and candidates:
        hint = f" (expected one of: {', '.join(candidates)})" if len(candidates) <= 8 else ""
    return f"unknown field `{key}` in {where}{hint}"


def _type_words(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return _join([_TYPE_WORDS.get(name, name) for name in names], "or")


def _types_from_branches(schema: dict[str, Any]) -> str:
    names: list[str] = []
    for branch in schema.get("anyOf", []):
        branch_type = branch.get("type") if isinstance(branch, dict) else None
        if isinstance(branch_type, str):
            names.append(branch_type)
        elif isinstance(branch_type, list):
            names.extend(branch_type)
    return f"must be {_type_words(list(dict.fromkeys(names)))}" if names else "has an invalid value"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string (`{shown}`)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _label_suggestion(error: ValidationError, value: Any) -> str:
    """For DNS-1123 names, the nearest valid spelling (`Train_Model` → `train-model`)."""
    if error.validator_value != _DNS_LABEL_PATTERN or not isinstance(value, str):
        return ""
    suggestion = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    if suggestion and suggestion != value and re.fullmatch(_DNS_LABEL_PATTERN, suggestion):
        return f" (e.g. `{suggestion}`)"
    return ""


def _join(words: Iterable[str], conjunction: str = "and") -> str:
    items = list(words)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
