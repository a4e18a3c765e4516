"""CSV/TSV importer on Python's csv module: quoted newlines and delimiters inside fields work."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Reader
from crawlers.importers.mapping import FieldMapping, excerpt


class CsvMapping(FieldMapping):
    delimiter: str = ","


@register("csv")
class CsvReader(Reader):
    Params: ClassVar[type[BaseModel]] = CsvMapping

    def read(self) -> Iterator[Record]:
        mapping: CsvMapping = self.params  # type: ignore[assignment]
        path = mapping.path
        uri = self.uri or str(path)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror}") from None
        with handle:
            rows = csv.reader(decoded_lines(handle, mapping.encoding, path), delimiter=mapping.delimiter, strict=True)
            try:
                header = next(rows, None)
            except csv.Error as exc:
                raise InputError(f"{path}:1", f"unreadable header: {exc}") from None
            if not header:
                raise InputError(str(path), "empty input: no header and no rows")
            missing = [column for column in mapping.columns if column not in header]
            if missing:
                raise InputError(f"{path}:1", f"unknown column {missing[0]!r} (columns: {', '.join(header)})")
            count = 0
            while True:
                line = rows.line_num + 1
                where = f"{path}:{line}"
                try:
                    values = next(rows)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise InputError(where, f"malformed CSV: {exc}") from None
                if not values:
                    continue
                if len(values) != len(header):
                    raw = mapping.delimiter.join(values)
                    message = f"expected {len(header)} fields, got {len(values)}: {excerpt(raw)}"
                    if self.on_error == "raise":
                        raise InputError(where, message)
                    self.skip_bad_input(where, "wrong_field_count", raw)
                    continue
                count += 1
                try:
                    yield mapping.to_record(dict(zip(header, values, strict=True)), self.dataset, uri, where)
                except InputError:
                    if self.on_error == "raise":
                        raise
                    self.skip_bad_input(where, "invalid_record", mapping.delimiter.join(values))
        if count == 0 and not self.stats.counts["dropped"]:
            raise InputError(str(path), "empty input: a header but no rows")


def decoded_lines(handle: Iterable[bytes], encoding: str, path: Path) -> Iterator[str]:
    """Decode line by line, so an encoding error names its own line, not the whole buffer."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{number}", f"not valid {encoding} (byte {exc.start} of the line)") from None
