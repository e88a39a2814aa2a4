"""`notify:` entries, in `main.yml` and in `.odin.yml`: the one rule the JSON Schemas cannot say cheaply (the compiled
check has no `oneOf`), that an entry names exactly one channel; and the problem with a secret written in plain text,
which must never quote it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOTIFY_CHANNELS = ("slack", "webhook", "email")


def channel_problem(entry: Mapping[str, Any]) -> str | None:
    """The problem with an entry's channels, or None when it names exactly one."""
    channels = [c for c in NOTIFY_CHANNELS if c in entry]
    if len(channels) == 1:
        return None
    named = " and ".join(f"`{c}`" for c in channels) if channels else "none"
    return f"a notification names exactly one channel (`slack`, `webhook` or `email`), not {named}"


def notify_entries(raw: Any) -> list[tuple[int, dict[str, Any], str | None]]:
    """Each mapping of a `notify:` list with its index and its channel problem (None: valid)."""
    if not isinstance(raw, list):
        return []
    return [(i, dict(entry), channel_problem(entry)) for i, entry in enumerate(raw) if isinstance(entry, dict)]


SECRET_REFERENCE_PATTERN = "^env:ODIN_NOTIFY_[A-Za-z0-9_]+$"
"""The schemas' `notifySecret` pattern: a field holding a secret (a Slack webhook URL, an HMAC key) by reference."""


def literal_secret_problem(subject: str, value: Any) -> str:
    """The problem with a secret field whose value is not a reference. The value is never quoted, since it may be the
    secret itself: problems are shown on commits, in logs, in commit statuses and to anyone who can read the API.
    A value that is meant as a reference (`env:...`) holds no secret, and is quoted so its typo can be seen."""
    if isinstance(value, str) and value.startswith("env:"):
        return f"{subject}: `{value}` must be `env:ODIN_NOTIFY_<NAME>` (letters, digits, `_` after the prefix)"
    return (
        f"{subject} holds its secret written in the file (not repeated here): put the secret in the server's "
        "environment as ODIN_NOTIFY_<NAME> and write `env:ODIN_NOTIFY_<NAME>` here instead; anyone who can read "
        "the repository can read this one, so replace (rotate) it"
    )
