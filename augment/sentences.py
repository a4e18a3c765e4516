"""Splitting long texts into sentences (spaCy's rule-based sentencizer) and putting them back."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLAUSE = re.compile(r"(?<=[,;:])\s+")


@dataclass
class Piece:
    """A sentence to translate and the whitespace that followed it in the original."""

    text: str
    trailing: str


class SentenceSplitter:
    def __init__(self, language: str = "en") -> None:
        import spacy

        self.nlp = spacy.blank(language)
        self.nlp.add_pipe("sentencizer")

    def split(self, text: str) -> tuple[str, list[Piece]]:
        """(leading whitespace, sentences with their trailing whitespace); joining them gives ``text``."""
        leading = text[: len(text) - len(text.lstrip())]
        pieces: list[Piece] = []
        for sentence in self.nlp(text.strip()).sents:
            raw = sentence.text_with_ws
            core = raw.strip()
            lead = raw[: len(raw) - len(raw.lstrip())]
            # Whitespace a sentence starts with (a newline, often) belongs after the one before it.
            if pieces:
                pieces[-1].trailing += lead
            else:
                leading += lead
            if core:
                pieces.append(Piece(core, raw[len(raw.rstrip()) :]))
        return leading, pieces


def split_long(sentence: str, too_long: callable) -> list[str] | None:  # type: ignore[valid-type]
    """Cut a sentence the model cannot take at clause punctuation; None when that is not enough."""
    if not too_long(sentence):
        return [sentence]
    parts: list[str] = []
    for clause in CLAUSE.split(sentence):
        if parts and not too_long(parts[-1] + " " + clause):
            parts[-1] += " " + clause
        else:
            parts.append(clause)
    return None if any(too_long(p) for p in parts) else parts
