"""What every row-based importer shares: mapping, error policy, counting, encoding detection."""

from __future__ import annotations

import codecs
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.schema import Record
from corpusmill.steps import Reader
from crawlers.encoding import guess_encoding
from crawlers.importers.mapping import FieldMapping

SNIFF_BYTES = 1 << 20


@dataclass
class BadRow:
    """A line or row that cannot become a record: stops the import, or is rejected under ``skip``."""

    reason: str
    message: str
    raw: str


def detect_encoding(path: Path) -> str:
    """The file's text encoding from its first MiB (UTF-8 with a BOM becomes ``utf-8-sig``)."""
    with path.open("rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a multi-byte character cut by the sample's end
            return "utf-8"
    return guess_encoding(sample) or "utf-8"


def decoded_lines(handle: Iterable[bytes], encoding: str, path: Path) -> Iterator[str]:
    """Decode line by line, so an encoding error names its own line, not the whole buffer."""
    for number, raw in enumerate(handle, start=1):
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
        empty = True
        for where, row in self.rows():
            empty = False
            if isinstance(row, BadRow):
                self.bad(where, row)
                continue
            missing = [column for column in self.required_columns() if column not in row]
            if missing:
                self.bad(where, BadRow("missing_field", f"missing field {missing[0]!r}", _raw(row)))
                continue
            try:
                yield self.to_record(row, where)
            except InputError as exc:
                self.bad(where, BadRow(getattr(exc, "reason_label", "invalid_record"), exc.reason, _raw(row)))
        if empty:
            raise InputError(str(self.path), "empty input: no records")

    def required_columns(self) -> list[str]:
        return self.mapping.columns

    def bad(self, where: str, row: BadRow) -> None:
        if self.on_error == "raise":
            raise InputError(where, row.message)
        self.skip_bad_input(where, row.reason, row.raw)


def _raw(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row, ensure_ascii=False, default=str)[:2000]
