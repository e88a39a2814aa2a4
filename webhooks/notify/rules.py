"""Which outcomes a finished run is, and which `notify:` entries they send (docs/notifications.md).

A run is compared with the previous finished run of its pipeline on its branch (the store answers that): a failure
after a success (or a pipeline's first run failing) is also a `first_failure`, a success after a failure also a
`recovery`. Cancelled runs send nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUCCESS, FAILURE, FIRST_FAILURE, RECOVERY = "success", "failure", "first_failure", "recovery"
_SPECIFIC_FIRST = (FIRST_FAILURE, RECOVERY, FAILURE, SUCCESS)
"""When an entry matches several outcomes, the event names the most telling one."""

_FAILED = frozenset({"failed", "error"})


def outcomes(status: str, previous: str | None) -> frozenset[str]:
    """What a run that ended in `status` is, given the previous finished run's status (None: there was none)."""
    if status == "succeeded":
        return frozenset({SUCCESS, RECOVERY}) if previous in _FAILED else frozenset({SUCCESS})
    if status in _FAILED:
        return frozenset({FAILURE}) if previous in _FAILED else frozenset({FAILURE, FIRST_FAILURE})
    return frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    """One `notify:` entry: when, where (`channel` and its settings), and an optional template."""

    on: tuple[str, ...]
    channel: str
    target: Mapping[str, Any]
    template: str | None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Rule | None:
        """The entry as the schema validated it; None for anything else (a spec frozen by another version)."""
        channel = next((c for c in ("slack", "webhook", "email") if isinstance(entry.get(c), dict)), None)
        on = entry.get("on")
        if channel is None or not isinstance(on, list):
            return None
        template = entry.get("template")
        return cls(
            tuple(str(o) for o in on), channel, dict(entry[channel]), template if isinstance(template, str) else None
        )

    def matches(self, happened: frozenset[str]) -> str | None:
        """The outcome this entry sends for (the most specific one), or None."""
        return next((o for o in _SPECIFIC_FIRST if o in happened and o in self.on), None)


def rules_of(entries: Any) -> list[Rule]:
    """The rules of a `notify:` list (a frozen spec's, or `.odin.yml`'s)."""
    rules = (Rule.from_entry(e) for e in entries if isinstance(e, Mapping)) if isinstance(entries, list | tuple) else ()
    return [r for r in rules if r is not None]
