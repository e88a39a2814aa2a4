"""Deterministic Kubernetes names and the provenance labels every object carries.

Why deterministic: the name of an attempt's object is a pure function of (run, task, attempt), so creating it twice
is harmless (the second create meets 409 and adopts the first) and a restarted controller finds it again without any
bookkeeping of its own. Names are DNS-1035 labels (lowercase letters, digits and `-`, starting with a letter, at most
63 characters): the strictest rule any object Odin creates is held to, since the training operators derive Service
names (`<job>-worker-0`) and the Job controller derives a `job-name` label from them. When `<run>-<task>-<attempt>`
does not fit, it is truncated and a hash of the full name is appended, so distinct attempts keep distinct names.

Labels are the index the cluster keeps for us: `kubectl get pods -l odin.dev/commit=<sha>` lists everything a commit
started, and the executor's watches select on `app.kubernetes.io/managed-by=odin` plus the instance label.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "odin"
LABEL_INSTANCE = "odin.dev/instance"
LABEL_RUN = "odin.dev/run"
LABEL_TASK = "odin.dev/task"
LABEL_ATTEMPT = "odin.dev/attempt"
LABEL_PIPELINE = "odin.dev/pipeline"
LABEL_COMMIT = "odin.dev/commit"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"

ANNOTATION_REPO = "odin.dev/repo-url"
ANNOTATION_TRIGGER = "odin.dev/trigger"
ANNOTATION_PIPELINE = "odin.dev/pipeline-path"
ANNOTATION_TREE = "odin.dev/tree"

MAX_NAME = 63
_HASH_LEN = 10
_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class InvalidName(ValueError):
    """A name that cannot become a Kubernetes name at all (nothing usable left after cleaning)."""


def _digest(text: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """`parts` joined by `-` as a DNS-1035 label of at most `max_length` characters.

    Clean names pass unchanged; anything else (upper case, `_`, a leading digit, too long) is cleaned and gets a
    hash of the original, so two different inputs never clean to the same name."""
    raw = "-".join(parts)
    if len(raw) <= max_length and _DNS1035.match(raw):
        return raw
    cleaned = _NOT_NAME.sub("-", raw.lower()).strip("-")
    if not cleaned:
        raise InvalidName(f"{raw!r} has no letters or digits to build a Kubernetes name from")
    if not cleaned[0].isalpha():
        cleaned = f"o-{cleaned}"
    keep = max_length - _HASH_LEN - 1
    return f"{cleaned[:keep].rstrip('-')}-{_digest(raw)}"


def is_dns1035(name: str, max_length: int = MAX_NAME) -> bool:
    return len(name) <= max_length and bool(_DNS1035.match(name))


def attempt_name(run_id: str, task: str, attempt: int, *, max_length: int = MAX_NAME) -> str:
    """The name of one attempt's top-level object: `<run>-<task>-<attempt>`, hashed when it does not fit."""
    return dns_name(run_id, task, str(attempt), max_length=max_length)


def label_value(value: str) -> str:
    """`value` as a label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends): other
    characters become `.` (`vision/resnet` -> `vision.resnet`, what a user types in `-l`); a value that is still too
    long is truncated and gets a hash of the original."""
    if len(value) <= MAX_NAME and _LABEL_VALUE.match(value):
        return value
    cleaned = _NOT_LABEL_VALUE.sub(".", value).strip("._-")
    if len(cleaned) <= MAX_NAME and _LABEL_VALUE.match(cleaned):
        return cleaned
    keep = MAX_NAME - _HASH_LEN - 1
    head = cleaned[:keep].strip("._-")
    return f"{head}-{_digest(value)}" if head else _digest(value)


def selector(labels: Mapping[str, str]) -> str:
    """A label selector matching every label given (`k=v,k2=v2`)."""
    return ",".join(f"{k}={v}" for k, v in labels.items())
