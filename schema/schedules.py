"""`schedule:` entries: cron expressions read in a time zone, and the slots they name.

The JSON Schema checks the shape; this module checks what it cannot (that the expression is one croniter reads, that
the zone is one `zoneinfo` knows) and computes slots for the controller's scheduler. Slots are computed on the
*wall clock* of the schedule's zone and only then placed on the time line, so `0 3 * * *` in `Europe/Berlin` is
03:00 Berlin time in winter and in summer. Across daylight-saving changes each wall-clock slot is one instant: a
slot in the hour skipped in spring is placed after the change (as Vixie cron does), a slot in the hour repeated in
autumn starts once, at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import Schedule

_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression (or an `@daily`-style alias); None when it is one."""
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() in _ALIASES:
            return None
        return f"unknown cron alias `{text}` (one of {', '.join(f'`{a}`' for a in _ALIASES)})"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"a cron expression has five fields (minute hour day-of-month month day-of-week), "
            f"`{text}` has {len(fields)}"
        )
    from croniter import croniter  # (and dateutil) only for a pipeline or repository that has schedules

    try:
        croniter(text, datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as error:  # croniter's errors are ValueErrors, and a few of these
        return f"invalid cron expression `{text}`: {error}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone this machine knows; None when it is one."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone `{name}` (an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`)"
    return None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` on the zone's wall clock, without its zone (what croniter iterates over)."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time of the zone as a UTC instant, with fold 0 (PEP 495): a repeated hour's first occurrence,
    and a time in a skipped hour read with the offset before the change, which places it after the change (02:30 on
    the night Berlin goes from 02:00 to 03:00 is 03:30 summer time)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def slots_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The schedule's slots strictly after `after` (aware), in order, as UTC instants; endless."""
    from croniter import croniter

    zone = _zone(schedule.timezone)
    # Start a minute back on the wall clock: in autumn's repeated hour, wall time goes back, and a slot between
    # the two readings would otherwise be skipped. Slots at or before `after` are filtered out below.
    walls = croniter(schedule.cron.strip(), _wall(after, zone) - timedelta(minutes=61))
    last = after
    while True:
        slot = _instant(walls.get_next(datetime), zone)
        if slot > last:
            last = slot
            yield slot


def next_slot(schedule: Schedule, after: datetime) -> datetime:
    """The first slot strictly after `after`."""
    return next(slots_after(schedule, after))


def latest_slot(schedule: Schedule, at_or_before: datetime) -> datetime:
    """The most recent slot at or before `at_or_before` (aware), as a UTC instant."""
    from croniter import croniter

    zone = _zone(schedule.timezone)
    walls = croniter(schedule.cron.strip(), _wall(at_or_before, zone) + timedelta(seconds=1))
    while True:
        slot = _instant(walls.get_prev(datetime), zone)
        if slot <= at_or_before:
            return slot
