"""Lightweight, offline, seeded augmenters (EDA, Wei & Zou 2019; and keyboard typos).

Each variant's randomness depends only on the seed and the record id, so output bytes do not
depend on worker count or order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from augment.base import TextAugmenterParams, derive, rng_for, texts_to_rewrite
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Augmenter

WORD = re.compile(r"\S+")
KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
NEIGHBOURS = {
    ch: "".join(
        KEYBOARD[r][c2]
        for r in range(max(0, row - 1), min(3, row + 2))
        for c2 in range(max(0, col - 1), min(len(KEYBOARD[r]), col + 2))
        if KEYBOARD[r][c2] != ch
    )
    for row, line in enumerate(KEYBOARD)
    for col, ch in enumerate(line)
}


class EdaParams(TextAugmenterParams):
    operation: Literal["swap", "delete", "insert", "synonym", "typo"] = "swap"
    rate: float = Field(default=0.1, gt=0, le=0.5)
    """Share of words (or, for typos, characters of words) changed."""


@register("eda")
class EasyDataAugmenter(Augmenter):
    """Easy data augmentation: typo noise, word swaps, deletions, insertions or WordNet synonyms.

    ``swap``, ``delete`` and ``insert`` (a word of the text again, elsewhere) need nothing;
    ``synonym`` needs NLTK's WordNet data and says so clearly when it is missing."""

    Params: ClassVar[type[BaseModel]] = EdaParams
    lazy_attributes = ("wordnet",)

    def setup(self) -> None:
        if self.params.operation == "synonym":  # type: ignore[attr-defined]
            from nltk.corpus import wordnet

            try:
                wordnet.synsets("card")
            except LookupError:
                raise RuntimeError(
                    "synonym replacement needs NLTK's WordNet data (python -m nltk.downloader wordnet); "
                    "use operation swap, delete, insert or typo instead"
                ) from None
            self.wordnet = wordnet

    def rewrite(self, text: str, rng: random.Random) -> str:
        p: EdaParams = self.params  # type: ignore[assignment]
        words = WORD.findall(text)
        if len(words) < 2:
            return text
        count = max(1, round(p.rate * len(words)))
        if p.operation == "swap":
            for _ in range(count):
                i, j = rng.sample(range(len(words)), 2)
                words[i], words[j] = words[j], words[i]
        elif p.operation == "delete":
            keep = [w for w in words if rng.random() > p.rate]
            words = keep if keep else [rng.choice(words)]
        elif p.operation == "insert":
            for _ in range(count):
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        elif p.operation == "typo":
            for i in rng.sample(range(len(words)), min(count, len(words))):
                words[i] = _typo(words[i], rng)
        else:
            for i in rng.sample(range(len(words)), len(words)):
                synonym = self._synonym(words[i], rng)
                if synonym:
                    words[i] = synonym
                    count -= 1
                    if count == 0:
                        break
        return " ".join(words)

    def _synonym(self, word: str, rng: random.Random) -> str | None:
        lemmas = {lemma.name().replace("_", " ") for s in self.wordnet.synsets(word.lower()) for lemma in s.lemmas()}
        lemmas.discard(word.lower())
        return rng.choice(sorted(lemmas)) if lemmas else None

    def augment(self, record: Record) -> Iterable[Record]:
        p: EdaParams = self.params  # type: ignore[assignment]
        originals = texts_to_rewrite(record, p.roles)
        seen = {tuple(originals)}
        for k in range(p.n):
            rng = rng_for(self.seed, self.label, record.id, k)
            variant = [self.rewrite(text, rng) for text in originals]
            if tuple(variant) in seen:
                self.discard("duplicate_variant", record, variant)
                continue
            seen.add(tuple(variant))
            params: dict[str, Any] = {"operation": p.operation, "rate": p.rate, "seed": self.seed}
            yield derive(record, k, p.operation, params, variant, p.roles)


def _typo(word: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(word) if ch.lower() in NEIGHBOURS]
    if not positions:
        return word
    i = rng.choice(positions)
    replacement = rng.choice(NEIGHBOURS[word[i].lower()])
    return word[:i] + (replacement.upper() if word[i].isupper() else replacement) + word[i + 1 :]
