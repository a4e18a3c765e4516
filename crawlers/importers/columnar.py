"""Parquet (streamed by row group) and Hugging Face datasets (``save_to_disk`` dirs or hub ids)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.schema import Record, arrow_schema, class_labels, from_row, parquet_class_labels
from crawlers.importers.base import BadRow, RowReader, raw_row

BATCH_ROWS = 4096
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


RECORD_COLUMNS = frozenset(arrow_schema(multi_label=False).names)


class ColumnarReader(RowReader):
    """Tables whose columns are corpusmill's own (a release's parquet) are read back as records
    when no text or messages column is named; other tables go through the column mapping."""

    records_mode = False

    def _choose_mode(self, names: list[str]) -> list[str]:
        """The columns to read."""
        self.records_mode = set(names) >= RECORD_COLUMNS and not (self.mapping.text or self.mapping.chat)
        if self.records_mode:
            return sorted(RECORD_COLUMNS)
        missing = [column for column in self.mapping.columns if column not in names]
        if missing:
            raise InputError(str(self.path), f"unknown column {missing[0]!r} (columns: {', '.join(names)})")
        return self.mapping.columns

    def required_columns(self) -> list[str]:
        return [] if self.records_mode else self.mapping.columns

    def to_record(self, row: dict[str, Any], where: str) -> Record:
        if not self.records_mode:
            return super().to_record(row, where)
        record = from_row(row)
        return record.model_copy(update={"source": record.source.model_copy(update={"dataset": self.dataset})})


class _ClassLabelNames:
    """Turns a row's ``ClassLabel`` indices (as ``datasets`` stores labels, and corpusmill's own
    releases too) back into their names, so a label imports as ``"card_arrival"``, not ``11``;
    ``-1``, the ``datasets`` mark for no label, becomes none."""

    def __init__(self, names: dict[str, list[str]], columns: list[str]) -> None:
        self.names = {column: labels for column, labels in names.items() if column in columns}

    def __call__(self, row: dict[str, Any]) -> dict[str, Any] | BadRow:
        for column, labels in self.names.items():
            value = row.get(column)
            indices = value if isinstance(value, list) else [value]
            wrong = [i for i in indices if i is not None and (not isinstance(i, int) or not -1 <= i < len(labels))]
            if wrong:
                message = f"column {column!r}: class index {wrong[0]!r} is not one of its {len(labels)} labels"
                return BadRow("bad_class_label", message, raw_row(row))
            names = [labels[i] if i is not None and i >= 0 else None for i in indices]
            row[column] = names if isinstance(value, list) else names[0]
        return row


@register("parquet")
class ParquetReader(ColumnarReader):
    """Parquet rows as records, read in row-group batches."""

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise InputError(str(self.path), "cannot read: No such file or directory") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(str(self.path), f"not a parquet file: {exc}") from None
        columns = self._choose_mode(parquet.schema_arrow.names)
        named = _ClassLabelNames(parquet_class_labels(parquet.schema_arrow), columns)
        number = 0
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self.path}:row {number + 1}", f"corrupt parquet data: {exc}") from None
            if batch is None:
                return
            for row in batch.to_pylist():
                number += 1
                yield f"{self.path}:row {number}", named(row)


@register("hf")
class HfDatasetReader(ColumnarReader):
    """A ``datasets`` ``save_to_disk`` directory (all splits, or one), or a hub id when a hub is
    reachable; with ``HF_HUB_OFFLINE=1`` or no network the error says so at once."""

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        for split, dataset in self._splits():
            columns = self._choose_mode(dataset.column_names)
            named = _ClassLabelNames(class_labels(dataset.features.to_dict()), columns)
            for number, row in enumerate(dataset.select_columns(columns).iter(batch_size=1), start=1):
                yield f"{self.path}[{split}]:row {number}", named({key: value[0] for key, value in row.items()})

    def _splits(self) -> list[tuple[str, Any]]:
        import datasets

        if self.path.exists():
            try:
                loaded = datasets.load_from_disk(str(self.path))
            except (FileNotFoundError, ValueError) as exc:
                raise InputError(str(self.path), f"not a saved Hugging Face dataset: {exc}") from None
        else:
            name = str(self.uri or self.path)
            if not HUB_ID.match(name):
                raise InputError(name, "cannot read: No such file or directory")
            if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
                raise InputError(
                    name,
                    "not on disk and the Hugging Face hub is offline (HF_HUB_OFFLINE=1); pass a save_to_disk directory",
                )
            try:
                loaded = datasets.load_dataset(name)
            except Exception as exc:
                raise InputError(
                    name,
                    f"cannot load from the Hugging Face hub ({type(exc).__name__}); "
                    "pass a save_to_disk directory when offline",
                ) from None
        if isinstance(loaded, datasets.DatasetDict):
            return list(loaded.items())
        return [("data", loaded)]
