"""Parameter checks shared by steps of different stages."""

from __future__ import annotations

import re


def check_regexes(patterns: list[str]) -> list[str]:
    """Every pattern compiles; the error names the one that does not."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return patterns
