"""`notify:` entries, in `main.yml` and in `.odin.yml`: the one rule the JSON Schemas cannot say cheaply (the compiled
check has no `oneOf`), that an entry names exactly one channel."""

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
