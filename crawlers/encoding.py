"""Guessing a text encoding when the declared one is missing or wrong."""

from __future__ import annotations

from charset_normalizer import from_bytes

WESTERN = ("cp1252", "latin_1", "iso8859_15")


def guess_encoding(data: bytes) -> str | None:
    """charset-normalizer's best guess; among equally good guesses, windows-1252 first.

    Short Western text fits several code pages equally well (cp1250, cp1252, cp1257 …); like
    browsers, prefer windows-1252 then.
    """
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    tied = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return next((e for e in WESTERN if e in tied), best.encoding)
