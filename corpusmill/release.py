"""Release writer and verifier.

A release is ``<output_dir>/<name>/<version>/``::

    data/<split>-00000-of-0000N.parquet   Hugging Face hub layout
    jsonl/<split>.jsonl                   the same records, one JSON object a line
    rejects/<step>.jsonl                  every rejected record with its reason
    plots/*.png                           figures embedded in the card
    README.md                             Hugging Face dataset card
    manifest.json                         checksums, accounting, config, versions

Data files are deterministic: the same config, inputs and seed give the same bytes. Only
``manifest.json`` carries the build time. The directory is built under a temp name and renamed
into place, so a release either exists whole or not at all, and is never overwritten.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from corpusmill import __version__
from corpusmill.card import plot_labels, plot_lengths, plot_tokens, render_card
from corpusmill.chatformats import WRITERS, ChatFormatError
from corpusmill.config import BuildConfig
from corpusmill.errors import CorpusmillError, ReleaseError
from corpusmill.io import atomic_directory, count_lines, read_records, sha256_file, sha256_json, write_json
from corpusmill.reports import SegmentResult, SplitSummary, StepReport
from corpusmill.schema import FULL_MESSAGE_TYPE, Record, arrow_schema, to_row
from corpusmill.tokens import count_tokens

ROW_GROUP_SIZE = 10_000
LIBRARIES = ("pydantic", "pyarrow", "matplotlib", "rich", "typer", "pyyaml")
MANIFEST = "manifest.json"


def split_order(configured: list[str], names: set[str]) -> list[str]:
    """Configured splits first, in config order, then any others alphabetically."""
    return [n for n in configured if n in names] + sorted(names - set(configured))


def existing_release_key(release_dir: Path) -> str | None:
    try:
        return json.loads((release_dir / MANIFEST).read_text(encoding="utf-8")).get("build_key")
    except (OSError, ValueError):
        return None


def write_release(
    config: BuildConfig,
    build_key: str,
    records_path: Path,
    segments: list[SegmentResult],
    work_dir: Path,
    inputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write ``config.release_dir`` atomically from the last segment's records and return its
    manifest; ``inputs`` names and digests what the readers read (hashed once, by the executor)."""
    release_dir = config.release_dir
    steps = [step for segment in segments for step in segment.steps]
    summaries: dict[str, SplitSummary] = {}
    multi_label = full_messages = False
    for record in read_records(records_path):
        if record.split is None:
            raise ReleaseError(f"{records_path}: record {record.id} has no split")
        summaries.setdefault(record.split, SplitSummary(record.split)).add(record)
        multi_label = multi_label or isinstance(record.label, list)
        full_messages = full_messages or any(message.has_extras for message in record.messages or ())
    order = split_order(config.split_names, set(summaries))
    ordered = {name: summaries[name] for name in order}
    for name in config.split_names:
        ordered.setdefault(name, SplitSummary(name))
    if not summaries:
        raise ReleaseError(f"{release_dir}: no records left to release (every input record was rejected)")
    label_names = sorted(set().union(*(summary.labels for summary in ordered.values())))
    schema = arrow_schema(multi_label, label_names, full_messages)
    tokens = None
    if config.release.tokenizer:  # before anything is written: a tokenizer that fails to load leaves nothing
        tokens = count_tokens(read_records(records_path), config.release.tokenizer, config.release.max_tokens, order)

    release_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(release_dir) as tmp:
        shape_configs = _ShapeConfigs(tmp, schema) if _holds_both_shapes(ordered) else None
        _write_data(records_path, ordered, schema, label_names, config.release.max_rows_per_shard, tmp, shape_configs)
        shapes = shape_configs.files(list(ordered)) if shape_configs else {}
        reject_counts = _copy_rejects(segments, work_dir, tmp)
        exports = _write_exports(records_path, config.release.exports, list(ordered), tmp)
        plots = {"lengths": plot_lengths(ordered, tmp / "plots" / "lengths.png")}
        if any(summary.labels for summary in ordered.values()):
            plots["labels"] = plot_labels(ordered, tmp / "plots" / "labels.png")
        if tokens is not None:
            plots["tokens"] = plot_tokens(tokens, tmp / "plots" / "tokens.png")
        accounting = account_for(steps, segments[-1].records_out)
        configs = {shape: {split: entry["file"] for split, entry in files.items()} for shape, files in shapes.items()}
        for fmt, files in exports.items():
            configs[fmt] = {split: entry["parquet"] for split, entry in files.items() if entry["written"]}
        token_summary = tokens.to_dict() if tokens is not None else None
        card = render_card(config, ordered, schema, steps, accounting, plots, configs, token_summary)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        manifest = {
            "format": "corpusmill-release/1",
            "name": config.release.name,
            "version": config.release.version,
            "build_key": build_key,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "corpusmill_version": __version__,
            "git_commit": _git_commit(),
            "python": platform.python_version(),
            "libraries": _library_versions(),
            "seed": config.seed,
            "config": config.as_dict(),
            "config_sha256": sha256_json(config.as_dict()),
            "inputs": inputs,
            "multi_label": multi_label,
            "label_names": label_names,
            "splits": {
                name: {
                    "records": summary.records,
                    "files": summary.files,
                    "jsonl": f"jsonl/{name}.jsonl",
                    "augmented": summary.augmented,
                }
                for name, summary in ordered.items()
            },
            "accounting": accounting,
            "rejects": reject_counts,
            "exports": exports,
            "configs": shapes,
            "tokens": token_summary,
            "reports": {step.label: step.report for step in steps if step.report},
            "segments": [
                {
                    "name": segment.name,
                    "records_out": segment.records_out,
                    "resumed": segment.resumed,
                    "steps": [step.to_dict() for step in segment.steps],
                }
                for segment in segments
            ],
            "files": _checksums(tmp),
        }
        write_json(tmp / MANIFEST, manifest)
        verify_release(tmp)  # published only whole and verified
    return manifest


