"""Importer for files already in corpusmill's record shape (crawl output, earlier exports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.errors import InputError
from corpusmill.io import read_records
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Reader


class RecordsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: Path


@register("records")
class RecordsReader(Reader):
    """Reads corpusmill JSONL as is; ``dataset`` re-tags each record's source."""

    Params: ClassVar[type[BaseModel]] = RecordsParams

    def read(self) -> Iterator[Record]:
        path: Path = self.params.path  # type: ignore[attr-defined]
        if not path.is_file():
            raise InputError(str(path), "cannot read: No such file or directory")
        empty = True
        for record in read_records(path):
            empty = False
            yield record.model_copy(update={"source": record.source.model_copy(update={"dataset": self.dataset})})
        if empty:
            raise InputError(str(path), "empty input: no records")
