"""Header values as the receiver reads them: RFC 2047 encoded words decoded.

An encoded word can carry CR, LF or NUL (`=?utf-8?q?Hi=0D=0ABcc:_x?=`). The standard
library decodes it when the header is stored and, before the fix for CVE-2024-6923 (not in
Python 3.11.7), writes the decoded line breaks out: a new header, or a new body. So a value
is checked in its decoded form, and every message is generated with `VERIFYING`, a policy
that refuses such headers whatever the Python patch level.
"""

from __future__ import annotations

import re
from email.policy import EmailPolicy
from typing import Any

FORBIDDEN = re.compile(r"[\r\n\x00]")
# a line break that is not folding whitespace (as the stdlib's NEWLINE_WITHOUT_FWSP), or one
# at the very end, before the header's own line ending
_BARE_NEWLINE = re.compile(r"\r\n[^ \t]|\r[^ \n\t]|\n[^ \t]|[\r\n]\Z|\x00")
_BARE_NEWLINE_BYTES = re.compile(rb"\r\n[^ \t]|\r[^ \n\t]|\n[^ \t]|[\r\n]\Z|\x00")


class HeaderInjection(ValueError):
    """A header whose value would break out of its line."""


def decoded(value: str) -> str:
    """`value` as a mail reader shows it, encoded words decoded (as in an unstructured
    header such as Subject, which decodes words anywhere in the value)."""
    return str(EmailPolicy().header_factory("X-Check", value))


def breaks_out(value: str) -> bool:
    """Whether `value`, as written or once decoded, holds CR, LF or NUL."""
    if FORBIDDEN.search(value):
        return True
    try:
        return bool(FORBIDDEN.search(decoded(value)))
    except (ValueError, TypeError, LookupError):  # unreadable: do not send it
        return True


class VerifyingPolicy(EmailPolicy):
    """The default policy that refuses, when a header is set and again
    when it is written, any value whose decoded form or output would start a new line."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        stored = super().header_store_parse(name, value)
        if FORBIDDEN.search(str(stored[1])):
            raise HeaderInjection(f"{name}: the decoded value holds CR, LF or NUL")
        return stored

    def fold(self, name: str, value: Any) -> str:
        folded = super().fold(name, value)
        body = folded.removesuffix(self.linesep)
        if _BARE_NEWLINE.search(body) or not folded.endswith(self.linesep):
            raise HeaderInjection(f"{name}: the written header would start a new line")
        return folded

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = super().fold_binary(name, value)
        linesep = self.linesep.encode("ascii")
        body = folded.removesuffix(linesep)
        if _BARE_NEWLINE_BYTES.search(body) or not folded.endswith(linesep):
            raise HeaderInjection(f"{name}: the written header would start a new line")
        return folded


VERIFYING = VerifyingPolicy()
