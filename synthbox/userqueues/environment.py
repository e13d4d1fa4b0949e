"""`${NAME}` in a definition's values (headers, secrets, env): read from the environment
when used, so a secret need not be written in synthbox.toml or the records."""

from __future__ import annotations

import os
import re

_ENV = re.compile(r"\$\{([A-Za-z_]\w*)\}")


class DeliveryFailed(Exception):
    """A job could not be handed over (a variable is not set, the receiver refused it...);
    the message says why."""


def expand_env(value: str, label: str) -> str:
    """`${NAME}` replaced by the environment variable; a missing one is a failure."""
    def one(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise DeliveryFailed(f"{label}: environment variable {match.group(1)} is not set")
        return found
    return _ENV.sub(one, value)
