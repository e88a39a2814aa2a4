"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations).

Verification of an unknown user still spends one hash computation (`verify_dummy`), so response time does not
reveal which user names exist.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Made on first use, not at import: one argon2 hash is ~150 ms of every process that imports this module."""
    return _hasher.hash("odin-dummy-password-for-timing")


MIN_PASSWORD_LENGTH = 8


class WeakPassword(ValueError):
    """The password does not meet the minimum requirements."""


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_dummy(password: str) -> None:
    """Spend the time a real verification would, for a user that does not exist."""
    verify_password(_dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other argon2 parameters than the current ones (or is unreadable)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def rehash(password: str) -> str:
    """A hash with the current parameters of a password already verified (no strength check: it is in use)."""
    return _hasher.hash(password)
