"""Values with units that `main.yml` accepts in human form: durations (`1h30m`), Kubernetes quantities (`500m`, `4Gi`),
and the one rule for turning YAML scalars into the strings a process sees."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dhms])")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `2h`, `1h30m`, `1d`, `1.5h` or a bare number of seconds → seconds. Units must appear in the
    order d, h, m, s (as Go's and Kubernetes' durations do); raises ValueError otherwise."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"invalid duration {text!r}")
        return seconds
    total = 0.0
    position = 0
    order = "dhms"
    last = -1
    while position < len(text):
        match = _DURATION_PART.match(text, position)  # anchored: a search from every position would be quadratic
        if match is None:
            break
        rank = order.index(match.group(2))
        if rank <= last:
            raise ValueError(f"invalid duration {text!r}: units must go d, h, m, s, each once")
        last = rank
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 90s, 30m, 2h, 1h30m, 1d)")
    return total


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity (`500m`, `2`, `1.5`, `4Gi`, `1e3`) as an exact number; raises ValueError."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * (Decimal(10) ** int(suffix[1:]))
        return Decimal(number) * _SUFFIX[suffix]
    except (ArithmeticError, ValueError) as error:  # decimal's Overflow and InvalidOperation are ArithmeticErrors
        raise ValueError(f"quantity {text!r} is out of range") from error


def stringify(value: str | int | float | bool) -> str:
    """A scalar as a string when its source text is not at hand (explicit tags such as `!!int 10`): `true`/`false`
    for booleans, Python's shortest round-trip form for numbers (`10`, `0.5`, `1e-05`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
