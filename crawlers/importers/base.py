"""What every row-based importer shares: mapping, error policy, counting, encoding detection."""

from __future__ import annotations

import codecs
import io
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.schema import Record
from corpusmill.steps import LINE_BATCH, Reader
from crawlers.encoding import guess_encoding
from crawlers.importers.mapping import FieldMapping

SNIFF_BYTES = 1 << 20


@dataclass
class BadRow:
    """A line or row that cannot become a record: stops the import, or is rejected under ``skip``."""

    reason: str
    message: str
    raw: str


WIDE_ENCODINGS = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
"""Encodings in which a newline is not the byte ``\\n``: their lines are found after decoding."""


def detect_encoding(path: Path) -> str:
    """The file's text encoding from its first MiB (UTF-8 with a BOM becomes ``utf-8-sig``;
    a UTF-16 or UTF-32 byte-order mark names its encoding)."""
    with path.open("rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a multi-byte character cut by the sample's end
            return "utf-8"
    return guess_encoding(sample) or "utf-8"


def byte_lines(handle: IO[bytes], encoding: str, path: Path) -> tuple[Iterable[bytes], str]:
    """The file's lines as bytes, and the encoding they are in: as they are for ASCII-compatible
    encodings; decoded and re-encoded as UTF-8 for UTF-16/32, where splitting the raw bytes at
    ``\\n`` would cut characters in half."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(str(path), f"unknown encoding {encoding!r}") from None
    if name not in WIDE_ENCODINGS:
        return handle, encoding
    if name in ("utf-16", "utf-32"):
        start = handle.peek(4)[:4] if hasattr(handle, "peek") else b""
        if not start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
            name += "-le"  # no byte-order mark: little-endian, as Windows writes it

    def transcoded() -> Iterator[bytes]:
        text = io.TextIOWrapper(handle, encoding=name, newline="")
        number = 0
        while True:
            try:
                line = text.readline()
            except UnicodeError as exc:
                raise InputError(f"{path}:{number + 1}", f"not valid {encoding}: {exc}") from None
            if not line:
                return
            number += 1
            yield line.encode("utf-8")

    return transcoded(), "utf-8"


def decoded_lines(handle: IO[bytes], encoding: str, path: Path) -> Iterator[str]:
    """Decode line by line, so an encoding error names its own line, not the whole buffer."""
    lines, encoding = byte_lines(handle, encoding, path)
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{number}", f"not valid {encoding} (byte {exc.start} of the line)") from None


class RowReader(Reader):
    """A format that yields rows (dicts of columns), each with where it came from."""

    Params: ClassVar[type[BaseModel]] = FieldMapping

    @property
    def mapping(self) -> FieldMapping:
        return self.params  # type: ignore[return-value]

    @property
    def path(self) -> Path:
        return self.mapping.path

    def encoding(self) -> str:
        return self.mapping.encoding or detect_encoding(self.path)

    def open_binary(self) -> Any:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise InputError(str(self.path), f"cannot read: {exc.strerror}") from None

    @abstractmethod
    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        """``(where, row)`` pairs; ``where`` is ``FILE:LINE`` (or ``FILE:row N``)."""

    def to_record(self, row: dict[str, Any], where: str) -> Record:
        return self.mapping.to_record(row, self.dataset, self.uri or str(self.path), where)

    def read(self) -> Iterator[Record]:
        for where, row in self._checked_rows():
            record = self._record_of(where, row)
            if record is not None:
                yield record

    def line_batches(self) -> Iterator[list[tuple[str, str]]]:
        """Plain rows straight to their JSON lines (:meth:`FieldMapping.line_writer`); any row it
        cannot vouch for goes through :meth:`to_record`, so errors and rejects are the same."""
        line_of = self.mapping.line_writer(self.dataset, self.uri or str(self.path))
        if line_of is None or type(self).to_record is not RowReader.to_record:  # mapped its own way
            yield from super().line_batches()
            return
        rows = self._checked_rows()
        while batch := list(islice(rows, LINE_BATCH)):
            lines = [line_of(row) for _, row in batch]
            if None in lines:  # the rows it cannot vouch for, the slow way, in order
                slow = (
                    line or self._line_of_record(where, row) for (where, row), line in zip(batch, lines, strict=True)
                )
                lines = [line for line in slow if line]
            yield lines  # type: ignore[misc]

    def _line_of_record(self, where: str, row: dict[str, Any]) -> tuple[str, str] | None:
        record = self._record_of(where, row)
        return None if record is None else (record.id, record.to_json())

    def _checked_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The rows that parsed, each with where it is; unparsable ones go to :meth:`bad`."""
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise InputError(str(self.path), "empty input: the file is empty")
        empty = True
        for where, row in self.rows():
            empty = False
            if isinstance(row, BadRow):
                self.bad(where, row)
                continue
            yield where, row
        if empty:
            raise InputError(str(self.path), "empty input: no records")

    def _record_of(self, where: str, row: dict[str, Any]) -> Record | None:
        """The row's record, or ``None`` once :meth:`bad` has dealt with a row that cannot be one."""
        missing = [column for column in self.required_columns() if column not in row]
        if missing:
            self.bad(where, BadRow("missing_field", f"missing field {missing[0]!r}", raw_row(row)))
            return None
        try:
            return self.to_record(row, where)
        except InputError as exc:
            self.bad(where, BadRow(getattr(exc, "reason_label", "invalid_record"), exc.reason, raw_row(row)))
            return None

    def required_columns(self) -> list[str]:
        return self.mapping.columns

    def bad(self, where: str, row: BadRow) -> None:
        if self.on_error == "raise":
            raise InputError(where, row.message)
        self.skip_bad_input(where, row.reason, row.raw)


def raw_row(row: dict[str, Any]) -> str:
    """A row as a reject's ``raw`` text (JSON, cut at 2,000 characters)."""
    import json

    return json.dumps(row, ensure_ascii=False, default=str)[:2000]
