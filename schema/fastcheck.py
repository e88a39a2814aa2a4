"""A compiled yes/no check of a document against the pipeline schema: the fast path for files that are valid.

`jsonschema` is the reference implementation and produces every error message, but it is slow for a yes/no answer:
each subschema it enters builds a new validator object, and a typical `main.yml` enters ~150 of them (≈0.6 ms, more
than the rest of loading and checking together). This module compiles the same schema, once, into nested closures
that answer only "valid or not". A document the compiled check accepts is valid; one it rejects goes through
`jsonschema.iter_errors` for the messages.

Only the keywords the pipeline schema uses are supported, with jsonschema's Draft 2020-12 semantics (booleans are not
numbers, `2.0` is an integer, `pattern` searches rather than matches). Compiling a schema with any other validation
keyword raises `UnsupportedKeyword`, so extending the schema cannot silently weaken the check; a differential test
holds both implementations to the same answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default", "deprecated",
        "readOnly", "writeOnly", "errorMessage", "patternErrorMessage", "markdownDescription",
    }
)  # fmt: skip
"""Keywords that never affect validity (the last three are editor extensions, for VS Code's YAML and JSON support)."""


class UnsupportedKeyword(ValueError):
    """The schema uses a validation keyword this compiler does not implement."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """Compile `schema` (whose `$ref`s point into its own `#/$defs/`) into a function `document -> bool`."""
    return _Compiler(schema).compile(schema)


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._refs: dict[str, Check] = {}
        self._compiling: set[str] = set()

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda _v: True
        if schema is False:
            return lambda _v: False
        fused = _fused_scalar(schema)
        if fused is not None:
            return fused
        checks: list[Check] = []
        handled: frozenset[str] = frozenset()
        if _OBJECT_KEYWORDS.intersection(schema):
            checks.append(_object(self, schema))
            handled = _FUSED_OBJECT_KEYWORDS if schema.get("type") == "object" else _OBJECT_KEYWORDS
        for keyword in schema:
            if keyword in ANNOTATIONS or keyword in handled:
                continue
            build = _KEYWORDS.get(keyword)
            if build is None:
                raise UnsupportedKeyword(f"schema keyword {keyword!r} is not supported by the compiled check")
            checks.append(build(self, schema))
        return _all(checks)

    def ref(self, schema: Mapping[str, Any]) -> Check:
        ref: str = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise UnsupportedKeyword(f"only local `#/$defs/...` references are supported, not {ref!r}")
        name = ref.removeprefix("#/$defs/")
        if name not in self._refs:
            if name in self._compiling:
                raise UnsupportedKeyword(f"recursive reference {ref!r} is not supported")
            self._compiling.add(name)
            self._refs[name] = self.compile(self._root["$defs"][name])
            self._compiling.discard(name)
        return self._refs[name]


def _fused_scalar(schema: Mapping[str, Any]) -> Check | None:
    """One closure for the most common subschemas (a string with a pattern and length bounds, an integer with a
    range) instead of one per keyword: these are most of the checks a document goes through."""
    keywords = {keyword for keyword in schema if keyword not in ANNOTATIONS}
    kind = schema.get("type")
    if kind == "string" and keywords <= {"type", "pattern", "minLength", "maxLength"}:
        search = re.compile(schema["pattern"]).search if "pattern" in schema else None
        shortest: int = schema.get("minLength", 0)
        longest: float = schema.get("maxLength", math.inf)

        def string(v: Any) -> bool:
            if not isinstance(v, str) or not shortest <= len(v) <= longest:
                return False
            return search is None or search(v) is not None

        return string
    if kind == "integer" and keywords <= {"type", "minimum", "maximum", "exclusiveMinimum"}:
        low: float = schema.get("minimum", -math.inf)
        high: float = schema.get("maximum", math.inf)
        above: float = schema.get("exclusiveMinimum", -math.inf)

        def integer(v: Any) -> bool:
            if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
                return False
            return low <= v <= high and v > above

        return integer
    return None


def _all(checks: list[Check]) -> Check:
    """A conjunction; a plain loop, because a generator inside `all()` costs more than the checks themselves."""
    if not checks:
        return lambda _v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    checks_tuple = tuple(checks)

    def check(v: Any) -> bool:
        for one in checks_tuple:  # noqa: SIM110 (a loop, for the reason above)
            if not one(v):
                return False
        return True

    return check


_CLASSES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
    "boolean": (bool,),
    "number": (int, float),
}


def _type(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    names = schema["type"]
    names = [names] if isinstance(names, str) else list(names)
    if "integer" in names:
        if len(names) == 1:
            return _TYPE_TESTS["integer"]
        tests = tuple(_TYPE_TESTS[name] for name in names)
        return lambda v: any(test(v) for test in tests)
    classes = tuple(cls for name in names for cls in _CLASSES[name])
    if "number" in names and "boolean" not in names:  # bool is an int subclass, but not a JSON number
        return lambda v: isinstance(v, classes) and not isinstance(v, bool)
    return lambda v: isinstance(v, classes)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _enum(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    options = tuple(schema["enum"])
    if all(isinstance(option, str) for option in options):
        strings = frozenset(options)
        return lambda v: isinstance(v, str) and v in strings
    return lambda v: any(_equal(v, option) for option in options)


def _const(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    expected = schema["const"]
    return lambda v: _equal(v, expected)


def _pattern(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    search = re.compile(schema["pattern"]).search
    return lambda v: not isinstance(v, str) or search(v) is not None


def _min_length(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["minLength"]
    return lambda v: not isinstance(v, str) or len(v) >= n


def _max_length(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["maxLength"]
    return lambda v: not isinstance(v, str) or len(v) <= n


def _minimum(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["minimum"]
    return lambda v: not _is_number(v) or v >= n


def _maximum(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["maximum"]
    return lambda v: not _is_number(v) or v <= n


def _exclusive_minimum(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["exclusiveMinimum"]
    return lambda v: not _is_number(v) or v > n


def _min_items(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["minItems"]
    return lambda v: not isinstance(v, list) or len(v) >= n


def _min_properties(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    n = schema["minProperties"]
    return lambda v: not isinstance(v, dict) or len(v) >= n


def _items(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    item = compiler.compile(schema["items"])

    def check(v: Any) -> bool:
        if isinstance(v, list):
            for x in v:
                if not item(x):
                    return False
        return True

    return check


def _required(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    names = tuple(schema["required"])
    return lambda v: not isinstance(v, dict) or all(name in v for name in names)


def _property_names(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    check = compiler.compile(schema["propertyNames"])
    return lambda v: not isinstance(v, dict) or all(check(key) for key in v)


def _any_of(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    branches = tuple(compiler.compile(branch) for branch in schema["anyOf"])

    def check(v: Any) -> bool:
        for branch in branches:  # noqa: SIM110 (faster than any() over a generator)
            if branch(v):
                return True
        return False

    return check


def _all_of(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    return _all([compiler.compile(branch) for branch in schema["allOf"]])


def _object(compiler: _Compiler, schema: Mapping[str, Any]) -> Check:
    """`properties`, `patternProperties` and `additionalProperties` together: which keys are "additional" depends on
    the other two, so they are compiled as one check that looks at each key once. With `type: object`, the type,
    `required` and `minProperties` are checked here too."""
    properties = {name: compiler.compile(sub) for name, sub in schema.get("properties", {}).items()}
    patterns = tuple(
        (re.compile(pattern).search, compiler.compile(sub))
        for pattern, sub in schema.get("patternProperties", {}).items()
    )
    additional_schema = schema.get("additionalProperties", True)
    additional = None if additional_schema is True else compiler.compile(additional_schema)
    fused = schema.get("type") == "object"
    required = tuple(schema.get("required", ())) if fused else ()
    fewest: int = schema.get("minProperties", 0) if fused else 0

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return not fused
        if len(v) < fewest:
            return False
        for name in required:
            if name not in v:
                return False
        for key, value in v.items():
            prop = properties.get(key)
            if prop is not None:
                if not prop(value):
                    return False
                continue
            matched = False
            for search, sub in patterns:
                if search(key) is not None:
                    matched = True
                    if not sub(value):
                        return False
            if not matched and additional is not None and not additional(value):
                return False
        return True

    return check


_KEYWORDS: dict[str, Callable[[_Compiler, Mapping[str, Any]], Check]] = {
    "$ref": _Compiler.ref,
    "type": _type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "minItems": _min_items,
    "minProperties": _min_properties,
    "items": _items,
    "required": _required,
    "propertyNames": _property_names,
    "anyOf": _any_of,
    "allOf": _all_of,
}
_OBJECT_KEYWORDS = frozenset({"properties", "patternProperties", "additionalProperties"})
"""Compiled together by `_object`."""
_FUSED_OBJECT_KEYWORDS = _OBJECT_KEYWORDS | {"type", "required", "minProperties"}
"""Also compiled by `_object` when the schema says `type: object`."""
