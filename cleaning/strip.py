"""Optional stripping for classic classification pipelines (bag-of-words, TF-IDF, small encoders).

Off by default: generative models learn from URLs, punctuation, digits and function words, and a
fine-tuned transformer classifier uses them too; removing them only helps models that count
words. Turn each piece on where that is the model you train.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel

from cleaning.base import TextMapper, TextParams
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.validators import PathOrName

URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.I)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014\u2026]")
SPECIAL = re.compile(r"[^\w\s.,;:!?'\"()\-]")
DIGITS = re.compile(r"\d+")
WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


class StripParams(TextParams):
    urls: bool = False
    emails: bool = False
    punctuation: bool = False
    special_characters: bool = False
    """Symbols and emoji; letters, digits and ordinary punctuation stay."""
    digits: bool = False
    lowercase: bool = False
    stopwords: Literal["none", "spacy", "nltk"] | PathOrName = "none"
    """``spacy`` (built-in English list), ``nltk`` (needs its stopwords data) or a file, one word a line."""


@register("strip")
class StripText(TextMapper):
    """Removes what a config names: URLs, e-mails, punctuation, symbols, digits, stop words; can lowercase."""

    Params: ClassVar[type[BaseModel]] = StripParams
    lazy_attributes = ("stop_words",)

    def setup(self) -> None:
        self.stop_words = load_stop_words(self.params.stopwords)  # type: ignore[attr-defined]

    def clean_text(self, text: str, record: Record) -> str:
        params: StripParams = self.params  # type: ignore[assignment]
        if params.urls:
            text = URL.sub(" ", text)
        if params.emails:
            text = EMAIL.sub(" ", text)
        if params.special_characters:
            text = SPECIAL.sub(" ", text)
        if params.digits:
            text = DIGITS.sub(" ", text)
        if params.lowercase:
            text = text.lower()
        if self.stop_words:
            text = " ".join(t for t in WORD.findall(text) if t.lower() not in self.stop_words)
        if params.punctuation:
            text = PUNCTUATION.sub(" ", text)
        return " ".join(text.split())


def load_stop_words(source: str) -> frozenset[str]:
    if source == "none":
        return frozenset()
    if source == "spacy":
        from spacy.lang.en.stop_words import STOP_WORDS

        return frozenset(STOP_WORDS)
    if source == "nltk":
        try:
            from nltk.corpus import stopwords

            return frozenset(stopwords.words("english"))
        except LookupError:
            raise ValueError(
                "NLTK's stopwords data is not installed (python -m nltk.downloader stopwords); "
                "use stopwords: spacy, or a file"
            ) from None
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"stop-word list {source!r}: no such file (or use spacy / nltk)")
    return frozenset(line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
