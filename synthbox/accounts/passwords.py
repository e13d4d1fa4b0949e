"""Password hashing: argon2id at OWASP's parameters (19 MiB, 2 passes), rehashed when the
stored hash used weaker or older ones. argon2 is loaded at the first sign-in, not at
start-up: an instance nobody signs in to never needs it."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1

MIN_LENGTH = 10


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher, Type

    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB,
                          parallelism=PARALLELISM, hash_len=32, salt_len=16, type=Type.ID)


@cache
def dummy_hash() -> str:
    """Checked against for unknown users, so both answers take the same time."""
    return _hasher().hash("synthbox: no such user")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)
