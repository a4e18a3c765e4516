"""Exact deduplication on normalised text; the first occurrence (in input order) is kept."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DatasetStep

NON_WORD = re.compile(r"[\W_]+")


class ExactDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_case: bool = True
    ignore_punctuation: bool = True
    """Treat "Where is my parcel?" and "where is my parcel" as the same text."""


@register("exact_dedup")
class ExactDedup(DatasetStep):
    Params: ClassVar[type[BaseModel]] = ExactDedupParams

    def key(self, record: Record) -> str:
        params: ExactDedupParams = self.params  # type: ignore[assignment]
        text = record.body
        if params.ignore_case:
            text = text.casefold()
        if params.ignore_punctuation:
            text = NON_WORD.sub(" ", text)
        return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()

    def decide(self, records: Sequence[Record]) -> Iterable[tuple[Record, str | None]]:
        first_id: dict[str, str] = {}
        for record in records:
            key = self.key(record)
            if key in first_id:
                record.meta["duplicate_of"] = first_id[key]
                yield record, "exact_duplicate"
            else:
                first_id[key] = record.id
                yield record, None
