"""Unicode and whitespace normalisation: the same text always has the same bytes."""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DropRecord, Mapper

ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SPACES = re.compile(r"[^\S\n]+")
BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")


class NormalizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    form: Literal["NFC", "NFKC"] = "NFC"
    """NFKC also folds compatibility characters (ligatures, full-width letters); NFC keeps them."""
    collapse_whitespace: bool = True
    """Runs of spaces become one space, three or more newlines become a paragraph break."""


@register("normalize")
class NormalizeText(Mapper):
    Params: ClassVar[type[BaseModel]] = NormalizeParams

    def normalize(self, text: str) -> str:
        params: NormalizeParams = self.params  # type: ignore[assignment]
        text = unicodedata.normalize(params.form, text)
        text = ZERO_WIDTH.sub("", text)
        text = CONTROL.sub(" ", text).replace("\r\n", "\n").replace("\r", "\n")
        if params.collapse_whitespace:
            text = SPACES.sub(" ", text)
            text = "\n".join(line.strip() for line in text.split("\n"))
            text = BLANK_LINES.sub("\n\n", text)
        return text.strip()

    def transform(self, record: Record) -> Record:
        if record.text is not None:
            text = self.normalize(record.text)
            if not text:
                raise DropRecord("empty_after_normalize")
            return record.model_copy(update={"text": text})
        messages = [m.model_copy(update={"content": self.normalize(m.content)}) for m in record.messages or []]
        empty = [m.role for m in messages if not m.content and m.role in ("user", "assistant")]
        if empty:
            raise DropRecord("empty_turn_after_normalize", {"role": empty[0]})
        return record.model_copy(update={"messages": messages})
