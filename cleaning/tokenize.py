"""Tokenization with spaCy (blank pipeline + sentencizer) or NLTK's data-free tokenizers."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Mapper


class TokenizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    backend: Literal["spacy", "nltk-treebank", "nltk-regexp"] = "spacy"
    language: str = "en"
    """spaCy language code for ``spacy.blank`` (its tokenizer rules; no trained model needed)."""
    keep_tokens: bool = False
    """Also store the token list in ``meta.tokens`` (large: off by default)."""


@register("tokenize")
class Tokenize(Mapper):
    """Counts tokens and sentences into ``meta`` (``tokens_count``, ``sentences_count``)."""

    Params: ClassVar[type[BaseModel]] = TokenizeParams
    lazy_attributes = ("nlp", "word_tokenizer", "sentence_splitter")

    def setup(self) -> None:
        params: TokenizeParams = self.params  # type: ignore[assignment]
        if params.backend == "spacy":
            import spacy

            self.nlp = spacy.blank(params.language)
            self.nlp.add_pipe("sentencizer")
            return
        from nltk.tokenize import RegexpTokenizer, TreebankWordTokenizer

        self.word_tokenizer: Any = (
            TreebankWordTokenizer() if params.backend == "nltk-treebank" else RegexpTokenizer(r"\w+|[^\w\s]+")
        )
        self.sentence_splitter = RegexpTokenizer(r"[^.!?\n]+(?:[.!?]+|$)")

    def tokenize(self, text: str) -> tuple[list[str], int]:
        if self.params.backend == "spacy":  # type: ignore[attr-defined]
            doc = self.nlp(text)
            return [t.text for t in doc if not t.is_space], sum(1 for _ in doc.sents)
        sentences = [s for s in self.sentence_splitter.tokenize(text) if s.strip()]
        return [t for s in sentences for t in self.word_tokenizer.tokenize(s)], len(sentences)

    def transform(self, record: Record) -> Record:
        tokens, sentences = self.tokenize(record.body)
        record.meta["tokens_count"] = len(tokens)
        record.meta["sentences_count"] = sentences
        if self.params.keep_tokens:  # type: ignore[attr-defined]
            record.meta["tokens"] = tokens
        return record
