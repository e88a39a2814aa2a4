"""Sweeps: a task with `matrix:` becomes one task per combination of its values, at normalisation.

`matrix: {lr: [0.1, 0.03], depth: [4, 8]}` on task `train` gives four tasks, in `itertools.product` order (the first
key varies slowest): `train-lr-0-1-depth-4`, `train-lr-0-1-depth-8`, `train-lr-0-03-depth-4`, `train-lr-0-03-depth-8`.
Each member's `${matrix.lr}` is replaced by its value as written in the file (`0.10` stays `0.10`).

Member names must survive everything a task name goes through: Kubernetes object names and label values, file names
of the local executor's logs (which are globbed, so no `[`), URL path segments. So a member name is a DNS-1123 label
like any task name: the task's name, then each key and value, with every character outside `[a-z0-9]` turned into
`-` (runs collapsed) and letters lowercased. Where that loses information, i.e. two members (or a member and another
task) would get the same name, a value has nothing left (`"."`), or the name would pass 63 characters, the member's
name is shortened and suffixed with `-` and the first 8 hex digits of a SHA-256 of its key/value pairs, which depends
on that member's values alone. Either way the name depends only on the values, not on their position in the list, so
adding a value to a sweep does not rename the others. The values themselves are kept on each member
(`TaskSpec.matrix`), for display as `train[lr=0.1,depth=4]`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence

from .model import MatrixValue

MAX_NAME = 63
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""A matrix key: an identifier, as in `${matrix.lr}`."""
HASH_LENGTH = 8
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def count(lists: Iterable[Sequence[object]], cap: int) -> int:
    """How many combinations `lists` make, stopping as soon as the count passes `cap` (a hostile matrix of many long
    lists has a product no one should compute)."""
    total = 1
    for values in lists:
        total *= len(values)
        if total > cap:
            return total
    return total


def combinations(matrix: Mapping[str, Sequence[tuple[MatrixValue, str]]]) -> list[dict[str, tuple[MatrixValue, str]]]:
    """Every combination, first key slowest; each value is (as typed by YAML, as written in the file)."""
    keys = list(matrix)
    return [dict(zip(keys, chosen, strict=True)) for chosen in itertools.product(*matrix.values())]


def readable_name(task: str, combination: Mapping[str, tuple[MatrixValue, str]]) -> str | None:
    """`train-lr-0-1-depth-4`, or None when a value leaves nothing once cleaned or the name is too long."""
    parts = [task]
    for key, (_, text) in combination.items():
        value = _NOT_NAME.sub("-", text.lower()).strip("-")
        if not value:
            return None
        parts.append(_NOT_NAME.sub("-", key.lower()).strip("-") or "k")
        parts.append(value)
    name = "-".join(parts)
    return name if len(name) <= MAX_NAME else None


def hashed_name(task: str, combination: Mapping[str, tuple[MatrixValue, str]]) -> str:
    """The fallback: as much of the readable name as fits, then `-` and a digest of the key/value pairs."""
    pairs = json.dumps([[key, text] for key, (_, text) in combination.items()], ensure_ascii=False)
    digest = hashlib.sha256(pairs.encode()).hexdigest()[:HASH_LENGTH]
    readable = [task]
    for key, (_, text) in combination.items():
        readable += [key.lower(), text.lower()]
    stem = _NOT_NAME.sub("-", "-".join(readable)).strip("-")
    return f"{stem[: MAX_NAME - HASH_LENGTH - 1].rstrip('-')}-{digest}"


def member_names(
    task: str, combinations: Sequence[Mapping[str, tuple[MatrixValue, str]]], taken: Mapping[str, object]
) -> list[str]:
    """The name of each member: readable where that is unambiguous, hashed otherwise (see the module docstring).
    `taken` holds the names of the pipeline's other tasks."""
    readable = [readable_name(task, combination) for combination in combinations]
    seen: dict[str, int] = {}
    for name in readable:
        if name is not None:
            seen[name] = seen.get(name, 0) + 1
    names: list[str] = []
    for name, combination in zip(readable, combinations, strict=True):
        clear = name is not None and seen[name] == 1 and name not in taken
        names.append(name if clear and name is not None else hashed_name(task, combination))
    return names


def display_name(task: str, values: Mapping[str, MatrixValue]) -> str:
    """`train[lr=0.1,depth=4]`: how a member reads in listings (not a name anything is looked up by)."""
    return f"{task}[{','.join(f'{key}={json.dumps(value)}' for key, value in values.items())}]"