def _write_data(
    records_path: Path,
    summaries: dict[str, SplitSummary],
    schema: pa.Schema,
    label_names: list[str],
    max_rows: int,
    out: Path,
    shape_configs: _ShapeConfigs | None = None,
) -> None:
    """Stream the records into per-split parquet shards and JSONL mirrors (and, for a release of
    both shapes, the ``text``/``chat`` configs' files), each record made a row once, its labels
    as their indices in ``label_names``."""
    multi_label = pa.types.is_list(schema.field("label").type)
    full_messages = _has_full_messages(schema)
    label_ids = {name: index for index, name in enumerate(label_names)} if label_names else None
    (out / "data").mkdir()
    (out / "jsonl").mkdir()
    shard_counts = {name: max(1, -(-summary.records // max_rows)) for name, summary in summaries.items()}
    for name, summary in summaries.items():
        summary.files = [
            f"data/{name}-{index:05d}-of-{shard_counts[name]:05d}.parquet" for index in range(shard_counts[name])
        ]
    writers: dict[str, _SplitWriter] = {
        name: _SplitWriter(out, summary, schema, max_rows) for name, summary in summaries.items()
    }
    try:
        for record in read_records(records_path):
            if multi_label and isinstance(record.label, str):
                record.label = [record.label]
            row = to_row(record, label_ids, full_messages)
            writers[record.split].add(record, row)  # type: ignore[index]
            if shape_configs is not None:
                shape_configs.add(record, row)
    finally:
        for writer in writers.values():
            writer.close()
        if shape_configs is not None:
            shape_configs.close()


def _has_full_messages(schema: pa.Schema) -> bool:
    """Whether a release's messages carry every field (see ``FULL_MESSAGE_TYPE``)."""
    return schema.field("messages").type.value_type.get_field_index("tool_calls") >= 0


class _SplitWriter:
    """One split's parquet shards (rotated every ``max_rows``) and its JSONL file."""

    def __init__(self, out: Path, summary: SplitSummary, schema: pa.Schema, max_rows: int) -> None:
        self.out, self.summary, self.schema, self.max_rows = out, summary, schema, max_rows
        self.files = summary.files
        self.jsonl = (out / "jsonl" / f"{summary.name}.jsonl").open("w", encoding="utf-8")
        self.rows: list[dict[str, Any]] = []
        self.in_shard = 0
        self.shard = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, record: Record, row: dict[str, Any]) -> None:
        self.jsonl.write(record.to_json() + "\n")
        self.rows.append(row)
        if len(self.rows) >= ROW_GROUP_SIZE or self.in_shard + len(self.rows) >= self.max_rows:
            self._flush()

    def _flush(self) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out / self.files[self.shard], self.schema, compression="zstd")
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=self.schema)
            self.writer.write_table(table)
            self.summary.nbytes += table.nbytes
            self.in_shard += len(self.rows)
            self.rows = []
        if self.in_shard >= self.max_rows:
            self.writer.close()
            self.writer = None
            self.shard += 1
            self.in_shard = 0

    def close(self) -> None:
        self.jsonl.close()
        if self.rows or self.writer is not None or self.shard < len(self.files):
            self._flush()
        if self.writer is not None:
            self.writer.close()


