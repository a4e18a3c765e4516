"""JSON Lines and JSON (a top-level array, or an array under a key path), streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel

from corpusmill.errors import InputError
from corpusmill.registry import register
from crawlers.importers.base import BadRow, RowReader, byte_lines
from crawlers.importers.mapping import FieldMapping, excerpt


def json_lines(reader: RowReader) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
    """Each non-blank line parsed as one JSON object; problems become :class:`BadRow`."""
    path = reader.path
    with reader.open_binary() as handle:
        lines, encoding = byte_lines(handle, reader.encoding(), path)
        name = str(path)  # formatted once, not per line
        for number, raw_bytes in enumerate(lines, start=1):
            where = f"{name}:{number}"
            try:
                raw = raw_bytes.decode(encoding)
            except UnicodeDecodeError as exc:
                text = raw_bytes.decode(encoding, "replace")
                yield where, BadRow("bad_encoding", f"not valid {encoding} (byte {exc.start} of the line)", text)
                continue
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield (
                    where,
                    BadRow("malformed_json", f"invalid JSON ({exc.msg}, column {exc.colno}): {excerpt(raw)}", raw),
                )
                continue
            if not isinstance(row, dict):
                yield (
                    where,
                    BadRow("not_an_object", f"expected a JSON object, got {type(row).__name__}: {excerpt(raw)}", raw),
                )
                continue
            yield where, row


@register("jsonl")
class JsonlReader(RowReader):
    """JSON lines as records, with text (or messages), label, id and group fields mapped by name."""

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        return json_lines(self)


class JsonMapping(FieldMapping):
    json_path: str | None = None
    """Dotted key path to the array of rows (``data.items``); the top level when not given (a
    top-level object is one row: a file holding one dialogue)."""


SNIFF = 4096
"""Bytes looked at to tell a top-level object from an array."""


@register("json")
class JsonReader(RowReader):
    """Streams the array's items with ijson, so a multi-GB JSON file needs little memory."""

    Params: ClassVar[type[BaseModel]] = JsonMapping

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        import ijson

        json_path: str | None = self.params.json_path  # type: ignore[attr-defined]
        prefix = f"{json_path}.item" if json_path else "item"
        index = 0
        with self.open_binary() as handle:
            one_object = not json_path and handle.peek(SNIFF).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
            try:
                for index, row in enumerate(ijson.items(handle, "" if one_object else prefix, use_float=True), start=1):
                    where = str(self.path) if one_object else f"{self.path}:item {index}"
                    if not isinstance(row, dict):
                        yield (
                            where,
                            BadRow(
                                "not_an_object",
                                f"expected a JSON object, got {type(row).__name__}",
                                json.dumps(row, default=str),
                            ),
                        )
                        continue
                    yield where, row
            except ijson.JSONError as exc:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(self._error_position(), f"invalid JSON: {first_line}") from None
        if index == 0:
            where = f"{self.path}"
            raise InputError(where, f"no array at {json_path!r}" if json_path else "expected a top-level JSON array")

    def _error_position(self) -> str:
        """FILE:LINE of a syntax error (re-parsed with the json module, on the error path only)."""
        try:
            json.loads(self.path.read_text(encoding=self.encoding()))
        except json.JSONDecodeError as exc:
            return f"{self.path}:{exc.lineno}"
        except (OSError, UnicodeDecodeError):
            pass
        return str(self.path)
