"""What the web page shows of a release, read server-side from its own files: records filtered
and paged over the parquet files (a page holds ``limit`` rows, never a split), rejects with
their reasons and scores, augmented records beside their parents, and two versions compared.

Everything here reads a release the service built; the filters a client sends are values in
arrow compute calls, never code or patterns (``match_substring`` is a plain substring search).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.schema import parquet_class_labels

MAX_PAGE = 200
"""Rows one request may ask for."""
BATCH_ROWS = 4_096
"""Rows decoded at a time while filtering: memory stays flat whatever the split's size."""
MAX_EXAMPLES = 50
"""Ids listed per kind of difference when two versions are compared (all are counted)."""


def manifest_of(release_dir: Path) -> dict[str, Any]:
    return json.loads((release_dir / "manifest.json").read_text(encoding="utf-8"))


@dataclass
class RecordFilter:
    """What a client may narrow a split to; each is optional."""

    query: str = ""
    """A case-insensitive substring of the text or of any message's content."""
    label: str = ""
    source: str = ""
    """The record's ``source.dataset``."""
    min_chars: int | None = None
    max_chars: int | None = None
    """Characters of the text (of all message contents, for a chat)."""
    augmented: bool | None = None
    """Only derived records (``True``) or only originals (``False``)."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    matched: int
    total: int
    offset: int
    limit: int
    labels: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "matched": self.matched,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "labels": self.labels,
            "sources": self.sources,
        }


def split_files(release_dir: Path, manifest: dict[str, Any], split: str, config: str = "") -> list[Path]:
    """The parquet files of ``split`` (of one of the release's configs, with ``config``); raises
    ``KeyError`` for a split or config the release does not have."""
    if config:
        return [release_dir / manifest["configs"][config][split]["file"]]
    return [release_dir / name for name in manifest["splits"][split]["files"]]


EMPTY_TYPES = {
    "id": pa.string(),
    "text": pa.string(),
    "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
    "label": pa.string(),
    "source": pa.struct([("dataset", pa.string())]),
    "parent_id": pa.string(),
    "meta": pa.string(),
}


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column of the batch, or nulls where the file has none (a config's files hold only
    their own columns: the chat config is ``messages`` alone)."""
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(len(batch), EMPTY_TYPES[name])


def _chars(batch: pa.RecordBatch) -> np.ndarray:
    text = _column(batch, "text")
    lengths = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    messages = _column(batch, "messages")
    contents = pc.struct_field(pc.list_flatten(messages), "content")
    if len(contents):
        parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
        content_lengths = pc.fill_null(pc.utf8_length(contents), 0).to_numpy(zero_copy_only=False)
        lengths = lengths + np.bincount(parents, weights=content_lengths, minlength=len(batch)).astype(np.int64)
    return lengths


def _mask(batch: pa.RecordBatch, wanted: RecordFilter, label_ids: dict[str, int]) -> np.ndarray:
    keep = np.ones(len(batch), dtype=bool)
    if wanted.query:
        in_text = pc.fill_null(pc.match_substring(_column(batch, "text"), wanted.query, ignore_case=True), False)
        hit = in_text.to_numpy(zero_copy_only=False)
        messages = _column(batch, "messages")
        contents = pc.struct_field(pc.list_flatten(messages), "content")
        if len(contents):
            matches = pc.fill_null(pc.match_substring(contents, wanted.query, ignore_case=True), False)
            parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
            hit = hit | np.isin(np.arange(len(batch)), parents[matches.to_numpy(zero_copy_only=False)])
        keep &= hit
    if wanted.label:
        keep &= _has_label(_column(batch, "label"), wanted.label, label_ids)
    if wanted.source:
        datasets = pc.struct_field(_column(batch, "source"), "dataset")
        keep &= pc.fill_null(pc.equal(datasets, wanted.source), False).to_numpy(zero_copy_only=False)
    if wanted.min_chars is not None or wanted.max_chars is not None:
        chars = _chars(batch)
        if wanted.min_chars is not None:
            keep &= chars >= wanted.min_chars
        if wanted.max_chars is not None:
            keep &= chars <= wanted.max_chars
    if wanted.augmented is not None:
        derived = pc.is_valid(_column(batch, "parent_id")).to_numpy(zero_copy_only=False)
        keep &= derived if wanted.augmented else ~derived
    return keep


def _has_label(column: pa.Array, label: str, label_ids: dict[str, int]) -> np.ndarray:
    inner = column.type.value_type if pa.types.is_list(column.type) else column.type
    value: Any = label
    if pa.types.is_integer(inner):  # class ids: by the file's names, or given as an id
        value = label_ids.get(label, -2) if label_ids else (int(label) if label.isdigit() else -2)
    if pa.types.is_list(column.type):
        flat = pc.list_flatten(column)
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        hits = pc.fill_null(pc.equal(flat, value), False).to_numpy(zero_copy_only=False)
        return np.isin(np.arange(len(column)), parents[hits])
    return pc.fill_null(pc.equal(column, value), False).to_numpy(zero_copy_only=False)


ROW_FIELDS = ("id", "text", "messages", "label", "group", "split", "source", "meta", "parent_id", "augmentation")


def _named(row: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    """A parquet row as the page shows it: every record field (none where a config's file has no
    such column), label names, meta and augmentation as objects."""
    row = dict.fromkeys(ROW_FIELDS) | row
    label = row.get("label")
    if names is not None and label is not None:
        row["label"] = [names[i] for i in label] if isinstance(label, list) else names[label]
    row["meta"] = json.loads(row["meta"]) if row.get("meta") else {}
    row["augmentation"] = json.loads(row["augmentation"]) if row.get("augmentation") else None
    if row.get("messages"):
        row["messages"] = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
    return row


def _batches(files: list[Path], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    for path in files:
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def records_page(
    release_dir: Path, split: str, wanted: RecordFilter, offset: int = 0, limit: int = 50, config: str = ""
) -> Page:
    """One page of ``split``'s records that pass ``wanted``, with how many pass in all."""
    manifest = manifest_of(release_dir)
    files = split_files(release_dir, manifest, split, config)
    limit = max(1, min(limit, MAX_PAGE))
    names = parquet_class_labels(pq.read_schema(files[0])).get("label") if files else None
    label_ids = {name: i for i, name in enumerate(names or [])}
    rows: list[dict[str, Any]] = []
    matched = total = 0
    sources: set[str] = set()
    for batch in _batches(files):
        total += len(batch)
        sources.update(s for s in pc.unique(pc.struct_field(_column(batch, "source"), "dataset")).to_pylist() if s)
        indices = np.flatnonzero(_mask(batch, wanted, label_ids))
        start = max(0, offset - matched)
        wanted_here = indices[start : start + limit - len(rows)] if len(rows) < limit else indices[:0]
        if len(wanted_here):
            rows += [_named(row, names) for row in batch.take(pa.array(wanted_here)).to_pylist()]
        matched += len(indices)
    return Page(rows, matched, total, offset, limit, manifest.get("label_names") or [], sorted(sources))


def augmented_pairs(release_dir: Path, split: str, offset: int = 0, limit: int = 20) -> Page:
    """Derived records of ``split`` beside the parent each came from (with how it was made)."""
    page = records_page(release_dir, split, RecordFilter(augmented=True), offset, limit)
    parents = _rows_by_id(release_dir, manifest_of(release_dir), split, sorted({row["parent_id"] for row in page.rows}))
    for row in page.rows:
        row["parent"] = parents.get(row["parent_id"])
    return page


def discarded_variants(release_dir: Path, split: str, offset: int = 0, limit: int = 20) -> Page:
    """Records of ``split`` whose augmenter discarded variants of them, each with those variants
    (texts, reason, score), which the augmenter keeps in the record's ``meta[<step>]``: a parent
    whose every variant was discarded has no derived record to be shown beside."""
    manifest = manifest_of(release_dir)
    files = split_files(release_dir, manifest, split)
    names = parquet_class_labels(pq.read_schema(files[0])).get("label") if files else None
    limit = max(1, min(limit, MAX_PAGE))
    rows: list[dict[str, Any]] = []
    matched = total = 0
    for batch in _batches(files):
        total += len(batch)
        found = pc.fill_null(pc.match_substring(_column(batch, "meta"), '"discarded":'), False)
        hits = np.flatnonzero(found.to_numpy(zero_copy_only=False))
        for row in batch.take(pa.array(hits, type=pa.int64())).to_pylist():
            row = _named(row, names)
            row["discarded"] = [
                variant
                for value in row["meta"].values()
                if isinstance(value, dict)
                for variant in value.get("discarded", [])
            ]
            if not row["discarded"]:
                continue
            if offset <= matched < offset + limit:
                rows.append(row)
            matched += 1
    return Page(rows, matched, total, offset, limit)


def _rows_by_id(release_dir: Path, manifest: dict[str, Any], split: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    files = split_files(release_dir, manifest, split)
    names = parquet_class_labels(pq.read_schema(files[0])).get("label")
    wanted = pa.array(ids)
    found: dict[str, dict[str, Any]] = {}
    for batch in _batches(files):
        hits = pc.is_in(_column(batch, "id"), value_set=wanted)
        for row in batch.filter(hits).to_pylist():
            found[row["id"]] = _named(row, names)
    return found


def record_story(release_dir: Path, record_id: str) -> dict[str, Any]:
    """One record as the release holds it, wherever it is: its split, every field (source and
    fetch time, each step's scores in ``meta``, how it was made if derived), the record it was
    derived from and those derived from it. Raises ``KeyError`` when no split holds it."""
    manifest = manifest_of(release_dir)
    record = None
    children: list[dict[str, Any]] = []
    for split in manifest["splits"]:
        files = split_files(release_dir, manifest, split)
        names = parquet_class_labels(pq.read_schema(files[0])).get("label") if files else None
        for batch in _batches(files):
            hits = pc.or_(
                pc.fill_null(pc.equal(_column(batch, "id"), record_id), False),
                pc.fill_null(pc.equal(_column(batch, "parent_id"), record_id), False),
            )
            for row in batch.filter(hits).to_pylist():
                if row["id"] == record_id:
                    record = _named(row, names)
                else:
                    children.append(_named(row, names))
    if record is None:
        raise KeyError(record_id)
    parent_id = record["parent_id"]
    parent = _rows_by_id(release_dir, manifest, record["split"], [parent_id]).get(parent_id) if parent_id else None
    return {"record": record, "parent": parent, "derived": children}


def reject_counts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step that rejected anything, by stage, with its count per reason."""
    out = []
    for step, reasons in sorted(manifest["accounting"]["rejected"].items()):
        stage, _, name = step.partition(".")
        out.append({"step": step, "stage": stage, "name": name, "reasons": dict(sorted(reasons.items()))})
    return out


def rejects_page(release_dir: Path, step: str, reason: str = "", offset: int = 0, limit: int = 20) -> Page:
    """Rejected records of ``step`` (of one ``reason``), each with its reason and the scores the
    step stored in its ``meta`` (a rejected record carries its full scores)."""
    manifest = manifest_of(release_dir)
    file = f"{step}.jsonl"
    if file not in manifest["rejects"]:
        raise KeyError(step)
    limit = max(1, min(limit, MAX_PAGE))
    rows: list[dict[str, Any]] = []
    matched = total = 0
    with (release_dir / "rejects" / file).open(encoding="utf-8") as handle:
        for line in handle:
            total += 1
            reject = json.loads(line)
            if reason and reject["reason"] != reason:
                continue
            if offset <= matched < offset + limit:
                meta = reject["record"].get("meta") or {}
                scores = meta.get(step.partition(".")[2])
                rows.append({**reject, "scores": scores if isinstance(scores, dict) else {}})
            matched += 1
    return Page(rows, matched, total, offset, limit)


def _digest(row: dict[str, Any]) -> str:
    content = {key: row[key] for key in ("text", "messages", "label")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _index(release_dir: Path) -> tuple[dict[str, tuple[str, str]], dict[str, Counter[str]]]:
    """Each record id's (split, content digest), and each split's label counts."""
    manifest = manifest_of(release_dir)
    index: dict[str, tuple[str, str]] = {}
    labels: dict[str, Counter[str]] = {}
    for split in manifest["splits"]:
        files = split_files(release_dir, manifest, split)
        names = parquet_class_labels(pq.read_schema(files[0])).get("label") if files else None
        counts: Counter[str] = Counter()
        for batch in _batches(files, ["id", "text", "messages", "label"]):
            for row in batch.to_pylist():
                row = _named(row, names)
                index[row["id"]] = (split, _digest(row))
                label = row["label"]
                counts.update(label if isinstance(label, list) else [label if label is not None else "(none)"])
        labels[split] = counts
    return index, labels


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, inner in enumerate(value):
            out.update(_flatten(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Key paths whose value differs between two build configs."""
    left, right = _flatten(old), _flatten(new)
    return [
        {"key": key, "old": left.get(key), "new": right.get(key)}
        for key in sorted(left.keys() | right.keys())
        if left.get(key) != right.get(key)
    ]


def compare_releases(old_dir: Path, new_dir: Path) -> dict[str, Any]:
    """What changed from ``old_dir`` to ``new_dir``: records added, removed and changed (same id,
    other text, messages or label), records whose split changed, each split's label counts in
    both, and the config diff. Each kind is counted in full and listed up to ``MAX_EXAMPLES``."""
    old_index, old_labels = _index(old_dir)
    new_index, new_labels = _index(new_dir)
    added = sorted(new_index.keys() - old_index.keys())
    removed = sorted(old_index.keys() - new_index.keys())
    common = old_index.keys() & new_index.keys()
    changed = sorted(i for i in common if old_index[i][1] != new_index[i][1])
    moved = sorted(i for i in common if old_index[i][0] != new_index[i][0])
    shift = {}
    for split in sorted(old_labels.keys() | new_labels.keys()):
        before, after = old_labels.get(split, Counter()), new_labels.get(split, Counter())
        shift[split] = {
            label: {"old": before.get(label, 0), "new": after.get(label, 0)}
            for label in sorted(before.keys() | after.keys())
        }
    return {
        "added": {"count": len(added), "examples": added[:MAX_EXAMPLES]},
        "removed": {"count": len(removed), "examples": removed[:MAX_EXAMPLES]},
        "changed": {"count": len(changed), "examples": changed[:MAX_EXAMPLES]},
        "split_changed": {
            "count": len(moved),
            "examples": [{"id": i, "old": old_index[i][0], "new": new_index[i][0]} for i in moved[:MAX_EXAMPLES]],
        },
        "labels": shift,
        "config": config_diff(manifest_of(old_dir)["config"], manifest_of(new_dir)["config"]),
    }


RUN_GLOBS = ("jobs/*/model/report.json", "*/report.json", "runs/*/report.json", "runs/*/*/report.json")
"""Where a workspace holds training runs: train jobs' output, and runs a person put beside the
releases (``corpusmill demo``'s ``model`` and ``chat-model``, or ``runs/…``)."""


def training_runs(workspace: Path) -> list[dict[str, Any]]:
    """Each training run in ``workspace`` with its task, model and test metrics (base and tuned)."""
    out = []
    for pattern in RUN_GLOBS:
        for report_path in sorted(workspace.glob(pattern)):
            if report_path.is_symlink() or not report_path.resolve().is_relative_to(workspace.resolve()):
                continue
            try:
                report = json.loads(report_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(report, dict) or "test" not in report:
                continue
            base = report.get("base") or {}
            out.append(
                {
                    "run": report_path.parent.relative_to(workspace).as_posix(),
                    "task": report.get("task"),
                    "model": report.get("model") or report.get("base_model"),
                    "method": report.get("method"),
                    "release": report.get("release"),
                    "test": report["test"].get("metrics", {}),
                    "base": base.get("metrics", {}) if isinstance(base, dict) else {},
                    "has_report": (report_path.parent / "report.md").is_file(),
                }
            )
    return out
