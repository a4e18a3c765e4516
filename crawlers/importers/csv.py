"""CSV and TSV on Python's csv module: quoted newlines and delimiters inside fields work."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.registry import register
from crawlers.importers.base import BadRow, RowReader, decoded_lines
from crawlers.importers.mapping import FieldMapping, excerpt

MAX_FIELD_CHARS = 64 * 1024 * 1024
"""Python's csv refuses fields over 131,072 characters; real exports hold whole articles in one.
Still bounded, so a file with an unclosed quote fails instead of reading everything as one field."""
csv.field_size_limit(MAX_FIELD_CHARS)


class CsvMapping(FieldMapping):
    delimiter: str = ","


@register("csv")
class CsvReader(RowReader):
    """CSV rows as records, with text, label, id and group columns mapped by name."""

    Params: ClassVar[type[BaseModel]] = CsvMapping

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        path = self.path
        delimiter = self.params.delimiter  # type: ignore[attr-defined]
        with self.open_binary() as handle:
            encoding = self.encoding()
            reader = csv.reader(decoded_lines(handle, encoding, path), delimiter=delimiter, strict=True)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise InputError(f"{path}:1", f"unreadable header: {exc}") from None
            if not header:
                raise InputError(str(path), "empty input: no header and no rows")
            missing = [column for column in self.mapping.columns if column not in header]
            if missing:
                raise InputError(f"{path}:1", f"unknown column {missing[0]!r} (columns: {', '.join(header)})")
            rows = 0
            name = str(path)  # formatted once, not per row
            while True:
                where = f"{name}:{reader.line_num + 1}"
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise InputError(where, f"malformed CSV: {exc}") from None
                if not values:
                    continue
                rows += 1
                if len(values) != len(header):
                    raw = delimiter.join(values)
                    message = f"expected {len(header)} fields, got {len(values)}: {excerpt(raw)}"
                    yield where, BadRow("wrong_field_count", message, raw)
                    continue
                yield where, dict(zip(header, values, strict=True))
            if rows == 0:
                raise InputError(str(path), "empty input: a header but no rows")


class TsvMapping(FieldMapping):
    delimiter: str = "\t"


@register("tsv")
class TsvReader(CsvReader):
    """Tab-separated rows as records (the CSV reader with a tab delimiter)."""

    Params: ClassVar[type[BaseModel]] = TsvMapping
