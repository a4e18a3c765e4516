"""Guessing a text encoding when the declared one is missing or wrong."""

from __future__ import annotations

from charset_normalizer import from_bytes

WESTERN = ("cp1252", "latin_1", "iso8859_15")
NEAR = 0.1
"""How much worse (mess ratio, coherence) a Western code page may score and still be preferred."""


def guess_encoding(data: bytes) -> str | None:
    """charset-normalizer's best guess; among near-equal guesses, windows-1252 first.

    Short Western text fits several code pages about equally well (cp1250, cp1252, cp1257 …),
    and charset-normalizer's mess score can favour cp1257 by a hair ("crčme brūlée" for
    "crème brûlée"); like browsers, prefer windows-1252 when it is within ``NEAR`` of the best.
    """
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    near = [m.encoding for m in matches if m.chaos - best.chaos <= NEAR and best.coherence - m.coherence <= NEAR]
    return next((e for e in WESTERN if e in near), best.encoding)
