"""Record filters; each stores the score it decided on in ``meta`` so thresholds can be re-tuned."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Filter


class LengthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_chars: int = Field(default=1, ge=0)
    max_chars: int | None = Field(default=None, gt=0)
    min_words: int = Field(default=0, ge=0)
    max_words: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LengthParams:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars must be at least min_chars")
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError("max_words must be at least min_words")
        return self


@register("length")
class LengthFilter(Filter):
    """Drops texts too short to teach anything or too long for the model's context."""

    Params: ClassVar[type[BaseModel]] = LengthParams

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        params: LengthParams = self.params  # type: ignore[assignment]
        body = record.body
        chars, words = len(body), len(body.split())
        record.meta["chars"] = chars
        record.meta["words"] = words
        if chars < params.min_chars:
            return False, "too_few_chars"
        if params.max_chars is not None and chars > params.max_chars:
            return False, "too_many_chars"
        if words < params.min_words:
            return False, "too_few_words"
        if params.max_words is not None and words > params.max_words:
            return False, "too_many_words"
        return True
