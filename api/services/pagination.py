"""Opaque keyset cursors: `(created_at, id)` of the last item of a page, base64-encoded.

Keyset (not offset) pagination so a page costs the same at row 10 and row 1,000,000, and a run created between two
requests neither repeats nor skips an item.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from odin.api.services.errors import InvalidRequest


def encode_cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError, binascii.Error) as e:
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page unchanged") from e
    if parsed.tzinfo is None:
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page unchanged")
    return parsed, key


def encode_key_cursor(key: int) -> str:
    """A cursor over rows ordered by an integer key alone (a run's tasks, in creation order)."""
    return base64.urlsafe_b64encode(f"k|{key}".encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, key = raw.split("|", 1)
        if tag != "k" or not key.isdigit():
            raise ValueError(raw)
        return int(key)
    except (ValueError, UnicodeDecodeError, binascii.Error) as e:
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page unchanged") from e
