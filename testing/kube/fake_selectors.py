"""Label and field selectors with the apiserver's grammar and semantics.

Why not a regex per request: executors build selectors like ``job-name=x,!odin.io/ignored`` or
``training.kubeflow.org/replica-type in (master,worker)``; a fake that only understood ``k=v`` would let a wrong
selector pass in tests and fail on a cluster.  The semantics follow ``k8s.io/apimachinery/pkg/labels``: ``!=`` and
``notin`` also match objects that lack the key, ``in``/``=`` require it; an unparsable selector is a 400.

Field selectors only accept the per-kind field labels the real apiserver registers (see
``fake_resources.ResourceKind.field_labels``); anything else is a 400 ``field label not supported``, which is what an
executor would get from a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from odin.testing.kube.fake_resources import validate_label_key, validate_label_value


class SelectorError(ValueError):
    """An unparsable or unsupported selector; the server answers 400 BadRequest with this message."""


_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=<>(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_CMP_RE = re.compile(r"^\s*(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|!=|=|>|<)\s*(?P<value>[^\s!=<>(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=<>(),]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "exists", "!exists", "=", "!=", "in", "notin", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        # ">" / "<": integer comparisons, only for present, integer-valued labels.
        if not present or value is None:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == ">" else have < want


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( ... )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> None:
    problem = validate_label_key(key)
    if problem:
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}": {problem}')


def _check_value(value: str) -> None:
    problem = validate_label_value(value)
    if problem:
        raise SelectorError(f'unable to parse requirement: invalid label value: "{value}": {problem}')


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if text is None or not text.strip():
            return cls()
        requirements: list[Requirement] = []
        for raw in _split_top_level(text):
            if not raw.strip():
                raise SelectorError(f"unable to parse requirement: empty requirement in {text!r}")
            if m := _SET_RE.match(raw):
                values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
                _check_key(m["key"])
                for value in values:
                    _check_value(value)
                if m["op"] == "in" and not values:
                    raise SelectorError(
                        "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"
                    )
                requirements.append(Requirement(m["key"], m["op"], values))
            elif m := _CMP_RE.match(raw):
                op = "=" if m["op"] == "==" else m["op"]
                _check_key(m["key"])
                if op in (">", "<"):
                    try:
                        int(m["value"])
                    except ValueError:
                        raise SelectorError(
                            f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: "
                            f"{m['value']!r}"
                        ) from None
                else:
                    _check_value(m["value"])
                requirements.append(Requirement(m["key"], op, (m["value"],)))
            elif m := _EXISTS_RE.match(raw):
                _check_key(m["key"])
                requirements.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
            else:
                raise SelectorError(f"unable to parse requirement: found '{raw.strip()}', expected: a requirement")
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


# Field labels whose value lives somewhere other than the dotted path of the same name.
_FIELD_ALIASES = {"source": "source.component", "status.successful": "status.succeeded"}


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string a real apiserver compares for ``field`` (missing fields compare as ``""``)."""
    current: Any = obj
    for part in _FIELD_ALIASES.get(field, field).split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, str, str], ...] = ()  # (field, "=" | "!=", value)

    @classmethod
    def parse(cls, text: str | None, allowed: frozenset[str]) -> FieldSelector:
        if text is None or not text.strip():
            return cls()
        terms: list[tuple[str, str, str]] = []
        for term in text.split(","):
            raw = term.strip()
            if not raw:
                continue
            if "!=" in raw:
                field, value = raw.split("!=", 1)
                op = "!="
            elif "==" in raw:
                field, value = raw.split("==", 1)
                op = "="
            elif "=" in raw:
                field, value = raw.split("=", 1)
                op = "="
            else:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{raw}'")
            field = field.strip()
            if field not in allowed:
                raise SelectorError(f"field label not supported: {field}")
            terms.append((field, op, value.strip()))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, op, value in self.terms:
            have = field_value(obj, field)
            if (have == value) != (op == "="):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.terms
