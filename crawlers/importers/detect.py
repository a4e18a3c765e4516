"""Choosing an importer from a path: its extension first, then a look at its first line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.errors import InputError
from corpusmill.registry import get_step, register
from corpusmill.schema import Record
from corpusmill.steps import Reader
from crawlers.importers.columnar import HUB_ID

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".warc": "warc",
    ".wet": "warc",
    ".arc": "warc",
    ".json": "json",
}
HF_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")


def _rows(path: Path, limit: int) -> list[dict[str, Any] | None]:
    """The first ``limit`` non-blank lines, each parsed as a JSON object (None where not one)."""
    rows: list[dict[str, Any] | None] = []
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                row = None
            rows.append(row if isinstance(row, dict) else None)
            if len(rows) == limit:
                break
    return rows


def sniff_jsonl(path: Path) -> str:
    """Chat formats and corpusmill's own records are told apart by their first row's keys."""
    row = next(iter(_rows(path, 1)), None) or {}
    if "messages" in row and isinstance(row["messages"], list) and "source" not in row:
        return "openai"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    if {"id", "source"} <= set(row) and ("text" in row or "messages" in row):
        return "records"
    return "jsonl"


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf" if any((path / marker).exists() for marker in HF_MARKERS) else "dir"
    if not path.exists():
        if HUB_ID.match(str(path)) and "/" in str(path) and not path.suffix:
            return "hf"
        raise InputError(str(path), "cannot read: No such file or directory")
    name = path.name.lower()
    for suffix in (".warc.gz", ".wet.gz", ".arc.gz"):
        if name.endswith(suffix):
            return "warc"
    fmt = SUFFIXES.get(path.suffix.lower())
    first_two = _rows(path, 2) if fmt == "json" else []
    if len(first_two) == 2 and None not in first_two:
        return sniff_jsonl(path)  # JSON Lines saved as .json: each line is a whole object
    return fmt or sniff_jsonl(path)


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    path: Path
    format: str = "auto"


@register("import")
class ImportSource(Reader):
    """Any supported format, detected from the path (or named with ``format``), mapped by the
    same options as the format's own reader."""

    Params: ClassVar[type[BaseModel]] = ImportParams

    def __init__(self, dataset: str, on_error: str = "raise", uri: str | None = None, **params: Any) -> None:
        super().__init__(dataset=dataset, on_error=on_error, uri=uri, **params)  # type: ignore[arg-type]
        chosen = self.params.format  # type: ignore[attr-defined]
        if chosen == "auto":
            chosen = "json" if "json_path" in params else detect_format(self.params.path)  # type: ignore[attr-defined]
            if chosen == "prompt-completion" and "prompt" in params:  # the columns are mapped by name instead
                chosen = "jsonl"
        self.format = chosen
        options = {key: value for key, value in params.items() if key != "format"}
        try:
            cls = get_step("source", self.format)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        self.inner: Reader = cls(dataset=dataset, on_error=on_error, uri=uri, **options)  # type: ignore[assignment]
        self.stats = self.inner.stats
        self.rejects = self.inner.rejects

    def reset(self) -> None:
        self.inner.reset()
        self.stats, self.rejects = self.inner.stats, self.inner.rejects

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def read(self) -> Iterator[Record]:
        self._share_sinks()
        return self.inner.read()

    def line_batches(self) -> Iterator[list[tuple[str, str]]]:
        self._share_sinks()
        return self.inner.line_batches()

    def _share_sinks(self) -> None:
        self.inner.label = self.label
        self.inner.reject_sink = self.reject_sink