EXPORT_SCHEMAS = {
    "openai": pa.schema(
        [
            ("messages", pa.list_(FULL_MESSAGE_TYPE)),
            ("tools", pa.string()),
            ("parallel_tool_calls", pa.bool_()),
        ]
    ),
    "sharegpt": pa.schema(
        [
            pa.field("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
            ("tools", pa.string()),
        ]
    ),
    "alpaca": pa.schema(
        [
            ("instruction", pa.string()),
            ("input", pa.string()),
            ("output", pa.string()),
            ("system", pa.string()),
            ("history", pa.list_(pa.list_(pa.string()))),
        ]
    ),
    "prompt-completion": pa.schema(
        [
            ("prompt", pa.list_(FULL_MESSAGE_TYPE)),
            ("completion", pa.list_(FULL_MESSAGE_TYPE)),
            ("tools", pa.string()),
        ]
    ),
    "messages": pa.schema([("messages", pa.list_(FULL_MESSAGE_TYPE)), ("tools", pa.string())]),
}
"""Each export's rows as parquet columns (a key a row lacks is null there), so that every export
is a ``datasets`` config: ``datasets`` picks one builder for all of a card's configs from the
default config's files, which are parquet, so the JSONL files alone could not be configs.
``tools`` (each function's JSON schema, whose keys differ from tool to tool) is a JSON string
there, as LLaMA-Factory's ShareGPT files hold it."""

EXPORT_BATCH = 10_000
"""Export rows turned into a parquet row group at once."""


class _BatchedParquet:
    """Rows to one parquet file, a row group of :data:`EXPORT_BATCH` at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema, self.rows, self.count = schema, [], 0
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) == EXPORT_BATCH:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(pa.Table.from_pylist(self.rows, self.schema))
        self.rows = []

    def close(self) -> None:
        if self.rows or not self.count:  # an empty file still holds the schema
            self._flush()
        self.writer.close()


def _holds_both_shapes(summaries: dict[str, SplitSummary]) -> bool:
    chats = sum(summary.chat for summary in summaries.values())
    return 0 < chats < sum(summary.records for summary in summaries.values())


class _ShapeConfigs:
    """For a release holding both text and chat records, each shape as a config with only its own
    columns: ``configs/chat/<split>.parquet`` with ``messages`` alone (a trainer given the default
    config's rows meets text rows whose ``messages`` is null: TRL's ``SFTTrainer`` fails on them)
    and ``configs/text/<split>.parquet`` without ``messages``. A release of one shape needs none:
    its default config is already that."""

    def __init__(self, out: Path, schema: pa.Schema) -> None:
        self.out = out
        self.schemas = {"text": pa.schema([f for f in schema if f.name != "messages"], metadata=schema.metadata)}
        self.schemas["chat"] = pa.schema([schema.field("messages")])
        self.writers: dict[tuple[str, str], _BatchedParquet] = {}

    def add(self, record: Record, row: dict[str, Any]) -> None:
        shape = "text" if record.messages is None else "chat"
        key = (shape, record.split or "")
        if key not in self.writers:
            (self.out / "configs" / shape).mkdir(parents=True, exist_ok=True)
            self.writers[key] = _BatchedParquet(self.out / self._file(*key), self.schemas[shape])
        self.writers[key].add({"messages": row["messages"]} if shape == "chat" else row)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def files(self, splits: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """Per shape and split (in release order), its file and record count, for the manifest."""
        return {
            shape: {
                split: {"file": self._file(shape, split), "records": self.writers[(shape, split)].count}
                for split in splits
                if (shape, split) in self.writers
            }
            for shape in self.schemas
        }

    @staticmethod
    def _file(shape: str, split: str) -> str:
        return f"configs/{shape}/{split}.parquet"


def _write_exports(records_path: Path, formats: list[str], splits: list[str], out: Path) -> dict[str, Any]:
    """Chat records as OpenAI / ShareGPT / Alpaca files, checked by the importers' own rules:
    ``exports/<format>/<split>.jsonl`` for trainers and APIs that take the format, and the same
    rows as ``<split>.parquet`` for ``load_dataset(release, "<format>")``.

    Text records, and chats a format cannot express (a tool turn in ShareGPT, say), are counted
    as skipped with the reason.
    """
    summary: dict[str, Any] = {}
    for fmt in formats:
        folder = out / "exports" / fmt
        folder.mkdir(parents=True)
        handles = {split: (folder / f"{split}.jsonl").open("w", encoding="utf-8") for split in splits}
        tables = {split: _BatchedParquet(folder / f"{split}.parquet", EXPORT_SCHEMAS[fmt]) for split in splits}
        counts = {
            split: {"file": f"exports/{fmt}/{split}.jsonl", "parquet": f"exports/{fmt}/{split}.parquet"}
            | {"written": 0, "skipped": Counter()}
            for split in splits
        }
        try:
            for record in read_records(records_path):
                entry = counts[record.split]  # type: ignore[index]
                if record.messages is None:
                    entry["skipped"]["not_chat"] += 1
                    continue
                messages = [m.model_dump() for m in record.messages]
                try:
                    row = WRITERS[fmt](messages, record.meta)
                except ChatFormatError as exc:
                    entry["skipped"][exc.reason] += 1
                    continue
                handles[record.split].write(json.dumps(row, ensure_ascii=False) + "\n")  # type: ignore[index]
                entry["written"] += 1
                if isinstance(row.get("tools"), list):
                    row = {**row, "tools": json.dumps(row["tools"], ensure_ascii=False)}
                tables[record.split].add(row)  # type: ignore[index]
        finally:
            for handle in handles.values():
                handle.close()
            for table in tables.values():
                table.close()
        summary[fmt] = {
            split: {**entry, "skipped": dict(sorted(entry["skipped"].items()))} for split, entry in counts.items()
        }
    return summary


def _copy_rejects(segments: list[SegmentResult], work_dir: Path, out: Path) -> dict[str, int]:
    """Copy each step's rejects file; every step gets one, empty when it dropped nothing."""
    counts = {}
    (out / "rejects").mkdir()
    for segment in segments:
        for step in segment.steps:
            source = work_dir / segment.name / "rejects" / step.rejects_file
            target = out / "rejects" / step.rejects_file
            if source.exists():
                shutil.copyfile(source, target)
            else:
                target.touch()
            with target.open("rb") as handle:
                counts[step.rejects_file] = sum(1 for _ in handle)
    return counts


def account_for(steps: list[StepReport], released: int) -> dict[str, Any]:
    """in = (released - augmented) + rejected, with rejections broken down by step and reason.

    Records come in through the readers (steps of kind ``source``) and are added by steps that
    create records (``added``: augmenters)."""
    input_records = sum(step.stats.total for step in steps if step.kind == "source")
    rejected = {step.label: dict(sorted(step.stats.dropped.items())) for step in steps if step.stats.dropped}
    augmented = sum(step.stats.added for step in steps)
    rejected_total = sum(sum(reasons.values()) for reasons in rejected.values())
    return {
        "input_records": input_records,
        "released_records": released,
        "augmented_records": augmented,
        "rejected_total": rejected_total,
        "rejected": rejected,
        "balanced": input_records == released - augmented + rejected_total,
    }


def _checksums(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(directory).as_posix(): {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# --- verify ------------------------------------------------------------------------------------


def verify_release(release_dir: Path) -> dict[str, Any]:
    """Recompute every checksum and count, and re-read every record; raise :class:`ReleaseError`
    (one line) at the first mismatch.

    The parquet shards and the JSONL mirror are compared record by record, so an edited record
    is caught even when its file's sha256 was updated in the manifest. Every path the manifest
    names must stay inside the release.
    """
    manifest_path = release_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReleaseError(f"{manifest_path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ReleaseError(f"{manifest_path}: not valid JSON: {exc}") from None
    try:
        _verify(release_dir, manifest)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        detail = f"missing key {exc.args[0]!r}" if isinstance(exc, KeyError) else f"malformed ({exc})"
        raise ReleaseError(f"{manifest_path}: not a corpusmill manifest: {detail}") from None
    except (OSError, pa.ArrowException) as exc:
        raise ReleaseError(f"{release_dir}: unreadable release file: {exc}") from None
    return manifest


def _inside(release_dir: Path, name: str) -> Path:
    """The release file ``name`` names, refused when it would lie outside the release."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ReleaseError(f"{release_dir / MANIFEST}: file path {name!r} lies outside the release")
    path = release_dir / name
    if not path.resolve().is_relative_to(release_dir.resolve()):
        raise ReleaseError(f"{release_dir / MANIFEST}: file path {name!r} lies outside the release")
    return path


def _check_rows(release_dir: Path, file: str, expected: int) -> None:
    rows = pq.ParquetFile(_inside(release_dir, file)).metadata.num_rows
    if rows != expected:
        raise ReleaseError(f"{release_dir / file}: {rows} rows, manifest says {expected}")


def _verify(release_dir: Path, manifest: dict[str, Any]) -> None:
    if not isinstance(manifest, dict):
        raise ReleaseError(f"{release_dir / MANIFEST}: not a corpusmill manifest: not a JSON object")
    manifest_path = release_dir / MANIFEST
    listed = manifest["files"]
    present = {p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file()}
    for name in sorted(present - set(listed) - {MANIFEST}):
        raise ReleaseError(f"{release_dir / name}: file is not listed in the manifest")
    for name, expected in sorted(listed.items()):
        path = _inside(release_dir, name)
        if not path.is_file():
            raise ReleaseError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != expected["sha256"]:
            raise ReleaseError(f"{path}: sha256 does not match the manifest")

    label_names = manifest.get("label_names")  # releases before ClassLabel labels have none
    label_ids = {name: index for index, name in enumerate(label_names)} if label_names else None
    for split, info in manifest["splits"].items():
        _compare_mirrors(release_dir, split, info, label_ids)

    accounting = manifest["accounting"]
    released = sum(info["records"] for info in manifest["splits"].values())
    if released != accounting["released_records"]:
        raise ReleaseError(
            f"{manifest_path}: splits hold {released} records, accounting says {accounting['released_records']}"
        )
    for stage_step, reasons in accounting["rejected"].items():
        file = f"{stage_step}.jsonl"
        if manifest["rejects"].get(file) != sum(reasons.values()):
            raise ReleaseError(
                f"{release_dir / 'rejects' / file}: {manifest['rejects'].get(file)} rejects, "
                f"accounting says {sum(reasons.values())}"
            )
    for file, count in manifest["rejects"].items():
        lines = count_lines(_inside(release_dir, f"rejects/{file}"))
        if lines != count:
            raise ReleaseError(f"{release_dir / 'rejects' / file}: {lines} lines, manifest says {count}")
    for splits in manifest.get("exports", {}).values():
        for entry in splits.values():
            lines = count_lines(_inside(release_dir, entry["file"]))
            if lines != entry["written"]:
                raise ReleaseError(f"{release_dir / entry['file']}: {lines} lines, manifest says {entry['written']}")
            if "parquet" in entry:  # releases before the parquet copies list only the JSONL
                _check_rows(release_dir, entry["parquet"], entry["written"])
    for splits in manifest.get("configs", {}).values():
        for entry in splits.values():
            _check_rows(release_dir, entry["file"], entry["records"])
    rejected = sum(sum(reasons.values()) for reasons in accounting["rejected"].values())
    if rejected != accounting["rejected_total"]:
        raise ReleaseError(
            f"{manifest_path}: rejected_total {accounting['rejected_total']} != sum by reason {rejected}"
        )
    if accounting["input_records"] != released - accounting["augmented_records"] + rejected:
        raise ReleaseError(
            f"{manifest_path}: accounting does not balance: {accounting['input_records']} in, "
            f"{released - accounting['augmented_records']} kept + {rejected} rejected"
        )

    card_splits = _card_split_counts(release_dir / "README.md")
    for split, info in manifest["splits"].items():
        if card_splits.get(split) != info["records"]:
            raise ReleaseError(
                f"{release_dir / 'README.md'}: card says {card_splits.get(split)} examples in {split!r}, "
                f"manifest says {info['records']}"
            )


def _compare_mirrors(release_dir: Path, split: str, info: dict[str, Any], label_ids: dict[str, int] | None) -> None:
    """Re-read one split's parquet shards and JSONL mirror in step: same records, same count
    (the parquet labels being the names' indices)."""
    jsonl_path = _inside(release_dir, info["jsonl"])
    count = 0
    with jsonl_path.open(encoding="utf-8") as jsonl:
        for file in info["files"]:
            shard = pq.ParquetFile(_inside(release_dir, file), pre_buffer=False)  # a row group at a time
            full_messages = _has_full_messages(shard.schema_arrow)
            for batch in shard.iter_batches(batch_size=ROW_GROUP_SIZE):
                for row in batch.to_pylist():
                    count += 1
                    line = jsonl.readline()
                    if not line:
                        raise ReleaseError(f"{jsonl_path}: ends after {count - 1} records; parquet has more")
                    try:
                        mirrored = to_row(Record.from_json(line, f"{jsonl_path}:{count}"), label_ids, full_messages)
                    except KeyError as exc:
                        raise ReleaseError(
                            f"{jsonl_path}:{count}: label {exc.args[0]!r} is not in label_names"
                        ) from None
                    except CorpusmillError as exc:
                        raise ReleaseError(str(exc)) from None
                    if mirrored != row:
                        raise ReleaseError(
                            f"{jsonl_path}:{count}: record {mirrored.get('id')!r} differs from parquet row "
                            f"{row.get('id')!r} ({_first_difference(mirrored, row)})"
                        )
        if jsonl.readline():
            raise ReleaseError(f"{jsonl_path}: more lines than the {count} parquet rows")
    if count != info["records"]:
        raise ReleaseError(f"{release_dir}: split {split!r} has {count} records, manifest says {info['records']}")


def _first_difference(left: dict[str, Any], right: dict[str, Any]) -> str:
    for key in sorted(set(left) | set(right)):
        if left.get(key) != right.get(key):
            return f"field {key!r}"
    return "field order"


def _card_split_counts(card: Path) -> dict[str, int]:
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ReleaseError(f"{card}: no YAML front matter")
    front = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    return {split["name"]: split["num_examples"] for split in front["dataset_info"]["splits"]}
