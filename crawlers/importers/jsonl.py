"""JSON Lines importer: one JSON object per line, errors named ``FILE:LINE``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Reader
from crawlers.importers.mapping import FieldMapping, excerpt


@register("jsonl")
class JsonlReader(Reader):
    Params: ClassVar[type[BaseModel]] = FieldMapping

    def read(self) -> Iterator[Record]:
        mapping: FieldMapping = self.params  # type: ignore[assignment]
        path = mapping.path
        uri = self.uri or str(path)
        empty = True
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror}") from None
        with handle:
            for number, raw_bytes in enumerate(handle, start=1):
                where = f"{path}:{number}"
                try:
                    raw = raw_bytes.decode(mapping.encoding)
                except UnicodeDecodeError as exc:
                    self._bad(
                        where,
                        "bad_encoding",
                        f"not valid {mapping.encoding} (byte {exc.start})",
                        raw_bytes.decode(mapping.encoding, "replace"),
                    )
                    continue
                if not raw.strip():
                    continue
                empty = False
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as exc:
                    self._bad(
                        where, "malformed_json", f"invalid JSON ({exc.msg}, column {exc.colno}): {excerpt(raw)}", raw
                    )
                    continue
                if not isinstance(row, dict):
                    self._bad(
                        where, "not_an_object", f"expected a JSON object, got {type(row).__name__}: {excerpt(raw)}", raw
                    )
                    continue
                missing = [column for column in mapping.columns if column not in row]
                if missing:
                    self._bad(where, "missing_field", f"missing field {missing[0]!r}: {excerpt(raw)}", raw)
                    continue
                try:
                    yield mapping.to_record(row, self.dataset, uri, where)
                except InputError as exc:
                    self._bad(where, "invalid_record", exc.reason, raw)
        if empty:
            raise InputError(str(path), "empty input: no records")

    def _bad(self, where: str, reason: str, message: str, raw: str) -> None:
        if self.on_error == "raise":
            raise InputError(where, message)
        self.skip_bad_input(where, reason, raw)
